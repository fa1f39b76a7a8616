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

  # The fast path on every backend (by default it is taken on CPU only).
  ours, ref = loss(functools.partial(input_conv, fast=True)), loss(lax.conv_general_dilated)
  np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-6)
  for got, want in zip(jax.grad(ours, (0, 1))(x, w), jax.grad(ref, (0, 1))(x, w)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # Forward mode too, along the image and the kernel together.
  tangents = (jax.random.normal(jax.random.key(3), x.shape), jax.random.normal(
      jax.random.key(4), w.shape))
  np.testing.assert_allclose(jax.jvp(ours, (x, w), tangents)[1],
                             jax.jvp(ref, (x, w), tangents)[1], rtol=1e-4, atol=1e-4)
  # Inside jit and under vmap (per-example input gradients) too.
  per_example = jax.jit(jax.vmap(jax.grad(ours), in_axes=(0, None, 0)))(
      x[:, None], w, probe[:, None])
  np.testing.assert_allclose(per_example[:, 0], jax.grad(ref)(x, w), rtol=1e-5, atol=1e-5)


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
  custom_jvp, so forward mode works through it (a custom_vjp would refuse).
  """
  from interp_jax.models import common
  monkeypatch.setattr(common, "fast_input_grad", lambda: fast)
  model = models.create(name, num_classes=3, **options)
  x = jax.random.uniform(jax.random.key(0), (2, size, size, 3))
  variables = model.init(jax.random.key(1), x)
  logits = lambda z: model.apply(variables, z)
  jac = jax.jacrev(logits)(x)  # [2, 3, 2, size, size, 3]
  t = jax.random.normal(jax.random.key(2), x.shape)
  _, along_t = jax.jvp(logits, (x,), (t,))
  np.testing.assert_allclose(along_t, jnp.einsum("bkcHWC,cHWC->bk", jac, t),
                             rtol=2e-3, atol=2e-4)
  np.testing.assert_allclose(jax.jacfwd(logits)(x[:1]), jac[:1, :, :1], rtol=2e-3, atol=2e-4)
