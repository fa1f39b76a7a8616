"""PyTorch checkpoints of robust models import: RobustBench's CIFAR-10 layouts, robustness.

Each reference network is restated here in PyTorch from the published layout
(RobustBench `resnet.py` PreActResNet, `wide_resnet.py`, `dm_wide_resnet.py`;
the robustness library's AttackerModel around a kuangliu CIFAR ResNet-50 or a
torchvision ResNet-50), built small with random weights and random BatchNorm
statistics, saved with its real key names, imported through torch_import /
import_weights, and its logits compared with PyTorch's. The references pool
with a global mean, which is what their `avg_pool2d(out, 4 or 8)` computes on
32x32 images. Nothing is downloaded.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn_t = torch.nn
F = torch.nn.functional

from interp_jax import models  # noqa: E402
from interp_jax.default_config import base_config  # noqa: E402
from interp_jax.errors import UserError  # noqa: E402
from interp_jax.models import torch_checkpoint, torch_import  # noqa: E402


def _conv(cin, cout, k, stride=1, pad=None):
  return nn_t.Conv2d(cin, cout, k, stride, k // 2 if pad is None else pad, bias=False)


class PreActBlockT(nn_t.Module):
  """Wong et al.'s PreActBlock: the shortcut conv reads the block's raw input."""

  def __init__(self, cin, cout, stride):
    super().__init__()
    self.bn1, self.conv1 = nn_t.BatchNorm2d(cin), _conv(cin, cout, 3, stride)
    self.bn2, self.conv2 = nn_t.BatchNorm2d(cout), _conv(cout, cout, 3)
    if stride != 1 or cin != cout:
      self.shortcut = nn_t.Sequential(_conv(cin, cout, 1, stride))

  def forward(self, x):
    out = F.relu(self.bn1(x))
    short = self.shortcut(x) if hasattr(self, "shortcut") else x
    return self.conv2(F.relu(self.bn2(self.conv1(out)))) + short


class PreActResNet18T(nn_t.Module):
  """final_bn: Wong et al.'s code (`bn`, normalising outside the model); without:
  RobustBench's Wong2020FastNet, whose mu/sigma buffers land in the state dict."""

  def __init__(self, num_classes, final_bn):
    super().__init__()
    self.conv1, cin = _conv(3, 64, 3), 64
    for i, width in enumerate((64, 128, 256, 512)):
      blocks = [PreActBlockT(cin, width, 2 if i else 1), PreActBlockT(width, width, 1)]
      setattr(self, f"layer{i + 1}", nn_t.Sequential(*blocks))
      cin = width
    self.bn = nn_t.BatchNorm2d(512) if final_bn else None
    self.linear = nn_t.Linear(512, num_classes)
    mu = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    sigma = torch.tensor([0.2471, 0.2435, 0.2616]).view(1, 3, 1, 1)
    self.register_buffer("mu", mu, persistent=not final_bn)
    self.register_buffer("sigma", sigma, persistent=not final_bn)

  def forward(self, x):
    out = self.conv1((x - self.mu) / self.sigma)
    out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
    out = out if self.bn is None else F.relu(self.bn(out))
    return self.linear(out.mean((2, 3)))


class MadryBlockT(nn_t.Module):
  """TRADES / RobustBench wide_resnet.py BasicBlock (bn1, conv1, bn2, conv2, convShortcut)."""

  def __init__(self, cin, cout, stride):
    super().__init__()
    self.bn1, self.conv1 = nn_t.BatchNorm2d(cin), _conv(cin, cout, 3, stride)
    self.bn2, self.conv2 = nn_t.BatchNorm2d(cout), _conv(cout, cout, 3)
    self.equal = cin == cout
    self.convShortcut = None if self.equal else _conv(cin, cout, 1, stride)

  def forward(self, x):
    a = F.relu(self.bn1(x))
    out = self.conv2(F.relu(self.bn2(self.conv1(a))))
    return (x if self.equal else self.convShortcut(a)) + out


