"""The successful set under its two rules, and the success rate the eps sweep records,
against a naive recomputation on a small untrained network."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp_jax import analysis, attacks, data, models
from interp_jax.analysis import extraction as extract_lib


class Net(nn.Module):
  @nn.compact
  def __call__(self, x):
    h = nn.relu(nn.Conv(6, (3, 3), name="conv")(x))
    f = nn.relu(nn.Dense(16, name="hidden")(h.reshape(h.shape[0], -1)))
    self.sow("intermediates", "features", f)
    return nn.Dense(3, name="out")(f)


def test_right_to_wrong_and_turned_wrong_match_a_naive_recomputation():
  images = np.asarray(jax.random.uniform(jax.random.key(0), (120, 8, 8, 3)))
  labels = np.arange(120) % 3
  module = Net()
  variables = module.init(jax.random.key(1), images[:1])
  model = models.adapt(module, variables, images[:1])
  eps = 16 / 255
  cfg = analysis.default_config()
  cfg.k, cfg.steps, cfg.batch_size, cfg.eps_curve = 5, 3, 40, (0.0, 0.5, 1.0)
  cfg.report_neurons, cfg.report_tiles = 1, 2
  out = {}
  for rule in ("changed", "right_to_wrong"):
    cfg.successful = rule
    out[rule], _ = analysis.analyze_model(model, variables, images, labels, ("a", "b", "c"),
                                          eps=eps, cfg=cfg, progress=False)
  # Naive: the analysed images (uint8-rounded), attacked with the analysis's keys.
  source = data.ArraySource(images, labels)
  x = data.to_model_input(source.get(np.arange(120)))["image"]
  spec = attacks.AttackSpec("pgd", eps, "linf", 3)
  x_adv = extract_lib.adversarial_images(model, variables, source, spec, np.arange(120),
                                         key=jax.random.key(cfg.seed), batch_size=40)
  clean = np.asarray(jnp.argmax(model.apply(variables, jnp.asarray(x)), -1))
  adv = np.asarray(jnp.argmax(model.apply(variables, jnp.asarray(x_adv)), -1))
  changed = adv != clean
  right_to_wrong = (clean == labels) & (adv != labels)
  assert changed.sum() > right_to_wrong.sum() > 0   # the rules differ on these images
  for rule, mask in (("changed", changed), ("right_to_wrong", right_to_wrong)):
    results = out[rule]
    assert results.attack.num_successful == int(mask.sum())
    assert results.attack.success_rate == pytest.approx(mask.mean())
    for ids in results.layers["features"].sets["successful"].topk_indices:
      assert set(ids) <= set(np.flatnonzero(mask))
    # The success rate the sweep reads: of the correct images, the share made wrong.
    turned = right_to_wrong.sum() / (clean == labels).sum()
    assert results.attack.turned_wrong == pytest.approx(turned)
    points = results.eps_curve.points
    assert points[0].turned_wrong == 0.0 and points[2].turned_wrong == pytest.approx(turned)
    # At eps / 2, streamed again: the same share of the images attacked at eps / 2.
    half = extract_lib.adversarial_images(model, variables, source, spec.replace(eps=eps / 2),
                                          np.arange(120), key=jax.random.key(cfg.seed),
                                          batch_size=40)
    adv_half = np.asarray(jnp.argmax(model.apply(variables, jnp.asarray(half)), -1))
    assert points[1].turned_wrong == pytest.approx(
        ((clean == labels) & (adv_half != labels)).sum() / (clean == labels).sum())
  # Only the successful set depends on the rule.
  for name in ("real", "adversarial"):
    assert (out["changed"].layers["features"].sets[name].per_neuron
            == out["right_to_wrong"].layers["features"].sets[name].per_neuron)
