"""The device check (python -m interp_jax.bench device) at its tiny size on 2 CPU devices:
every section, positive finite figures, the sizes recorded; and its parts."""

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import once
from interp_jax import models
from interp_jax.bench import device_check, device_sections
from interp_jax.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rates(tree, path=""):
  """(path, value) of every figure of the report: ms, images_per_s, seconds."""
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from _rates(v, f"{path}/{k}")
  elif isinstance(tree, list):
    for i, v in enumerate(tree):
      yield from _rates(v, f"{path}/{i}")
  elif path.rsplit("/", 1)[-1] in ("ms", "images_per_s", "seconds", "torch_ms",
                                   "torch_images_per_s", "torch_seconds", "first_seconds"):
    yield path, tree


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """The command at --device_size=tiny on 2 CPU devices: (its JSON, its stdout), made
  once per session by whichever xdist worker asks first (conftest.once)."""
  def make(path):
    env = {**os.environ, "INTERP_JAX_CPU_DEVICES": "2", "JAX_PLATFORMS": "cpu",
           # torch's OpenMP threads spin while they wait: on 2 cores shared with XLA's
           # threads and other tests, a spinning peer runs 50x slower.
           "OMP_WAIT_POLICY": "PASSIVE"}
    env.pop("XLA_FLAGS", None)  # INTERP_JAX_CPU_DEVICES decides the device count
    done = subprocess.run(
        [sys.executable, "-m", "interp_jax.bench", "device", "--device_size=tiny",
         "--repeats=1", f"--device_out={os.path.join(path, 'check.json')}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(path, "stdout.txt"), "w") as f:
      f.write(done.stdout)
  path = once(tmp_path_factory, "device_check", make)
  with open(os.path.join(path, "check.json")) as f, open(os.path.join(path, "stdout.txt")) as g:
    return json.load(f), g.read()


@pytest.mark.slow
def test_tiny_check_writes_every_section(tiny_run):
  report, stdout = tiny_run
  assert report["backend"] == "cpu" and report["device_count"] == 2
  assert report["device_kind"] == jax.devices()[0].device_kind
  assert report["size"] == "tiny"
  assert report["sizes"] == vars(device_check.SIZES["tiny"])
  for name in device_check.SECTIONS:
    assert name in report, name
    assert f"] {name} (" in stdout  # its progress line
  figures = list(_rates(report))
  assert len(figures) > 20
  for path, value in figures:
    if value is not None:
      assert math.isfinite(value) and value > 0, (path, value)
  # The sizes it ran at are the tiny sizes, section by section.
  s = device_check.SIZES["tiny"]
  attacks = report["attacks"]
  assert attacks["pgd"]["batch"] == s.attack_batch and attacks["pgd"]["steps"] == s.pgd_steps
  aa = attacks["autoattack"]
  assert aa["images"] == s.aa_images
  assert aa["options"]["apgd_ce"]["steps"] == s.aa_steps
  assert aa["options"]["square"]["queries"] == s.aa_queries
  assert list(aa["accuracy_after"]) == ["clean", "apgd_ce", "apgd_t", "fab_t", "square"]
  after = list(aa["accuracy_after"].values())
  assert after == sorted(after, reverse=True)  # each stage only breaks more images
  assert after[0] > 0.5  # the labels are the network's own predictions
  train = report["train"]
  assert train["batch"] == s.train_batch and train["attack_steps"] == s.train_attack_steps
  assert train["consistent_over_adv"] > 0
  analysis = report["analysis"]
  assert analysis["image_size"] == s.imagenet_size and analysis["layers"][-1] == "pool"
  dis = report["dissection"]
  assert (dis["units"], dis["masks"], dis["concepts"]) == (
      s.broden_units, [s.broden_masks] * 2, s.broden_concepts)
  assert set(dis["passes"]) == {"range", "histogram", "iou"}
  assert dis["broden_seconds"] == pytest.approx(
      dis["broden_images"] / dis["images_per_s"], rel=1e-6)
  scaling = report["scaling"]["entries"]
  assert [e["devices"] for e in scaling] == [1, 2]
  assert [e["batch"] for e in scaling] == [s.scaling_batch, 2 * s.scaling_batch]
  assert scaling[0]["efficiency"] == 1.0 and scaling[1]["efficiency"] > 0
  # The table names every section, and the torch peer when there is one.
  table = stdout[stdout.index("section "):]
  for name in device_check.SECTIONS:
    assert f"\n{name} " in table


# Not marked slow: scheduled after the slow tests, it finds the check made (conftest.once)
# instead of waiting on the other worker making it.
def test_tiny_check_has_the_torch_peer(tiny_run):
  pytest.importorskip("torchattacks")
  report, _ = tiny_run
  assert report["torch"]["device"] == "cpu" and report["torch"]["why_not"] is None
  attacks = report["attacks"]
  assert attacks["logit_difference"] < 1e-4  # the same network on both sides
  assert attacks["pgd"]["jax_over_torch"] > 0
  assert attacks["autoattack"]["torch_accuracy_after"]["clean"] > 0.5
  for variant in ("adv", "adv_consistent"):
    assert report["train"][variant]["torch_ms"] > 0


def test_sizes_and_sections():
  assert device_check.sizes_for("auto", "cpu")[0] == "small"
  assert device_check.sizes_for("auto", "gpu") == ("full", device_check.SIZES["full"])
  full = device_check.SIZES["full"]  # the published networks and Broden's shapes
  assert (full.resnet_blocks, full.resnet_width, full.imagenet_width, full.imagenet_size,
          full.broden_masks, full.broden_concepts) == (2, 64, 64, 224, 112, 1197)
  with pytest.raises(UserError, match="huge"):
    device_check.sizes_for("huge", "cpu")
  assert device_check.sections_for([]) == list(device_check.SECTIONS)
  assert device_check.sections_for(["scaling", "attacks"]) == ["attacks", "scaling"]
  with pytest.raises(UserError, match="atacks"):
    device_check.sections_for(["atacks"])
  assert device_sections.device_counts(1) == [1]
  assert device_sections.device_counts(6) == [1, 2, 4, 6]
  assert device_sections.device_counts(8) == [1, 2, 4, 8]
  assert device_sections.global_batch(5, devices=2) == 6
  assert device_sections.global_batch(8, devices=8) == 8


def test_random_variables_are_the_models_variables():
  model = models.create("resnet18", 10, stem="cifar", base_width=4)
  variables = device_sections.random_variables(model, (8, 8, 3))
  template = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  assert jax.tree.structure(variables) == jax.tree.structure(template)
  assert jax.tree.map(np.shape, variables) == jax.tree.map(lambda t: t.shape, template)
  kernel = variables["params"]["layer4_0"]["conv2"]["kernel"]  # 3 x 3 x 32 in
  assert kernel.std() == pytest.approx(1 / math.sqrt(3 * 3 * 32), rel=0.05)
  bn = variables["params"]["stem_bn"], variables["batch_stats"]["stem_bn"]
  assert (bn[0]["scale"] == 1).all() and (bn[0]["bias"] == 0).all()
  assert (bn[1]["mean"] == 0).all() and (bn[1]["var"] == 1).all()
  logits = model.apply(variables, jnp.ones((2, 8, 8, 3)))
  assert np.isfinite(np.asarray(logits)).all()


@pytest.mark.parametrize("blocks", [1, 2])
def test_torch_peer_is_the_same_network(blocks):
  torch = pytest.importorskip("torch")
  from interp_jax.bench import torch_resnet_peer
  model = models.create("resnet18", 10, stem="cifar", base_width=4, stage_sizes=(blocks,) * 4)
  variables = device_sections.random_variables(model, (16, 16, 3), seed=3)
  net = torch_resnet_peer.from_flax(variables, 4, 10, torch.device("cpu"), blocks)
  x = np.random.default_rng(0).random((4, 16, 16, 3), np.float32)
  assert torch_resnet_peer.max_logit_difference(jax.jit(model.apply), variables, x, net) < 1e-4
  _, feats = models.apply_with_features(model, variables, x, ("pool",))
  with torch.no_grad():
    _, pooled = net.features(torch_resnet_peer.to_torch(x, torch.device("cpu")))
  np.testing.assert_allclose(pooled.numpy(), np.asarray(feats["pool"]), atol=1e-4)