class NetworkBlockT(nn_t.Module):

  def __init__(self, n, cin, cout, stride, block):
    super().__init__()
    self.layer = nn_t.Sequential(*[block(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                   for i in range(n)])

  def forward(self, x):
    return self.layer(x)


class MadryWRNT(nn_t.Module):
  """conv1, block1..3 (+ the unused sub_block1 of Carmon's and TRADES' files), bn1, fc."""

  def __init__(self, depth, widen, num_classes, sub_block1=True):
    super().__init__()
    n, ch = (depth - 4) // 6, (16, 16 * widen, 32 * widen, 64 * widen)
    self.conv1 = _conv(3, 16, 3)
    self.block1 = NetworkBlockT(n, ch[0], ch[1], 1, MadryBlockT)
    if sub_block1:
      self.sub_block1 = NetworkBlockT(n, ch[0], ch[1], 1, MadryBlockT)
    self.block2 = NetworkBlockT(n, ch[1], ch[2], 2, MadryBlockT)
    self.block3 = NetworkBlockT(n, ch[2], ch[3], 2, MadryBlockT)
    self.bn1, self.fc = nn_t.BatchNorm2d(ch[3]), nn_t.Linear(ch[3], num_classes)

  def forward(self, x):
    out = self.block3(self.block2(self.block1(self.conv1(x))))
    return self.fc(F.relu(self.bn1(out)).mean((2, 3)))


class DMBlockT(nn_t.Module):
  """dm_wide_resnet.py _Block: Swish, unpadded convs padded by hand, (0, 1) before stride 2."""

  def __init__(self, cin, cout, stride):
    super().__init__()
    self.batchnorm_0, self.conv_0 = nn_t.BatchNorm2d(cin), _conv(cin, cout, 3, stride, 0)
    self.batchnorm_1, self.conv_1 = nn_t.BatchNorm2d(cout), _conv(cout, cout, 3)
    self.shortcut = _conv(cin, cout, 1, stride) if cin != cout else None
    self.stride = stride

  def forward(self, x):
    a = F.silu(self.batchnorm_0(x))
    v = F.pad(a, (1, 1, 1, 1) if self.stride == 1 else (0, 1, 0, 1))
    out = self.conv_1(F.silu(self.batchnorm_1(self.conv_0(v))))
    return (x if self.shortcut is None else self.shortcut(a)) + out


class DMGroupT(nn_t.Module):

  def __init__(self, n, cin, cout, stride):
    super().__init__()
    self.block = nn_t.Sequential(*[DMBlockT(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                   for i in range(n)])

  def forward(self, x):
    return self.block(x)


class DMWideResNetT(nn_t.Module):
  """init_conv, layer.G.block.B, batchnorm, logits; mean/std are not in the state dict."""

  def __init__(self, depth, width, num_classes):
    super().__init__()
    n, ch = (depth - 4) // 6, (16, 16 * width, 32 * width, 64 * width)
    self.register_buffer("mean", torch.tensor(torch_import.CIFAR10_MEAN).view(3, 1, 1),
                         persistent=False)
    self.register_buffer("std", torch.tensor(torch_import.CIFAR10_STD).view(3, 1, 1),
                         persistent=False)
    self.init_conv = _conv(3, 16, 3)
    self.layer = nn_t.Sequential(DMGroupT(n, ch[0], ch[1], 1), DMGroupT(n, ch[1], ch[2], 2),
                                 DMGroupT(n, ch[2], ch[3], 2))
    self.batchnorm, self.logits = nn_t.BatchNorm2d(ch[3]), nn_t.Linear(ch[3], num_classes)

  def forward(self, x):
    out = self.layer(self.init_conv((x - self.mean) / self.std))
    return self.logits(F.silu(self.batchnorm(out)).mean((2, 3)))


class BottleneckT(nn_t.Module):
  """kuangliu/pytorch-cifar's Bottleneck (robustness cifar_models, RobustBench resnet.py)."""

  def __init__(self, cin, planes, stride):
    super().__init__()
    self.conv1, self.bn1 = _conv(cin, planes, 1), nn_t.BatchNorm2d(planes)
    self.conv2, self.bn2 = _conv(planes, planes, 3, stride), nn_t.BatchNorm2d(planes)
    self.conv3, self.bn3 = _conv(planes, 4 * planes, 1), nn_t.BatchNorm2d(4 * planes)
    self.shortcut = nn_t.Sequential()
    if stride != 1 or cin != 4 * planes:
      self.shortcut = nn_t.Sequential(_conv(cin, 4 * planes, 1, stride),
                                      nn_t.BatchNorm2d(4 * planes))

  def forward(self, x):
    out = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))
    return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


