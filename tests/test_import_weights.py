"""PyTorch weights import: logits equal PyTorch's, files are data not code, runs load.

Random weights only (torchvision models built with weights=None, a reference
CIFAR ResNet written here): nothing is downloaded.
"""

import copy
import os
import pickle
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn_t = torch.nn
F = torch.nn.functional

from interp_jax import attacks, models  # noqa: E402
from interp_jax.default_config import base_config  # noqa: E402
from interp_jax.errors import UserError  # noqa: E402
from interp_jax.models import torch_checkpoint, torch_import  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class _Block(nn_t.Module):
  """The BasicBlock of the widely shared PyTorch CIFAR ResNet, option-A shortcut."""

  def __init__(self, in_planes, planes, stride=1):
    super().__init__()
    self.conv1 = nn_t.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
    self.bn1 = nn_t.BatchNorm2d(planes)
    self.conv2 = nn_t.Conv2d(planes, planes, 3, 1, 1, bias=False)
    self.bn2 = nn_t.BatchNorm2d(planes)
    self.pad = planes // 4 if stride != 1 or in_planes != planes else None

  def forward(self, x):
    out = F.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    short = x if self.pad is None else F.pad(x[:, :, ::2, ::2],
                                             (0, 0, 0, 0, self.pad, self.pad))
    return F.relu(out + short)


class CifarResNetTorch(nn_t.Module):

  def __init__(self, depth, num_classes=10):
    super().__init__()
    n = (depth - 2) // 6
    self.conv1 = nn_t.Conv2d(3, 16, 3, 1, 1, bias=False)
    self.bn1 = nn_t.BatchNorm2d(16)
    planes = 16
    for i, width in enumerate((16, 32, 64)):
      blocks = []
      for j in range(n):
        blocks.append(_Block(planes, width, 2 if i > 0 and j == 0 else 1))
        planes = width
      setattr(self, f"layer{i + 1}", nn_t.Sequential(*blocks))
    self.linear = nn_t.Linear(64, num_classes)

  def forward(self, x):
    out = F.relu(self.bn1(self.conv1(x)))
    out = self.layer3(self.layer2(self.layer1(out)))
    return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def _torch_net(arch: str, num_classes: int):
  """arch with random weights, eval mode; BatchNorm statistics and biases randomised
  too, so a swapped mean/var or a dropped bias would show in the logits."""
  torch.manual_seed(0)
  if arch in ("resnet20", "resnet32", "resnet44", "resnet56"):
    net = CifarResNetTorch(int(arch[len("resnet"):]), num_classes)
  else:
    net = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, nn_t.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5)
        m.bias.normal_(0, 0.1)
        m.running_mean.normal_(0, 0.1)
        m.running_var.uniform_(0.5, 1.5)
      elif getattr(m, "bias", None) is not None:
        m.bias.normal_(0, 0.1)
  return net.eval()


def _size(arch: str) -> int:
  return 32 if arch in ("resnet20", "resnet32", "resnet44", "resnet56") else 64


def _import(arch, path, num_classes, size):
  spec = torch_import.ARCHS[arch]
  model = models.create(spec.model, num_classes, input_mean=MEAN, input_std=STD,
                        **spec.options)
  template = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                               jnp.zeros((1, size, size, 3))))
  return model, torch_import.to_variables(arch, template,
                                          torch_checkpoint.read_state_dict(path))


