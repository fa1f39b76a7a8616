"""Attacks: budgets, closed forms, monotone loss, targets, projections, vmap, traces."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp_jax import attacks, losses, models
from interp_jax.attacks import gradient, projections
from interp_jax.errors import UserError

KEY = jax.random.key(0)


def linear_model(num_classes=4, dim=(4, 4, 1), scale=3.0, seed=0):
  """apply_fn of a linear classifier on flattened images, and its (W, b)."""
  rng = np.random.default_rng(seed)
  w = jnp.asarray(rng.normal(size=(int(np.prod(dim)), num_classes)) * scale, jnp.float32)
  b = jnp.asarray(rng.normal(size=(num_classes,)), jnp.float32)

  def apply_fn(variables, x):
    return x.reshape(x.shape[0], -1) @ variables["w"] + variables["b"]

  return apply_fn, {"w": w, "b": b}


def images(n=16, shape=(4, 4, 1), lo=0.0, hi=1.0, seed=1):
  return jax.random.uniform(jax.random.key(seed), (n, *shape), minval=lo, maxval=hi)


def cnn():
  model = models.create("small_cnn", num_classes=5, widths=(4, 8), hidden=8)
  x = images(8, (8, 8, 3))
  return model.apply, model.init(jax.random.key(3), x), x, jnp.arange(8) % 5


ALL = [
    ("fgsm", {}), ("bim", {"steps": 3}), ("pgd", {"steps": 3}),
    ("pgd", {"steps": 3, "targeted": True}), ("least_likely", {"steps": 3}),
    ("mi_fgsm", {"steps": 3}), ("mi_fgsm", {"steps": 3, "random_start": True}),
]


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name,options", ALL)
def test_result_stays_in_the_ball_and_the_box(name, options, norm):
  apply_fn, variables, x, y = cnn()
  eps = 8 / 255 if norm == "linf" else 0.5
  x_adv = attacks.by_name(name)(apply_fn, variables, x, y, KEY, eps=eps, norm=norm, **options)
  chex.assert_equal_shape([x_adv, x])
  assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
  delta = np.asarray(x_adv - x).reshape(len(x), -1)
  size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
  assert size.max() <= eps + 1e-5
  assert size.max() > 0.5 * eps  # it moved


def test_fgsm_on_a_linear_model_is_the_closed_form():
  apply_fn, v = linear_model()
  x, y = images(lo=0.2, hi=0.8), jnp.arange(16) % 4
  w, b = np.asarray(v["w"]), np.asarray(v["b"])
  flat = np.asarray(x).reshape(16, -1)
  z = flat @ w + b
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  grad = (p - np.eye(4)[np.asarray(y)]) @ w.T  # d CE / d x for softmax(xW + b)
  expected = np.clip(flat + 0.1 * np.sign(grad), 0, 1).reshape(x.shape)
  np.testing.assert_allclose(attacks.fgsm(apply_fn, v, x, y, eps=0.1), expected, atol=1e-6)
  l2 = flat + 0.5 * grad / np.linalg.norm(grad, axis=1, keepdims=True)
  np.testing.assert_allclose(attacks.fgsm(apply_fn, v, x, y, eps=0.5, norm="l2"),
                             np.clip(l2, 0, 1).reshape(x.shape), atol=1e-6)


def _loss(apply_fn, v, x, y):
  return float(losses.cross_entropy(apply_fn(v, x), y).mean())


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_loss_rises_with_every_step(norm):
  """CE of a linear model is convex in x, so each unclipped ascent step raises it."""
  apply_fn, v = linear_model(scale=0.5)
  x, y = images(lo=0.4, hi=0.6), jnp.arange(16) % 4
  values = [_loss(apply_fn, v, x, y)] + [
      _loss(apply_fn, v, attacks.bim(apply_fn, v, x, y, eps=1.0, step_size=0.01, steps=k,
                                     norm=norm), y) for k in range(1, 6)]
  assert all(b > a for a, b in zip(values, values[1:])), values


def test_pgd_raises_the_loss_of_a_cnn_more_than_fgsm_and_noise():
  apply_fn, v, x, y = cnn()
  noise = jnp.clip(x + attacks.random_point(KEY, x.shape, 8 / 255, "linf"), 0, 1)
  base, rand = _loss(apply_fn, v, x, y), _loss(apply_fn, v, noise, y)
  one = _loss(apply_fn, v, attacks.fgsm(apply_fn, v, x, y, eps=8 / 255), y)
  many = _loss(apply_fn, v, attacks.pgd(apply_fn, v, x, y, KEY, eps=8 / 255, steps=10), y)
  assert many >= one > max(base, rand)


def test_targeted_attack_reaches_the_target_on_an_easy_model():
  """Class c sums quadrant c of the image: any target is reachable with eps = 0.3."""
  apply_fn, _ = linear_model()
  quadrant = np.zeros((4, 4, 4), np.float32)
  for c, (r, q) in enumerate([(0, 0), (0, 2), (2, 0), (2, 2)]):
    quadrant[r:r + 2, q:q + 2, c] = 1.0
  v = {"w": jnp.asarray(quadrant.reshape(16, 4)), "b": jnp.zeros(4)}
  x = images(64, lo=0.3, hi=0.7)
  target = (jnp.argmax(apply_fn(v, x), -1) + 1) % 4
  x_adv = attacks.pgd(apply_fn, v, x, target, KEY, eps=0.3, steps=20, targeted=True)
  assert float((jnp.argmax(apply_fn(v, x_adv), -1) == target).mean()) >= 0.95


def test_least_likely_aims_at_the_argmin_of_the_clean_prediction():
  apply_fn, v = linear_model(scale=1.0)
  x, y = images(32, lo=0.3, hi=0.7), jnp.zeros(32, jnp.int32)
  target = jnp.argmin(apply_fn(v, x), -1)
  np.testing.assert_array_equal(attacks.least_likely_class(apply_fn, v, x), target)
  x_ll = attacks.least_likely(apply_fn, v, x, y, eps=0.1, steps=5)
  np.testing.assert_allclose(
      x_ll, attacks.bim(apply_fn, v, x, target, eps=0.1, steps=5, targeted=True))
  prob = lambda z: jnp.take_along_axis(jax.nn.softmax(apply_fn(v, z)), target[:, None], 1)
  assert bool((prob(x_ll) > prob(x)).all())


@pytest.mark.parametrize("name,options", ALL)
def test_zero_budget_returns_the_images(name, options):
  apply_fn, variables, x, y = cnn()
  x_adv = attacks.by_name(name)(apply_fn, variables, x, y, KEY, eps=0.0, **options)
  np.testing.assert_array_equal(x_adv, x)


def test_projections_match_a_naive_reference():
  rng = np.random.default_rng(0)
  delta = rng.normal(size=(6, 3, 3, 2)).astype(np.float32)
  delta[0] *= 1e-3  # inside the ball: unchanged
  out = np.asarray(projections.project(jnp.asarray(delta), 0.7, "l2"))
  for d, o in zip(delta, out):
    n = np.linalg.norm(d)
    np.testing.assert_allclose(o, d if n <= 0.7 else d * 0.7 / n, rtol=1e-5)
  np.testing.assert_array_equal(projections.project(jnp.asarray(delta), 0.2, "linf"),
                                np.clip(delta, -0.2, 0.2))
  # Random starts fill the ball and stay in it.
  pts = np.asarray(projections.random_point(KEY, (2000, 2, 2, 1), 0.5, "l2"))
  norms = np.linalg.norm(pts.reshape(2000, -1), axis=1)
  assert norms.max() <= 0.5 + 1e-6 and np.median(norms) > 0.5 * 0.5 ** (1 / 4) * 0.9


def test_ensemble_of_one_model_is_that_model():
  apply_fn, v, x, y = cnn()
  one = attacks.ensemble([apply_fn])
  np.testing.assert_allclose(one((v,), x), apply_fn(v, x), rtol=1e-6)
  for mode in ("logits", "loss"):
    single = attacks.pgd(apply_fn, v, x, y, KEY, eps=8 / 255, steps=3)
    ens = attacks.pgd(attacks.ensemble([apply_fn], mode=mode), (v,), x, y, KEY,
                      eps=8 / 255, steps=3)
    np.testing.assert_allclose(ens, single, atol=1e-6)


def test_ensemble_averages_logits_or_losses():
  fa, va = linear_model(seed=0)
  fb, vb = linear_model(seed=1)
  x, y = images(), jnp.arange(16) % 4
  ens = attacks.ensemble([fa, fb], weights=[3, 1], mode="loss")
  np.testing.assert_allclose(ens((va, vb), x), 0.75 * fa(va, x) + 0.25 * fb(vb, x), rtol=1e-5)
  np.testing.assert_allclose(
      ens.attack_loss((va, vb), x, y),
      0.75 * losses.cross_entropy(fa(va, x), y) + 0.25 * losses.cross_entropy(fb(vb, x), y),
      rtol=1e-5)


def _naive_mi_fgsm(v, x, y, *, eps, step_size, steps, decay, norm):
  """MI-FGSM as Dong et al. write it, in float64 numpy on a linear model (whose CE
  gradient is (softmax - onehot) W^T): g <- decay g + grad / ||grad||_1, a step
  along sign(g) (L-inf) or g / ||g||_2 (L2), then the projection and the box."""
  w, b = np.asarray(v["w"], np.float64), np.asarray(v["b"], np.float64)
  x0 = np.asarray(x, np.float64).reshape(len(x), -1)
  x_adv, g = x0.copy(), np.zeros_like(x0)
  for _ in range(steps):
    z = x_adv @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(w.shape[1])[np.asarray(y)]) @ w.T
    g = decay * g + grad / np.abs(grad).sum(1, keepdims=True)
    if norm == "linf":
      x_adv = np.clip(x_adv + step_size * np.sign(g), x0 - eps, x0 + eps)
    else:
      delta = x_adv + step_size * g / np.linalg.norm(g, axis=1, keepdims=True) - x0
      x_adv = x0 + delta * np.minimum(1.0, eps / np.linalg.norm(delta, axis=1, keepdims=True))
    x_adv = np.clip(x_adv, 0, 1)
  return x_adv.reshape(x.shape)


@pytest.mark.parametrize("norm,eps,step_size", [("l2", 1.0, 0.2), ("linf", 0.1, 0.02)])
@pytest.mark.parametrize("decay", [1.0, 0.5, 0.0])
def test_momentum_equals_a_naive_reference(norm, eps, step_size, decay):
  """Six steps, so the velocity carries several gradients: under L2 the step follows
  the velocity itself, so its decay and the L1 normalisation of each gradient show in
  the images (decay 0 is BIM: one normalised gradient, the same direction)."""
  apply_fn, v = linear_model(scale=1.0)
  x, y = images(lo=0.3, hi=0.7), jnp.arange(16) % 4
  kwargs = dict(eps=eps, step_size=step_size, steps=6, norm=norm)
  got = attacks.mi_fgsm(apply_fn, v, x, y, decay=decay, **kwargs)
  np.testing.assert_allclose(got, _naive_mi_fgsm(v, x, y, decay=decay, **kwargs), atol=1e-5)
  bim = attacks.bim(apply_fn, v, x, y, **kwargs)
  assert np.allclose(got, bim, atol=1e-6) == (decay == 0.0)


class _TwoPixelLoss:
  """A model of two-pixel images whose attack loss is 0.2 u - 6 u^2 + 0.2 w + 14 w^2,
  u and w the pixels less 0.5: its gradient is (0.2, 0.2) at (0.5, 0.5) and (-1, 3)
  at (0.6, 0.6)."""

  def __call__(self, variables, x):
    return jnp.zeros((x.shape[0], 2))

  def attack_loss(self, variables, x, y):
    u, w = x[:, 0, 0, 0] - 0.5, x[:, 0, 1, 0] - 0.5
    return 0.2 * u - 6 * u ** 2 + 0.2 * w + 14 * w ** 2


@pytest.mark.parametrize("decay,want", [(1.0, (0.7, 0.7)), (0.4, (0.5, 0.7)),
                                        (0.0, (0.5, 0.7))])
def test_momentum_two_steps_by_hand(decay, want):
  """Two L-inf steps of 0.1 from (0.5, 0.5). Step 1: g = (0.2, 0.2) / 0.4 = (0.5, 0.5),
  both pixels up to 0.6. Step 2: the new gradient (-1, 3) / 4 = (-0.25, 0.75) joins
  decay x (0.5, 0.5): with decay 1 the first pixel's velocity is 0.25 > 0 and it goes
  on up to 0.7; with decay 0.4 it is 0.2 - 0.25 < 0 and it comes back to 0.5, as BIM
  (decay 0) does. Without the L1 normalisation, decay 1 would give (0.2 - 1, ...) and
  turn back; with decay weighting the new gradient instead of the velocity, decay 0.4
  would give 0.5 - 0.1 and go on."""
  x = jnp.full((1, 1, 2, 1), 0.5)
  got = attacks.mi_fgsm(_TwoPixelLoss(), {}, x, jnp.zeros(1, jnp.int32), eps=0.3,
                        step_size=0.1, steps=2, decay=decay)
  np.testing.assert_allclose(np.asarray(got).ravel(), want, atol=1e-6)


def test_runs_under_vmap_over_keys_and_under_jit():
  apply_fn, v, x, y = cnn()
  keys = jax.random.split(KEY, 3)
  run = lambda k: attacks.pgd(apply_fn, v, x, y, k, eps=8 / 255, steps=2)
  batched = jax.vmap(run)(keys)
  for i in range(3):
    np.testing.assert_allclose(batched[i], run(keys[i]), atol=1e-6)
  assert not np.allclose(batched[0], batched[1])
  jitted = jax.jit(lambda x: attacks.pgd(apply_fn, v, x, y, KEY, eps=8 / 255, steps=2))
  np.testing.assert_allclose(jitted(x), run(KEY), atol=1e-6)


def test_runs_under_vmap_over_eps():
  """A batched eps makes each unrolled step's conditional a select: same images."""
  apply_fn, v, x, y = cnn()
  radii = jnp.array([2 / 255, 8 / 255])
  batched = jax.vmap(lambda e: attacks.bim(apply_fn, v, x, y, eps=e, steps=3))(radii)
  for i, e in enumerate([2 / 255, 8 / 255]):
    np.testing.assert_allclose(batched[i], attacks.bim(apply_fn, v, x, y, eps=e, steps=3),
                               atol=1e-6)
  assert np.abs(batched[0] - x).max() <= 2 / 255 + 1e-6
  assert np.abs(batched[1] - x).max() > 2 / 255  # the larger radius was used