class CifarResNet50T(nn_t.Module):

  def __init__(self, num_classes):
    super().__init__()
    self.conv1, self.bn1, cin = _conv(3, 64, 3), nn_t.BatchNorm2d(64), 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
      blocks = []
      for j in range(n):
        blocks.append(BottleneckT(cin, planes, 2 if i and not j else 1))
        cin = 4 * planes
      setattr(self, f"layer{i + 1}", nn_t.Sequential(*blocks))
    self.linear = nn_t.Linear(2048, num_classes)

  def forward(self, x):
    out = F.relu(self.bn1(self.conv1(x)))
    out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
    return self.linear(out.mean((2, 3)))


class InputNormalizeT(nn_t.Module):

  def __init__(self, mean, std):
    super().__init__()
    self.register_buffer("new_mean", torch.tensor(mean)[:, None, None])
    self.register_buffer("new_std", torch.tensor(std)[:, None, None])

  def forward(self, x):
    return (torch.clamp(x, 0, 1) - self.new_mean) / self.new_std


class AttackerT(nn_t.Module):

  def __init__(self, model, mean, std):
    super().__init__()
    self.normalize, self.model = InputNormalizeT(mean, std), model


class AttackerModelT(nn_t.Module):
  """The robustness library's wrapper: normalizer, model, and attacker (a second reference)."""

  def __init__(self, model, mean, std):
    super().__init__()
    self.normalizer, self.model = InputNormalizeT(mean, std), model
    self.attacker = AttackerT(model, mean, std)

  def forward(self, x):
    return self.model(self.normalizer(x))


def _randomised(net):
  """Eval mode, with BatchNorm statistics and affine terms and biases made random."""
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


def _robustness_file(model, mean, std):
  """A robustness-library checkpoint: {"model": DataParallel's state dict, ...}."""
  wrapped = AttackerModelT(model, mean, std).eval()
  state = {f"module.{k}": v for k, v in wrapped.state_dict().items()}
  return wrapped, {"model": state, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1}]},
                   "schedule": None, "epoch": 150}


ODD_STATS = ((0.40, 0.50, 0.60), (0.20, 0.25, 0.30))  # unlike any default: must come from the file


def _case(name):
  """(arch, PyTorch net taking [0, 1] images, object to torch.save, Flax option overrides)."""
  torch.manual_seed(0)
  if name == "preact_resnet18 (Wong et al.'s code)":
    net = _randomised(PreActResNet18T(10, final_bn=True))
    return "preact_resnet18", net, net.state_dict(), {}
  if name == "preact_resnet18 (RobustBench, mu/sigma)":
    net = _randomised(PreActResNet18T(10, final_bn=False))
    return "preact_resnet18", net, {"state_dict": net.state_dict()}, {}
  if name == "wrn (WRN-16-2, sub_block1, module.)":
    net = _randomised(MadryWRNT(16, 2, 10))
    return "wrn16_2", net, {f"module.{k}": v for k, v in net.state_dict().items()}, {}
  if name == "dm_wrn (WRN-16-1, Swish)":
    net = _randomised(DMWideResNetT(16, 1, 10))
    return "dm_wrn16_1", net, net.state_dict(), {}
  if name == "robustness_cifar_resnet50":
    net, saved = _robustness_file(_randomised(CifarResNet50T(10)), *ODD_STATS)
    return "robustness_cifar_resnet50", net, saved, {}
  if name == "robustness_resnet50 (ImageNet)":
    resnet = _randomised(torchvision.models.resnet50(weights=None, num_classes=10))
    with torch.no_grad():  # quieter residual branches: logits of order 1, not hundreds
      for block in (b for layer in (resnet.layer1, resnet.layer2, resnet.layer3,
                                    resnet.layer4) for b in layer):
        block.bn3.weight.mul_(0.2)
    net, saved = _robustness_file(resnet, *ODD_STATS)
    return "robustness_resnet50", net, saved, {}
  raise ValueError(name)