def _torch_logits(net, images):
  """PyTorch's logits of [0, 1] NHWC images, normalised the torchvision way."""
  x = (torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2) - torch.tensor(MEAN).view(
      1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
  with torch.no_grad():
    return net(x).numpy()


def _relative_error(got, want) -> float:
  return float(np.abs(np.asarray(got) - want).max() / np.abs(want).max())


# torchvision's networks and the CIFAR ResNets; the robust-model layouts (PreActResNet,
# WideResNets, the robustness library's wrapper) are compared in test_robust_archs.py.
CIFAR_RESNETS = ("resnet20", "resnet32", "resnet44", "resnet56")
PLAIN_ARCHS = sorted(a for a in torch_import.ARCHS
                     if a in CIFAR_RESNETS or hasattr(torchvision.models, a))


@pytest.mark.parametrize("arch", PLAIN_ARCHS)
def test_logits_equal_pytorch(arch, tmp_path):
  net = _torch_net(arch, num_classes=10)
  path = str(tmp_path / "w.pth")
  torch.save(net.state_dict(), path)
  size = _size(arch)
  model, variables = _import(arch, path, 10, size)
  images = jax.random.uniform(jax.random.key(1), (2, size, size, 3))
  logits, feats = jax.jit(lambda v, x: models.apply_with_features(model, v, x))(
      variables, images)
  error = _relative_error(logits, _torch_logits(net, images))
  print(f"{arch}: max relative error {error:.2e}")
  assert error <= 1e-4
  assert set(feats) == set(model.layer_names)


@pytest.fixture(params=["torch", "without torch"])
def reader(request, monkeypatch):
  """Checkpoints read by torch.load(weights_only=True), or by torch_unpickle as without torch."""
  if request.param == "without torch":
    monkeypatch.setattr(torch_checkpoint, "_torch", lambda: None)
  return request.param


def test_module_prefix_and_nested_state_dicts(tmp_path, reader):
  net = _torch_net("resnet20", num_classes=10)
  images = jax.random.uniform(jax.random.key(2), (3, 32, 32, 3))
  want = _torch_logits(net, images)
  plain = net.state_dict()
  wrapped = {f"module.{k}": v for k, v in plain.items()}
  for i, saved in enumerate([wrapped, {"state_dict": wrapped, "epoch": 7, "best": 0.9},
                             {"model": plain, "optimizer": {"lr": 0.1}}]):
    path = str(tmp_path / f"w{i}.pth")
    torch.save(saved, path)
    model, variables = _import("resnet20", path, 10, 32)
    assert _relative_error(model.apply(variables, images), want) <= 1e-4


def test_legacy_format_reads(tmp_path):
  net = _torch_net("resnet20", num_classes=10)
  path = str(tmp_path / "legacy.pth")
  torch.save(net.state_dict(), path, _use_new_zipfile_serialization=False)
  model, variables = _import("resnet20", path, 10, 32)
  images = jax.random.uniform(jax.random.key(3), (2, 32, 32, 3))
  assert _relative_error(model.apply(variables, images), _torch_logits(net, images)) <= 1e-4


class _RunsCode:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer,message", [
    ("torch.save", r"asks to call (posix|nt|os)\.system while loading; refused"),
    ("pickle protocol 2", r"asks to call (posix|nt|os)\.system while loading; refused"),
    ("pickle", "refused rather than unpickled")])  # protocol 4+: not torch's format at all
def test_a_checkpoint_that_runs_code_is_refused(writer, message, tmp_path):
  marker = tmp_path / "pwned"
  path = str(tmp_path / "evil.pth")
  payload = {"state_dict": {"fc.bias": [0.0], "x": _RunsCode(marker)}}
  if writer == "torch.save":
    torch.save(payload, path)
  else:
    with open(path, "wb") as f:
      pickle.dump(payload, f, protocol=2 if "2" in writer else pickle.DEFAULT_PROTOCOL)
  with pytest.raises(ValueError, match=message):
    torch_checkpoint.read_state_dict(path)
  assert not marker.exists()


