"""The consistent loss: distances by hand, config checks, and the step against a reference."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from interp_jax import attacks, losses, models
from interp_jax.training import objective, steps
from interp_jax.default_config import base_config, select_variant
from interp_jax.errors import UserError


def test_distances_match_hand_worked_values():
  a = jnp.array([[1.0, 0.0], [0.0, 2.0]])
  b = jnp.array([[0.0, 1.0], [0.0, 1.0]])
  # l2: mean of squared differences over the 4 elements: (1 + 1 + 0 + 1) / 4
  np.testing.assert_allclose(losses.feature_distance(a, b, "l2"), 0.75)
  # cosine: first pair orthogonal (1), second parallel (0)
  np.testing.assert_allclose(losses.feature_distance(a, b, "cosine"), 0.5, atol=1e-6)
  # logit pairing: per-example squared norms 2 and 1, averaged
  np.testing.assert_allclose(losses.feature_distance(a, b, "logit_pairing"), 1.5)
  # KL(p || q) with p = softmax(a), q = softmax(b), by hand for the first row
  p = np.exp([1.0, 0.0]) / np.exp([1.0, 0.0]).sum()
  q = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
  p2 = np.exp([0.0, 2.0]) / np.exp([0.0, 2.0]).sum()
  kl = (np.sum(p * np.log(p / q)) + np.sum(p2 * np.log(p2 / q))) / 2
  np.testing.assert_allclose(losses.feature_distance(a, b, "kl_logits"), kl, rtol=1e-5)
  for d in losses.DISTANCES:
    np.testing.assert_allclose(losses.feature_distance(a, a, d), 0.0, atol=1e-6)
  # Features of any rank are flattened per example.
  x = jax.random.normal(jax.random.key(0), (3, 4, 4, 2))
  np.testing.assert_allclose(losses.feature_distance(x, 2 * x, "cosine"), 0.0, atol=1e-6)


def _config(variant="adv_consistent", **changes):
  c = select_variant(base_config(), variant)
  for k, v in changes.items():
    section, field = k.split(".")
    c[section][field] = v
  return c


LAYERS = models.create("small_cnn", 9).layer_names


@pytest.mark.parametrize("changes,message", [
    ({"consistency.layers": ("conv9",)}, "does not have"),
    ({"consistency.distance": "manhattan"}, "unknown config.consistency.distance"),
    ({"consistency.distance": "kl_logits"}, "compares logits"),
    ({"consistency.weight": -1.0}, "must be >= 0"),
    ({"adv.attack": "deepfool"}, "unknown attack"),
    ({"adv.eps": 2.0}, "config.adv: eps must be in"),
    ({"adv.eps": 0.0}, "config.adv: eps must be positive"),
    ({"adv.norm": "l1"}, "config.adv: unknown norm"),
    ({"adv.steps": 0}, "config.adv: steps must be a positive integer"),
])
def test_bad_objectives_are_user_errors(changes, message):
  with pytest.raises(UserError, match=message):
    objective.from_config(_config(**changes), LAYERS)


def test_variants_set_attack_and_lambda():
  standard, adv, cons = (objective.from_config(_config(v), LAYERS)
                         for v in ("standard", "adv", "adv_consistent"))
  assert standard.attack is None and not standard.consistent
  assert adv.attack == "pgd" and adv.weight == 0 and not adv.consistent
  assert cons.attack == "pgd" and cons.weight == 1.0 and cons.consistent
  ok = objective.from_config(_config(**{"consistency.distance": "kl_logits",
                                        "consistency.layers": ("logits",)}), LAYERS)
  assert ok.layers == ("logits",)


def _setup(obj, seed=0):
  model = models.create("small_cnn", 5, widths=(4, 8), hidden=8)
  tx = optax.sgd(0.1)  # no warmup: the first step moves the parameters
  state = steps.create_train_state(model, tx, (8, 8, 3), jax.random.key(seed))
  x = jax.random.uniform(jax.random.key(1), (6, 8, 8, 3))
  return model, state, {"image": x, "label": jnp.arange(6) % 5}


@pytest.mark.parametrize("distance,layers", [("l2", ("conv2",)), ("cosine", ("conv1", "fc1")),
                                             ("kl_logits", ("logits",))])
def test_train_step_computes_the_objective_of_method_md(distance, layers):
  obj = objective.Objective(attack="pgd", eps=8 / 255, steps=2, layers=layers,
                            distance=distance, weight=0.7, clean_weight=0.5, adv_weight=2.0)
  model, state, batch = _setup(obj)
  x, y = batch["image"], batch["label"]
  x_adv = steps.make_adversary(model, obj, seed=3)(state, x, y)
  # The adversary is the training attack with inference-mode BatchNorm.
  np.testing.assert_allclose(
      x_adv, attacks.pgd(model.apply, {"params": state.params, "batch_stats": state.batch_stats},
                         x, y, jax.random.fold_in(jax.random.key(3), 0), eps=8 / 255, steps=2),
      atol=1e-6)
  # A naive reference of L = w_c CE(x) + w_a CE(x') + lambda sum_l d(phi_l(x), phi_l(x')).
  logits, upd = model.apply({"params": state.params, "batch_stats": state.batch_stats},
                            jnp.concatenate([x, x_adv]), train=True,
                            mutable=["batch_stats", "intermediates"])
  feats = upd["intermediates"]
  ref = (0.5 * losses.cross_entropy(logits[:6], y).mean()
         + 2.0 * losses.cross_entropy(logits[6:], y).mean()
         + 0.7 * sum(losses.feature_distance(feats[l][:6], feats[l][6:], distance)
                     for l in layers))
  _, metrics = jax.jit(steps.make_train_step(model, obj, seed=3))(state, batch)
  np.testing.assert_allclose(metrics["train_loss"] / metrics["count"], ref, rtol=1e-5)
  total = (0.5 * metrics["clean_ce"] + 2.0 * metrics["adv_ce"]
           + 0.7 * metrics["consistency"]) / metrics["count"]
  np.testing.assert_allclose(metrics["train_loss"] / metrics["count"], total, rtol=1e-5)


def test_one_compiled_step_serves_every_seed_and_lambda():
  """The seed's key and lambda enter the step as arguments (steps.run_constants): one
  trace serves seeds 3 and 4 at lambdas 0.7 and 2.0, and each call equals the step
  built for that seed and lambda with them as constants (the default)."""
  import dataclasses
  obj = objective.Objective(attack="pgd", eps=8 / 255, steps=2, layers=("conv2",), weight=0.7)
  model, state, batch = _setup(obj)
  chex.clear_trace_counter()
  shared = jax.jit(chex.assert_max_traces(steps.make_train_step(model, obj), n=1))
  outs = {}
  for seed, weight in ((3, 0.7), (4, 0.7), (3, 2.0)):
    this = dataclasses.replace(obj, weight=weight)
    got = shared(state, batch, steps.run_constants(this, seed))
    want = jax.jit(steps.make_train_step(model, this, seed=seed))(state, batch)
    chex.assert_trees_all_close(got, want, atol=1e-6)
    outs[seed, weight] = got
  # The key and lambda are used: another seed, or another lambda, is another update.
  for other in ((4, 0.7), (3, 2.0)):
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), outs[3, 0.7][0].params,
                         outs[other][0].params)
    assert max(jax.tree.leaves(moved)) > 0, other


def test_zero_lambda_is_adversarial_training_and_standard_has_no_attack():
  adv = objective.Objective(attack="pgd", steps=2, layers=("conv2",), weight=0.0)
  cons = objective.Objective(attack="pgd", steps=2, layers=("conv2",), weight=1.0)
  model, state, batch = _setup(adv)
  s_adv, m_adv = jax.jit(steps.make_train_step(model, adv))(state, batch)
  s_cons, m_cons = jax.jit(steps.make_train_step(model, cons))(state, batch)
  assert "consistency" not in m_adv and "consistency" in m_cons
  assert float(m_cons["consistency"]) > 0
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), s_adv.params, s_cons.params)
  assert max(jax.tree.leaves(moved)) > 0  # the term changes the update
  _, m_std = jax.jit(steps.make_train_step(model, objective.Objective()))(state, batch)
  assert "adv_ce" not in m_std and "train_adv_accuracy" not in m_std


def test_anchoring_the_clean_features_changes_only_the_gradient():
  both = objective.Objective(attack="pgd", steps=2, layers=("fc1",), weight=5.0)
  anchored = objective.Objective(attack="pgd", steps=2, layers=("fc1",), weight=5.0,
                                 anchor_clean=True)
  model, state, batch = _setup(both)
  s_both, m_both = jax.jit(steps.make_train_step(model, both))(state, batch)
  s_anch, m_anch = jax.jit(steps.make_train_step(model, anchored))(state, batch)
  np.testing.assert_allclose(m_both["train_loss"], m_anch["train_loss"], rtol=1e-6)
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), s_both.params, s_anch.params)
  assert max(jax.tree.leaves(moved)) > 0


def test_anchoring_stops_the_gradient_through_the_clean_side_only():
  """One SGD step equals a naive reference with phi(x) held fixed, and differs from
  the one with phi(x') held fixed (the wrong side anchored)."""
  obj = objective.Objective(attack="pgd", steps=2, layers=("fc1",), weight=5.0,
                            anchor_clean=True, clean_weight=0.0, adv_weight=0.0)
  model, state, batch = _setup(obj)
  x, y = batch["image"], batch["label"]
  x_adv = steps.make_adversary(model, obj)(state, x, y)

  def term(params, anchor_clean):
    _, upd = model.apply({"params": params, "batch_stats": state.batch_stats},
                         jnp.concatenate([x, x_adv]), train=True,
                         mutable=["batch_stats", "intermediates"])
    f = upd["intermediates"]["fc1"]
    clean, adv = f[:6], f[6:]
    clean, adv = (jax.lax.stop_gradient(clean), adv) if anchor_clean else (
        clean, jax.lax.stop_gradient(adv))
    return 5.0 * jnp.mean(jnp.square(clean - adv))

  new_state, _ = jax.jit(steps.make_train_step(model, obj))(state, batch)
  step = lambda anchor_clean: jax.tree.map(lambda p, g: p - 0.1 * g, state.params,
                                           jax.grad(term)(state.params, anchor_clean))
  chex.assert_trees_all_close(new_state.params, step(True), atol=1e-5, rtol=0)
  with pytest.raises(AssertionError):
    chex.assert_trees_all_close(new_state.params, step(False), atol=1e-5, rtol=0)


def test_eps_warmup_ramps_the_training_attack():
  """At step s the attack's eps is min(1, (s + 1) / W) * eps: the same images as the
  attack called with that eps."""
  obj = objective.Objective(attack="pgd", eps=8 / 255, steps=2, eps_warmup_steps=4)
  model, state, batch = _setup(obj)
  x, y = batch["image"], batch["label"]
  adversary = jax.jit(steps.make_adversary(model, obj, seed=1))
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  for s, ramp in ((0, 0.25), (1, 0.5), (3, 1.0), (10, 1.0)):
    x_adv = adversary(state.replace(step=s), x, y)
    assert float(jnp.abs(x_adv - x).max()) <= ramp * 8 / 255 + 1e-6
    expected = attacks.pgd(model.apply, variables, x, y, jax.random.fold_in(jax.random.key(1), s),
                           eps=ramp * 8 / 255, steps=2)
    np.testing.assert_allclose(x_adv, expected, atol=1e-6)