CASES = ("preact_resnet18 (Wong et al.'s code)", "preact_resnet18 (RobustBench, mu/sigma)",
         "wrn (WRN-16-2, sub_block1, module.)", "dm_wrn (WRN-16-1, Swish)",
         "robustness_cifar_resnet50", "robustness_resnet50 (ImageNet)")


def _import(arch, path, size, num_classes=10, **overrides):
  """The model and variables import_run builds from the file (options overridable)."""
  state = torch_checkpoint.read_state_dict(path)
  spec = torch_import.ARCHS[arch]
  mean, std = torch_import.file_statistics(state) or (spec.mean, spec.std)
  model = models.create(spec.model, num_classes, input_mean=mean, input_std=std,
                        **{**torch_import.options(arch, state), **overrides})
  template = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                               jnp.zeros((1, size, size, 3))))
  return model, torch_import.to_variables(arch, template, state)


def _torch_logits(net, images):
  with torch.no_grad():
    return net(torch.from_numpy(np.asarray(images)).permute(0, 3, 1, 2)).numpy()


@pytest.mark.parametrize("case", CASES)
def test_logits_equal_pytorch(case, tmp_path):
  arch, net, saved, overrides = _case(case)
  path = str(tmp_path / "w.pt")
  torch.save(saved, path)
  size = 64 if arch == "robustness_resnet50" else 32
  model, variables = _import(arch, path, size, **overrides)
  images = jax.random.uniform(jax.random.key(1), (2, size, size, 3))
  logits, feats = jax.jit(lambda v, x: models.apply_with_features(model, v, x))(
      variables, images)
  want = _torch_logits(net, images)
  error = float(np.abs(np.asarray(logits) - want).max())
  print(f"{case}: max abs logit error {error:.2e} (logits up to {np.abs(want).max():.2f})")
  assert error <= 1e-4
  assert set(feats) == set(model.layer_names)


def test_every_other_arch_shares_a_compared_layout():
  """The archs test_import_weights.py does not build (torchvision's, the CIFAR ResNets)
  are depths and widths of the layouts compared above."""
  compared = {a for a in ("preact_resnet18", "wrn28_10", "dm_wrn28_10",
                          "robustness_cifar_resnet50", "robustness_resnet50")}
  plain = {a for a in torch_import.ARCHS
           if a.startswith("resnet") and a[6:].isdigit() or hasattr(torchvision.models, a)}
  for arch in set(torch_import.ARCHS) - plain - compared:
    assert any(torch_import.ARCHS[arch].model == torch_import.ARCHS[c].model
               and arch.startswith("dm_") == c.startswith("dm_") for c in compared), arch


def test_layout_choices_come_from_the_file():
  wong = _randomised(PreActResNet18T(10, final_bn=True)).state_dict()
  robustbench = _randomised(PreActResNet18T(10, final_bn=False)).state_dict()
  assert torch_import.options("preact_resnet18", wong) == {"final_bn": True}
  assert torch_import.options("preact_resnet18", robustbench) == {"final_bn": False}
  assert torch_import.file_statistics(wong) is None
  mean, std = torch_import.file_statistics(robustbench)
  np.testing.assert_allclose(mean, torch_import.CIFAR10_MEAN, rtol=1e-6)
  np.testing.assert_allclose(std, torch_import.CIFAR10_STD, rtol=1e-6)


