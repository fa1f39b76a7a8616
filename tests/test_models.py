"""Models: output shapes, named layers, BatchNorm kept apart and used in inference."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp_jax import models
from interp_jax.errors import UserError

CASES = [
    ("small_cnn", {}, 32),
    ("resnet18", {"base_width": 8}, 32),
    ("resnet18", {"base_width": 8, "stem": "imagenet"}, 64),
    ("resnet50", {"base_width": 4, "stem": "imagenet"}, 64),
    ("vgg11", {"widths": (8, 8, 16, 16, 16), "hidden": 32}, 32),
    ("vgg16", {"widths": (8, 8, 16, 16, 16), "hidden": 32}, 32),
]


@pytest.mark.parametrize("name,options,size", CASES)
def test_logits_and_named_layers(name, options, size):
  model = models.create(name, num_classes=7, **options)
  x = jnp.ones((2, size, size, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  assert set(variables) == {"params", "batch_stats"}
  logits, feats = jax.eval_shape(lambda v: models.apply_with_features(model, v, x), variables)
  chex.assert_shape(logits, (2, 7))
  assert tuple(feats) == model.layer_names or set(feats) == set(model.layer_names)
  assert model.layer_names[-1] == "logits"
  for layer in model.layer_names:
    assert feats[layer].shape[0] == 2
  chex.assert_shape(feats["logits"], (2, 7))


_TV_VGG = {"conv_bias": True, "hidden": 4096, "pool_size": 7}
# torchvision's documented num_params of each network (1,000 classes): BatchNorm's
# scale and bias count, its running statistics (PyTorch buffers) do not.
PUBLISHED = [
    ("alexnet", {}, 61_100_840),
    ("vgg11", {**_TV_VGG, "batch_norm": False}, 132_863_336),
    ("vgg11", {**_TV_VGG, "batch_norm": True}, 132_868_840),
    ("vgg16", {**_TV_VGG, "batch_norm": False}, 138_357_544),
    ("vgg16", {**_TV_VGG, "batch_norm": True}, 138_365_992),
    ("resnet18", {"stem": "imagenet"}, 11_689_512),
    ("resnet34", {"stem": "imagenet"}, 21_797_672),
    ("resnet50", {"stem": "imagenet"}, 25_557_032),
]


@pytest.mark.parametrize("name,options,count", PUBLISHED, ids=[
    n + ("_bn" if o.get("batch_norm") else "") for n, o, _ in PUBLISHED])
def test_parameter_count_is_the_published_one(name, options, count):
  """At full width on 224 x 224 images (shapes alone: jax.eval_shape): a missing
  projection shortcut or BatchNorm, a conv bias too many or a classifier of another
  width changes the count."""
  model = models.create(name, num_classes=1000, **options)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
  assert sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes["params"])) == count


def test_small_cnn_layers_follow_the_architecture():
  model = models.create("small_cnn", num_classes=5, widths=(4, 6, 8), hidden=10)
  x = jnp.ones((3, 16, 16, 1))
  variables = model.init(jax.random.key(0), x)
  _, feats = models.apply_with_features(model, variables, x, layers=["conv1", "conv3", "fc1"])
  chex.assert_shape([feats["conv1"], feats["conv3"], feats["fc1"]],
                    [(3, 16, 16, 4), (3, 4, 4, 8), (3, 10)])
  assert (np.asarray(feats["conv1"]) >= 0).all()  # recorded after the ReLU
  with pytest.raises(KeyError, match="unknown layer"):
    models.apply_with_features(model, variables, x, layers=["conv9"])


def test_inference_uses_running_averages_and_training_updates_them():
  model = models.create("small_cnn", num_classes=3, widths=(4,), hidden=8)
  x = jax.random.normal(jax.random.key(1), (8, 8, 8, 3)) * 3 + 1
  variables = model.init(jax.random.key(0), x)
  # Inference: a row's output does not depend on the rest of the batch.
  full = model.apply(variables, x)
  np.testing.assert_allclose(model.apply(variables, x[:2]), full[:2], rtol=1e-5, atol=1e-5)
  # Training: batch statistics are used and the running averages move.
  train_out, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
  assert not np.allclose(train_out, full, atol=1e-3)
  # Running mean after one step = 0.9 * 0 + 0.1 * the batch mean of the conv output.
  conv = jax.lax.conv_general_dilated(
      x, variables["params"]["Conv_0"]["kernel"], (1, 1), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(updates["batch_stats"]["BatchNorm_0"]["mean"],
                             0.1 * np.asarray(conv).mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-5)


def test_unknown_model_and_option_are_user_errors():
  with pytest.raises(UserError, match="unknown model"):
    models.create("lenet", 10)
  with pytest.raises(UserError, match="bad option"):
    models.create("small_cnn", 10, depth=3)


@pytest.mark.parametrize("padding", ["SAME", "VALID", ((2, 0), (1, 3))])
@pytest.mark.parametrize("shape", [(3, 3, 3, 16), (5, 3, 1, 4), (1, 1, 3, 8)])
def test_input_conv_equals_lax_in_value_and_both_gradients(padding, shape):
  from jax import lax
  from interp_jax.models.common import input_conv
  x = jax.random.uniform(jax.random.key(0), (4, 11, 9, shape[2]))
  w = jax.random.normal(jax.random.key(1), shape)
  dn = ("NHWC", "HWIO", "NHWC")
  probe = jax.random.normal(jax.random.key(2), lax.conv_general_dilated(
      x, w, (1, 1), padding, dimension_numbers=dn).shape)

  def loss(conv):  # a non-linear read-out, so the cotangent varies per position
    return lambda x, w, probe=probe: jnp.sum(
        jnp.tanh(conv(x, w, (1, 1), padding, dimension_numbers=dn)) * probe)

  # The fast path on every backend (by default it is taken on CPU only). Each check is
  # one jitted program (called eagerly, every primitive would compile on its own).
  ours, ref = loss(functools.partial(input_conv, fast=True)), loss(lax.conv_general_dilated)
  np.testing.assert_allclose(jax.jit(ours)(x, w), jax.jit(ref)(x, w), rtol=1e-6)
  grads = lambda f: jax.jit(jax.grad(f, (0, 1)))(x, w)
  chex.assert_trees_all_close(grads(ours), grads(ref), rtol=1e-5, atol=1e-5)
  # Forward mode too, along the image and the kernel together.
  tangents = (jax.random.normal(jax.random.key(3), x.shape), jax.random.normal(
      jax.random.key(4), w.shape))
  along = lambda f: jax.jit(lambda *p: jax.jvp(f, p, tangents)[1])(x, w)
  np.testing.assert_allclose(along(ours), along(ref), rtol=1e-4, atol=1e-4)
  # Under vmap (per-example input gradients) too.
  per_example = jax.jit(jax.vmap(jax.grad(ours), in_axes=(0, None, 0)))(
      x[:, None], w, probe[:, None])
  np.testing.assert_allclose(per_example[:, 0], grads(ref)[0], rtol=1e-5, atol=1e-5)


def test_input_conv_passes_strided_and_dilated_calls_to_lax():
  from jax import lax
  from interp_jax.models.common import input_conv
  x = jax.random.uniform(jax.random.key(0), (2, 12, 12, 3))
  w = jax.random.normal(jax.random.key(1), (3, 3, 3, 5))
  dn = ("NHWC", "HWIO", "NHWC")
  for kwargs in ({"window_strides": (2, 2)}, {"window_strides": (1, 1), "rhs_dilation": (2, 2)}):
    got = jax.grad(lambda x: jnp.sum(input_conv(x, w, padding="SAME", dimension_numbers=dn,
                                                **kwargs) ** 2))(x)
    want = jax.grad(lambda x: jnp.sum(lax.conv_general_dilated(
        x, w, padding="SAME", dimension_numbers=dn, **kwargs) ** 2))(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


JVP_CASES = [("small_cnn", {"widths": (4, 8), "hidden": 8}, 8),
             ("resnet18", {"base_width": 4}, 8),
             ("vgg11", {"widths": (4, 4, 8, 8, 8), "hidden": 8}, 32)]


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("name,options,size", JVP_CASES)
def test_forward_mode_through_every_model_matches_reverse_mode(name, options, size, fast,
                                                                monkeypatch):
  """jax.jvp and jax.jacfwd of the logits w.r.t. the image equal jax.jacrev's rows.

  With the first conv's fast input gradient on and off: the fast path is a
  custom_jvp, so forward mode works through it (a custom_vjp would refuse). Each
  transform is jitted: called eagerly, every primitive compiles on its own (3-10x
  slower here).
  """
  from interp_jax.models import common
  monkeypatch.setattr(common, "fast_input_grad", lambda: fast)
  model = models.create(name, num_classes=3, **options)
  x = jax.random.uniform(jax.random.key(0), (2, size, size, 3))
  variables = _random_variables(model, x, 1)
  logits = lambda z: model.apply(variables, z)
  jac = jax.jit(jax.jacrev(logits))(x)  # [2, 3, 2, size, size, 3]
  t = jax.random.normal(jax.random.key(2), x.shape)
  along_t = jax.jit(lambda x, t: jax.jvp(logits, (x,), (t,))[1])(x, t)
  np.testing.assert_allclose(along_t, jnp.einsum("bkcHWC,cHWC->bk", jac, t),
                             rtol=2e-3, atol=2e-4)
  np.testing.assert_allclose(jax.jit(jax.jacfwd(logits))(x[:1]), jac[:1, :, :1], rtol=2e-3,
                             atol=2e-4)


# Naive float64 numpy forward passes of the zoo's architectures, as their papers and
# torchvision write them, reading the Flax variables by name: a dropped residual, a
# BatchNorm in the wrong place, a stride on the wrong conv, a shortcut or a padding
# other than PyTorch's, a pool in the wrong place or a layer recorded at the wrong
# point changes the logits or a named feature.

def _conv(x, w, stride=1, pad=0, bias=None):
  """x [B, H, W, C], w [kh, kw, C, O]: one matmul per kernel tap, zero padding."""
  kh, kw = w.shape[:2]
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
  out = sum(x[:, i:i + stride * ho:stride, j:j + stride * wo:stride] @ w[i, j]
            for i in range(kh) for j in range(kw))
  return out if bias is None else out + bias


def _max_pool(x, size, stride, pad=0):
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), constant_values=-np.inf)
  ho, wo = (x.shape[1] - size) // stride + 1, (x.shape[2] - size) // stride + 1
  return np.max([x[:, i:i + stride * ho:stride, j:j + stride * wo:stride]
                 for i in range(size) for j in range(size)], axis=0)


def _adaptive_avg_pool(x, size):
  """PyTorch's bins: rows floor(i H / size) .. ceil((i + 1) H / size)."""
  h, w = x.shape[1:3]
  return np.stack([np.stack([x[:, (i * h) // size:-(-(i + 1) * h // size),
                               (j * w) // size:-(-(j + 1) * w // size)].mean((1, 2))
                             for j in range(size)], 1) for i in range(size)], 1)


def _relu(x):
  return np.maximum(x, 0)


class _Naive:
  """Reads params and batch_stats by module name, in float64."""

  def __init__(self, variables):
    to64 = lambda t: jax.tree.map(lambda a: np.asarray(a, np.float64), t)
    self.p, self.s = to64(variables["params"]), to64(variables.get("batch_stats", {}))

  def bn(self, x, *path):
    p, s = self.p, self.s
    for k in path:
      p, s = p[k], s[k]
    return (x - s["mean"]) / np.sqrt(s["var"] + 1e-5) * p["scale"] + p["bias"]

  def dense(self, x, name):
    return x @ self.p[name]["kernel"] + self.p[name]["bias"]


def _naive_resnet(variables, x, stage_sizes, bottleneck, stem):
  n, feats = _Naive(variables), {}
  if stem == "imagenet":
    x = _conv(x, n.p["stem_conv"]["kernel"], 2, 3)
  else:
    x = _conv(x, n.p["stem_conv"]["kernel"], 1, 1)
  x = feats["stem"] = _relu(n.bn(x, "stem_bn"))
  if stem == "imagenet":
    x = _max_pool(x, 3, 2, 1)
  for i, blocks in enumerate(stage_sizes):
    for j in range(blocks):
      name, stride = f"layer{i + 1}_{j}", 2 if i > 0 and j == 0 else 1
      w = lambda conv: n.p[name][conv]["kernel"]
      if bottleneck:  # the stride on the 3x3 conv (v1.5)
        y = _relu(n.bn(_conv(x, w("conv1")), name, "bn1"))
        y = _relu(n.bn(_conv(y, w("conv2"), stride, 1), name, "bn2"))
        y = n.bn(_conv(y, w("conv3")), name, "bn3")
      else:
        y = _relu(n.bn(_conv(x, w("conv1"), stride, 1), name, "bn1"))
        y = n.bn(_conv(y, w("conv2"), 1, 1), name, "bn2")
      if "proj" in n.p[name]:
        x = n.bn(_conv(x, w("proj"), stride), name, "bn_proj")
      x = _relu(x + y)
    feats[f"layer{i + 1}"] = x
  feats["pool"] = x.mean((1, 2))
  feats["logits"] = n.dense(feats["pool"], "head")
  return feats


def _naive_vgg(variables, x, depth, batch_norm, pool_size=None):
  n, feats = _Naive(variables), {}
  for i, convs in enumerate({11: (1, 1, 2, 2, 2), 16: (2, 2, 3, 3, 3)}[depth]):
    for j in range(convs):
      conv = n.p[f"conv{i + 1}_{j + 1}"]
      x = _conv(x, conv["kernel"], 1, 1, conv.get("bias"))
      x = _relu(n.bn(x, f"bn{i + 1}_{j + 1}") if batch_norm else x)
    feats[f"block{i + 1}"] = x
    x = _max_pool(x, 2, 2)
  if pool_size:
    x = _adaptive_avg_pool(x, pool_size)
  x = feats["fc1"] = _relu(n.dense(x.reshape(len(x), -1), "dense1"))
  x = feats["fc2"] = _relu(n.dense(x, "dense2"))
  feats["logits"] = n.dense(x, "head")
  return feats


def _naive_alexnet(variables, x):
  n, feats = _Naive(variables), {}
  for i, (kernel, stride, pad, pool) in enumerate(
      [(11, 4, 2, True), (5, 1, 2, True), (3, 1, 1, False), (3, 1, 1, False),
       (3, 1, 1, True)]):
    conv = n.p[f"Conv_{i}"]
    assert conv["kernel"].shape[0] == kernel
    x = feats[f"conv{i + 1}"] = _relu(_conv(x, conv["kernel"], stride, pad, conv["bias"]))
    if pool:
      x = _max_pool(x, 3, 2)
  x = _adaptive_avg_pool(x, 6).reshape(len(x), -1)
  x = feats["fc1"] = _relu(n.dense(x, "dense1"))
  x = feats["fc2"] = _relu(n.dense(x, "dense2"))
  feats["logits"] = n.dense(x, "head")
  return feats


def _random_variables(model, x, seed):
  """Variables of model's shapes drawn in numpy (model.init would compile every
  initialiser: half a minute for these tiny ResNets on 2 cores). BatchNorm statistics,
  scales and biases away from their init (0, 1, 1, 0), so a swapped mean and
  variance, a missing BatchNorm or a dropped bias shows."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)

  def leaf(path, a):
    name = jax.tree_util.keystr(path)
    if "'kernel'" in name:
      return rng.normal(0, 1 / np.sqrt(np.prod(a.shape[:-1])), a.shape).astype(a.dtype)
    if "'mean'" in name or "'bias'" in name:
      return rng.normal(0, 0.1, a.shape).astype(a.dtype)
    if "'var'" in name or "'scale'" in name:
      return rng.uniform(0.5, 1.5, a.shape).astype(a.dtype)
    raise AssertionError(f"a variable this test does not know: {name}")
  return jax.tree_util.tree_map_with_path(leaf, shapes)


NAIVE_CASES = [
    ("resnet18", {"base_width": 4}, 8,
     lambda v, x: _naive_resnet(v, x, (2, 2, 2, 2), False, "cifar")),
    ("resnet18", {"base_width": 4, "stem": "imagenet"}, 32,
     lambda v, x: _naive_resnet(v, x, (2, 2, 2, 2), False, "imagenet")),
    ("resnet50", {"base_width": 2, "stem": "imagenet"}, 32,
     lambda v, x: _naive_resnet(v, x, (3, 4, 6, 3), True, "imagenet")),
    ("vgg11", {"widths": (4, 4, 8, 8, 8), "hidden": 8}, 32,
     lambda v, x: _naive_vgg(v, x, 11, True)),
    ("vgg16", {"widths": (4, 4, 8, 8, 8), "hidden": 8, "batch_norm": False, "conv_bias": True,
               "pool_size": 2}, 32, lambda v, x: _naive_vgg(v, x, 16, False, 2)),
    ("alexnet", {"hidden": 8}, 63, _naive_alexnet),
]


@pytest.mark.parametrize("name,options,size,naive", NAIVE_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(NAIVE_CASES)])
def test_logits_and_every_named_layer_equal_a_naive_forward_pass(name, options, size, naive):
  """Tiny widths, inference mode; the naive pass in float64 numpy."""
  model = models.create(name, num_classes=3, **options)
  x = jax.random.uniform(jax.random.key(0), (2, size, size, 3))
  variables = _random_variables(model, x, 2)
  logits, feats = jax.jit(lambda v, x: models.apply_with_features(model, v, x))(variables, x)
  want = naive(variables, np.asarray(x, np.float64))
  assert set(want) == set(model.layer_names)
  for layer in model.layer_names:
    got = np.asarray(feats[layer])
    np.testing.assert_allclose(got, want[layer], rtol=1e-4, atol=1e-4 * np.abs(want[layer]).max(),
                               err_msg=layer)
  np.testing.assert_allclose(logits, want["logits"], rtol=1e-4,
                             atol=1e-4 * np.abs(want["logits"]).max())
