"""A user's own Flax module: adapted without changes, attacked, and analysed in one call."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp_jax import analysis, attacks, losses, models
from interp_jax.report import schema


class UserNet(nn.Module):
  """Written as a user would: no `train` argument, one sown feature, a named submodule."""

  @nn.compact
  def __call__(self, x):
    h = nn.relu(nn.Conv(6, (3, 3), name="conv")(x))
    f = nn.relu(nn.Dense(12, name="hidden")(h.reshape(h.shape[0], -1)))
    self.sow("intermediates", "features", f)
    return nn.Dense(3, name="out")(f)


class Silent(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(3)(x.reshape(x.shape[0], -1))


@pytest.fixture(scope="module")
def net():
  images = jax.random.uniform(jax.random.key(0), (120, 8, 8, 3))
  module = UserNet()
  return module, module.init(jax.random.key(1), images[:1]), images


def test_adapt_reads_sown_and_captured_features(net):
  module, variables, images = net
  sown = models.adapt(module, variables, images[:1])
  assert sown.layer_names == ("features",)
  logits, feats = models.apply_with_features(sown, variables, images[:4])
  np.testing.assert_allclose(logits, module.apply(variables, images[:4]), rtol=1e-6)
  # The sown feature recomputed by hand from the parameters.
  pre = jax.lax.conv_general_dilated(
      images[:4], variables["params"]["conv"]["kernel"], (1, 1), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC")) + variables["params"]["conv"]["bias"]
  h = jax.nn.relu(pre)
  f = jax.nn.relu(h.reshape(4, -1) @ variables["params"]["hidden"]["kernel"]
                  + variables["params"]["hidden"]["bias"])
  np.testing.assert_allclose(feats["features"], f, rtol=1e-4, atol=1e-5)
  captured = models.adapt(module, variables, images[:1], layers=("conv", "hidden"))
  assert captured.layer_names == ("conv", "hidden")
  _, feats = models.apply_with_features(captured, variables, images[:4])
  np.testing.assert_allclose(feats["conv"], pre, rtol=1e-4, atol=1e-5)  # the submodule's output
  with pytest.raises(ValueError, match="no submodule"):
    models.adapt(module, variables, images[:1], layers=("fc9",))
  silent = Silent()
  with pytest.raises(ValueError, match="records no features"):
    models.adapt(silent, silent.init(jax.random.key(0), images[:1]), images[:1])


def test_attacks_work_on_an_adapted_module(net):
  """The adapted model is attacked as the module itself: PGD through it equals PGD
  through module.apply (same key), and it raises the loss beyond its random start."""
  module, variables, images = net
  model = models.adapt(module, variables, images[:1])
  x = images[:16]
  labels = jnp.argmax(model.apply(variables, x), -1)
  key, eps = jax.random.key(2), 8 / 255
  adv = attacks.pgd(model.apply, variables, x, labels, key, eps=eps, steps=3)
  direct = attacks.pgd(lambda v, z: module.apply(v, z), variables, x, labels, key, eps=eps,
                       steps=3)
  np.testing.assert_allclose(adv, direct, atol=1e-6)
  assert float(jnp.abs(adv - x).max()) <= eps + 1e-6
  assert float(adv.min()) >= 0 and float(adv.max()) <= 1
  loss = lambda z: float(losses.cross_entropy(model.apply(variables, z), labels).mean())
  start = jnp.clip(x + attacks.random_point(key, x.shape, eps, "linf"), 0, 1)
  assert loss(adv) > max(loss(x), loss(start)) + 1e-3
  # Without a random start, every image moves along its gradient.
  moved = attacks.bim(model.apply, variables, x, labels, eps=eps, steps=3) - x
  assert float(jnp.abs(moved).reshape(16, -1).max(1).min()) > eps / 2


def test_one_call_analyses_it_and_equals_a_naive_recomputation(net):
  module, variables, images = net
  model = models.adapt(module, variables, images[:1])
  labels = np.arange(120) % 3
  cfg = analysis.default_config()
  cfg.k, cfg.steps, cfg.batch_size, cfg.eps_curve = 10, 2, 40, (0.0, 1.0)
  cfg.report_neurons, cfg.report_tiles = 1, 2
  results, grids = analysis.analyze_model(model, variables, images, labels,
                                          ("a", "b", "c"), eps=4 / 255, cfg=cfg,
                                          progress=False)
  schema.validate(results.to_json())
  assert results.settings["similarity"] == "identity" and grids
  real = results.layers["features"].sets["real"]
  # Naive: each neuron's 10 most active images (uint8-rounded, as analysed), the
  # purity of their labels; a neuron firing on fewer than 11 images is excluded.
  stored = np.round(np.asarray(images) * 255) / 255
  _, feats = models.apply_with_features(model, variables, jnp.asarray(stored, jnp.float32))
  acts = np.asarray(feats["features"])
  for n in range(acts.shape[1]):
    order = np.argsort(-acts[:, n], kind="stable")
    included = acts[order[9], n] > 0 and acts[order[9], n] > acts[order[10], n]
    assert real.included[n] == included
    if included:
      p = np.bincount(labels[order[:10]], minlength=3) / 10
      assert real.per_neuron[n] == pytest.approx(float(p @ p), abs=1e-5)
  assert real.num_included > 0
  with pytest.raises(ValueError, match="label 3 has no class"):
    analysis.analyze_model(model, variables, images, labels + 1, ("a", "b", "c"), eps=0.01)
  with pytest.raises(ValueError, match="3 logits and 2 class names"):
    analysis.analyze_model(model, variables, images, labels % 2, ("a", "b"), eps=0.01)