def test_a_file_of_another_layout_or_size_is_refused_with_the_tensor_named(tmp_path):
  torch.manual_seed(0)
  files = {"madry": MadryWRNT(16, 2, 10).state_dict(),
           "dm": DMWideResNetT(16, 2, 10).state_dict()}
  for name, state in files.items():
    torch.save(state, str(tmp_path / f"{name}.pt"))
  with pytest.raises(UserError, match=r"checkpoint tensor 'batchnorm.bias' has no place in "
                                      r"wrn28_10 \(nor \d+ more\); is the file a wrn28_10\?"):
    _import("wrn28_10", str(tmp_path / "dm.pt"), 32, depth=16, width=2)
  with pytest.raises(UserError, match="has no place in dm_wrn28_10"):
    _import("dm_wrn28_10", str(tmp_path / "madry.pt"), 32, depth=16, width=2)
  with pytest.raises(UserError, match=r"'bn1.running_mean' has shape \(128,\); wrn28_10 "
                                      r"here expects \(256,\)"):
    _import("wrn28_10", str(tmp_path / "madry.pt"), 32, depth=16, width=4)
  with pytest.raises(UserError, match="no tensor 'block1.layer.2.bn1.running_mean', which "
                                      "wrn28_10 needs"):
    _import("wrn28_10", str(tmp_path / "madry.pt"), 32, depth=22, width=2)
  with pytest.raises(ValueError, match="depth must be 6n"):
    models.create("wide_resnet", 10, depth=12).init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))


def _tiny_config(data_dir):
  c = base_config()
  c.dataset.data_dir = data_dir
  c.dataset.image_size = 16
  c.dataset.num_train, c.dataset.num_test, c.dataset.num_validation = 64, 32, 32
  return c


@pytest.mark.slow
def test_import_run_reads_the_robustness_normaliser_and_refuses_other_statistics(tmp_path):
  from interp_jax.training import imported as import_weights
  from interp_jax.training.restore import load_trained
  torch.manual_seed(0)
  net, saved = _robustness_file(_randomised(CifarResNet50T(9)), *ODD_STATS)  # 9 classes
  path = str(tmp_path / "cifar_linf_8.pt")
  torch.save(saved, path)
  with pytest.raises(UserError, match="stores its own input normalisation"):
    import_weights.import_run(_tiny_config(str(tmp_path / "tfds")), "robustness_cifar_resnet50",
                              path, str(tmp_path / "refused"), mean=(0.5,), std=(0.5,))
  assert not os.path.exists(tmp_path / "refused" / "checkpoints")
  workdir = str(tmp_path / "run")
  import_weights.import_run(_tiny_config(str(tmp_path / "tfds")), "robustness_cifar_resnet50",
                            path, workdir)
  run = load_trained(workdir)
  assert run.config.model.name == "resnet50"
  np.testing.assert_allclose(run.config.model.options.input_std, ODD_STATS[1], rtol=1e-6)
  np.testing.assert_allclose(json.load(open(os.path.join(workdir, "import.json")))["mean"],
                             ODD_STATS[0], rtol=1e-6)
  images = jax.random.uniform(jax.random.key(4), (4, 16, 16, 3))
  error = np.abs(np.asarray(run.model.apply(run.variables, images))
                 - _torch_logits(net, images)).max()
  assert error <= 1e-4


def test_any_wideresnet_depth_and_width_is_an_arch():
  """wrn{D}_{W} and dm_wrn{D}_{W} name a WideResNet of any depth 6n + 4 and width, in the
  Madry/TRADES or the DeepMind layout; other names are unknown, in one sentence."""
  arch = torch_import.ARCHS["wrn22_3"]
  assert (arch.model, arch.options, arch.family) == ("wide_resnet", {"depth": 22, "width": 3},
                                                     "wrn")
  dm = torch_import.ARCHS["dm_wrn10_2"]
  assert dm.options["activation"] == "swish" and dm.family == "dm_wrn"
  assert torch_import.ARCHS["wrn28_10"] == torch_import.ARCHS["wrn28_10"]
  for bad in ("wrn15_2", "wrn22_0", "wrn4_1", "dm_wrn", "wrn16_2x"):
    assert bad not in torch_import.ARCHS
  with pytest.raises(UserError, match="or wrnD_W / dm_wrnD_W"):
    torch_import.options("wrn15_2", {})