def test_without_torch_code_is_refused_and_tensors_read_as_torch_does(tmp_path, monkeypatch):
  marker = tmp_path / "pwned"
  evil = str(tmp_path / "evil.pth")
  torch.save({"state_dict": {"fc.bias": torch.zeros(2), "x": _RunsCode(marker)}}, evil)
  tensors = {"view": torch.arange(12.0).reshape(3, 4).t()[1:],  # strided, offset storage
             "half": torch.randn(5).to(torch.bfloat16), "count": torch.tensor(7),
             "shared": torch.ones(3, 2, dtype=torch.float64)}
  tensors["alias"] = tensors["shared"][:, 1]
  good = str(tmp_path / "good.pth")
  torch.save(tensors, good)
  legacy = str(tmp_path / "legacy.pth")
  torch.save(tensors, legacy, _use_new_zipfile_serialization=False)
  want = torch_checkpoint.read_state_dict(good)
  monkeypatch.setattr(torch_checkpoint, "_torch", lambda: None)
  got = torch_checkpoint.read_state_dict(good)
  assert set(got) == set(want)
  for name in want:
    assert got[name].dtype == want[name].dtype
    np.testing.assert_array_equal(got[name], want[name])
  with pytest.raises(ValueError, match=r"asks to call (posix|nt|os)\.system.*refused"):
    torch_checkpoint.read_state_dict(evil)
  assert not marker.exists()
  with pytest.raises(UserError, match="legacy.*needs torch"):
    torch_checkpoint.read_state_dict(legacy)


def test_keys_and_shapes_that_do_not_map_are_named(tmp_path):
  state = {k: v.clone() for k, v in _torch_net("resnet20", 10).state_dict().items()}
  cases = [({**state, "extra.weight": torch.zeros(3)}, "'extra.weight' has no place"),
           ({k: v for k, v in state.items() if k != "layer2.1.bn1.running_var"},
            "no tensor 'layer2.1.bn1.running_var'"),
           ({**state, "layer1.0.conv2.weight": torch.zeros(16, 16, 5, 5)},
            r"'layer1.0.conv2.weight' has shape \(16, 16, 5, 5\).*expects \(16, 16, 3, 3\)"),
           ({**state, "linear.weight": torch.zeros(7, 64)}, "7 classes")]
  for i, (bad, message) in enumerate(cases):
    path = str(tmp_path / f"bad{i}.pth")
    torch.save(bad, path)
    with pytest.raises(UserError, match=message):
      _import("resnet20", path, 10, 32)
  with pytest.raises(UserError, match="no checkpoint file"):
    torch_checkpoint.read_state_dict(str(tmp_path / "missing.pth"))
  with pytest.raises(UserError, match="unknown architecture"):
    torch_import.to_variables("resnet99", {}, {})


def _tiny_config(data_dir):
  c = base_config()
  c.dataset.data_dir = data_dir
  c.dataset.image_size = 16
  c.dataset.num_train, c.dataset.num_test, c.dataset.num_validation = 64, 32, 32
  return c