def test_unrolled_steps_keep_their_fusion_barrier_under_a_constant_eps():
  """On CPU each unrolled step's update sits behind a conditional (the 1.7x speed-up of
  gradient._iterate); a constant eps inside an outer jit must not let XLA fold it away."""
  if not gradient.unroll_steps():
    pytest.skip("the conditional is taken on CPU only")
  apply_fn, v, x, y = cnn()
  # As the train and analysis steps call it: the weights are the step's arguments.
  attack = jax.jit(lambda v, x: attacks.bim(apply_fn, v, x, y, eps=4 / 255, steps=3))
  assert attack.lower(v, x).compile().as_text().count("conditional(") == 3
  np.testing.assert_allclose(attack(v, x), attacks.bim(apply_fn, v, x, y, eps=4 / 255, steps=3),
                             atol=1e-6)


@pytest.mark.parametrize("name,options", [("pgd", {}), ("bim", {}), ("mi_fgsm", {}),
                                          ("pgd", {"norm": "l2", "eps": 0.5})])
def test_scan_equals_the_unrolled_steps(name, options):
  """unroll=1 (a lax.scan, the default off CPU) and unroll=steps (CPU's default) agree."""
  apply_fn, v, x, y = cnn()
  attack = attacks.by_name(name)
  kwargs = {"eps": 8 / 255, "steps": 4, **options}
  scanned = attack(apply_fn, v, x, y, KEY, unroll=1, **kwargs)
  unrolled = attack(apply_fn, v, x, y, KEY, unroll=4, **kwargs)
  np.testing.assert_allclose(scanned, unrolled, atol=1e-6)
  assert not np.allclose(scanned, x)  # the steps moved the images
  by_default = attack(apply_fn, v, x, y, KEY, **kwargs)
  np.testing.assert_allclose(by_default, unrolled, atol=1e-6)