@pytest.mark.slow
def test_import_writes_a_run_that_loads_and_attacks_in_pixel_space(tmp_path):
  from interp_jax.training import imported as import_weights
  from interp_jax.training.restore import load_trained
  config = _tiny_config(str(tmp_path / "tfds"))
  net = _torch_net("resnet20", num_classes=9)  # concept_shapes has 9 classes
  path = str(tmp_path / "w.pth")
  torch.save({"state_dict": net.state_dict()}, path)
  workdir = str(tmp_path / "run")
  assert import_weights.import_run(config, "resnet20", path, workdir, MEAN, STD) == 0

  run = load_trained(workdir)
  assert run.step == 0 and run.config.model.name == "resnet20"
  assert run.config.variant == "standard"
  # import.json names the file, by path and digest, and the statistics the weights expect.
  source = import_weights.Imported.load(os.path.join(workdir, "import.json"))
  assert (source.arch, source.checkpoint, source.mean, source.std) == (
      "resnet20", os.path.abspath(path), tuple(MEAN), tuple(STD))
  import hashlib
  assert source.sha256 == hashlib.sha256(open(path, "rb").read()).hexdigest()
  images = jax.random.uniform(jax.random.key(4), (4, 16, 16, 3))
  logits = run.model.apply(run.variables, images)
  assert _relative_error(logits, _torch_logits(net, images)) <= 1e-4

  labels = jnp.argmax(logits, -1)
  eps = 8 / 255
  adv = attacks.pgd(run.model.apply, run.variables, images, labels, jax.random.key(5),
                    eps=eps, steps=3)
  assert float(jnp.abs(adv - images).max()) <= eps + 1e-6
  assert float(adv.min()) >= 0 and float(adv.max()) <= 1
  assert float(jnp.abs(adv - images).max()) > eps / 2  # it moved

  # ... and the analysis reads it like a run it trained (every layer, the test split).
  from interp_jax import analysis
  cfg = analysis.default_config()
  cfg.k, cfg.steps, cfg.batch_size, cfg.eps_curve = 4, 1, 16, ()
  cfg.report_neurons, cfg.report_tiles = 1, 2
  results, _ = analysis.analyze(run, cfg, progress=False)
  assert set(results.layers) == set(run.model.layer_names) - {"logits"}
  assert results.run.model == "resnet20" and results.settings["num_images"] == 32

  with pytest.raises(UserError, match="already holds a run"):
    import_weights.import_run(_tiny_config(str(tmp_path / "tfds")), "resnet20", path, workdir)

  # Fine-tuning starts from the imported weights: with a zero learning rate the
  # parameters after training are the imported ones (BatchNorm statistics move).
  from interp_jax.training import trainer
  tune = copy.deepcopy(run.config)
  tune.unlock()
  tune.num_train_steps, tune.log_every_steps, tune.eval_every_steps = 2, 1, 2
  tune.checkpoint_every_steps, tune.batch_size, tune.eval_batch_size = 2, 8, 8
  tune.optimizer.learning_rate, tune.optimizer.weight_decay = 0.0, 0.0
  trainer.train_and_evaluate(tune, workdir)
  tuned = load_trained(workdir)
  assert tuned.step == 2
  chex.assert_trees_all_equal(tuned.variables["params"], run.variables["params"])


def test_command_line_exits_2_with_one_sentence_and_writes_nothing(tmp_path):
  workdir = tmp_path / "run"
  base = [sys.executable, "-m", "interp_jax.import_weights", "--config=configs/concepts.py",
          f"--workdir={workdir}", f"--config.dataset.data_dir={tmp_path}"]
  for extra, message in [(["--arch=resnet99", "--checkpoint=x.pth"], "unknown --arch"),
                         (["--arch=resnet20", f"--checkpoint={tmp_path}/none.pth"],
                          "no checkpoint file"),
                         (["--arch=resnet20", "--checkpoint=x.pth", "--std=0.2,0,0.2"],
                          "must be positive")]:
    done = subprocess.run(base + extra, cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
  assert not workdir.exists()


@pytest.mark.parametrize("size,out", [(13, 6), (2, 7), (10, 7), (14, 7), (5, 3), (1, 6)])
def test_adaptive_average_pooling_equals_pytorch(size, out):
  from interp_jax.models.common import adaptive_avg_pool
  x = np.random.default_rng(size).normal(size=(2, size, size + 1, 3)).astype(np.float32)
  want = F.adaptive_avg_pool2d(torch.from_numpy(x).permute(0, 3, 1, 2), out).permute(0, 2, 3, 1)
  np.testing.assert_allclose(adaptive_avg_pool(jnp.asarray(x), out), want.numpy(),
                             rtol=1e-6, atol=1e-6)


def test_a_tensor_view_past_its_storage_is_refused():
  from interp_jax.models.torch_unpickle import _rebuild_tensor_v2
  storage = np.arange(6, dtype=np.float32)
  np.testing.assert_array_equal(_rebuild_tensor_v2(storage, 1, (2, 2), (2, 1)),
                                [[1, 2], [3, 4]])
  for offset, size, stride in ((0, (4,), (2,)), (5, (2,), (1,)), (0, (2,), (-1,))):
    with pytest.raises(ValueError, match="outside its storage"):
      _rebuild_tensor_v2(storage, offset, size, stride)