@pytest.mark.parametrize("on_cpu,loops", [(True, False), (False, True)])
def test_steps_are_unrolled_by_default_only_on_cpu(on_cpu, loops, monkeypatch):
  from interp_jax.attacks import gradient
  monkeypatch.setattr(gradient, "unroll_steps", lambda: on_cpu)
  apply_fn, v, x, y = cnn()
  steps = 5 if on_cpu else 6  # a shape of its own: no trace cached by the other case
  jaxpr = jax.make_jaxpr(lambda x: attacks.pgd(apply_fn, v, x, y, KEY, eps=0.1, steps=steps))(x)
  assert ("scan" in str(jaxpr) or "while" in str(jaxpr)) == loops


def test_a_bad_budget_is_a_value_error_to_a_library_user():
  apply_fn, v, x, y = cnn()
  with pytest.raises(ValueError, match="eps must be in"):
    attacks.pgd(apply_fn, v, x, y, KEY, eps=-1)


def test_no_recompilation_between_calls_of_equal_shapes():
  """apply_fn is traced once per unrolled step of the one compile, plus once by the
  (cached) class-count check; other eps, images and keys of the same shapes reuse it:
  one trace and one executable (a new placement or weak type would add an executable
  without a trace)."""
  model = models.create("small_cnn", num_classes=5, widths=(4,), hidden=8)
  chex.clear_trace_counter()
  compiled = gradient._iterate._cache_size()

  @chex.assert_max_traces(n=1 + 2)
  def apply_fn(variables, x):
    return model.apply(variables, x)

  x, y = images(8, (8, 8, 3)), jnp.arange(8) % 5
  v = model.init(jax.random.key(0), x)
  for eps in (1 / 255, 2 / 255, 4 / 255):  # eps is traced: no new program
    attacks.pgd(apply_fn, v, x + 0 * eps, y, KEY, eps=eps, steps=2, unroll=2)
  attacks.pgd(apply_fn, v, images(8, (8, 8, 3), seed=9), y, jax.random.key(5),
              eps=3 / 255, steps=2, unroll=2)
  assert gradient._iterate._cache_size() == compiled + 1


BAD = [
    ({"eps": -0.1}, "eps must be in"), ({"eps": 1.5}, "eps must be in"),
    ({"eps": 0.1, "steps": 0}, "steps must be a positive integer"),
    ({"eps": 0.1, "norm": "l3"}, "unknown norm"),
    ({"eps": 0.1, "step_size": 0.0}, "step_size must be positive"),
]


@pytest.mark.parametrize("options,message", BAD)
def test_bad_budgets_fail_before_anything_is_traced(options, message):
  apply_fn, v = linear_model()
  counted = chex.assert_max_traces(apply_fn, n=0)  # a trace raises AssertionError, not UserError
  with pytest.raises(UserError, match=message):
    attacks.pgd(counted, v, images(), jnp.zeros(16, jnp.int32), KEY, **options)


def test_bad_images_and_labels_are_user_errors():
  apply_fn, v = linear_model()
  y = jnp.zeros(16, jnp.int32)
  with pytest.raises(UserError, match=r"images must lie in \[0, 1\]"):
    attacks.fgsm(apply_fn, v, images() * 2, y, eps=0.1)
  with pytest.raises(UserError, match=r"labels must be in \[0, 3\]"):
    attacks.fgsm(apply_fn, v, images(), y + 4, eps=0.1)
  with pytest.raises(UserError, match="labels must have shape"):
    attacks.fgsm(apply_fn, v, images(), y[:3], eps=0.1)
  with pytest.raises(UserError, match="PRNG key"):
    attacks.pgd(apply_fn, v, images(), y, None, eps=0.1)
  with pytest.raises(UserError, match="unknown attack"):
    attacks.by_name("deepfool")
