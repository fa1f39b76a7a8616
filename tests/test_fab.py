"""FAB: minimal distances on linear models, the box-constrained projection, eps, keys, targets."""

import functools
import importlib
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp_jax import models
from interp_jax.errors import UserError

# The package's `fab` is the function; the module is reached through importlib.
fab_module = importlib.import_module("interp_jax.attacks.boundary")
fab = fab_module.fab

KEY = jax.random.key(0)


def linear(variables, x):
  return x.reshape(x.shape[0], -1) @ variables["w"] + variables["b"]


def images(n=16, shape=(4, 4, 1), lo=0.0, hi=1.0, seed=1):
  # numpy's generator: jax.random's first call compiles for a second or more.
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.uniform(lo, hi, size=(n, *shape)), jnp.float32)


def binary_model(x, seed=0):
  """Classes 0 and 1, whose boundary passes through the middle of the images x, and two
  classes no image comes near (the shapes of quadrant_model's: one compile for both)."""
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(16, 4)).astype(np.float32) * 3
  flat = np.asarray(x).reshape(len(x), -1)
  bias = np.array([0.0, -np.median(flat @ (w[:, 1] - w[:, 0])), -1e3, -1e3], np.float32)
  return {"w": jnp.asarray(w), "b": jnp.asarray(bias)}


def quadrant_model():
  """Class c sums quadrant c of the image: every class is within reach of every image."""
  quadrant = np.zeros((4, 4, 4), np.float32)
  for c, (r, q) in enumerate([(0, 0), (0, 2), (2, 0), (2, 2)]):
    quadrant[r:r + 2, q:q + 2, c] = 1.0
  return {"w": jnp.asarray(quadrant.reshape(16, 4)), "b": jnp.zeros(4)}


_CNN = models.create("small_cnn", num_classes=5, widths=(4, 8), hidden=8)


@functools.cache
def _cnn_once():
  """Variables of _CNN's shapes drawn with numpy (compiling _CNN.init takes seconds here).

  Random CNNs tend to put every image in one class by a wide margin; with this draw, FAB
  finds every image's rank-2 class within 20 steps, both norms."""
  x = images(8, (8, 8, 3))
  rng = np.random.default_rng(0)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if leaf.ndim > 1:  # kernels: LeCun normal, as flax's default
      return rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))
    if "scale" in name or "var" in name:
      return np.ones(leaf.shape)
    return np.zeros(leaf.shape) if "mean" in name else rng.normal(size=leaf.shape) * 0.5

  shapes = jax.eval_shape(_CNN.init, jax.random.key(0), x)
  v = jax.tree_util.tree_map_with_path(lambda p, l: jnp.asarray(draw(p, l), l.dtype), shapes)
  y = jnp.argmax(jax.jit(_CNN.apply)(v, x), -1)
  return v, x, y.at[0].set((y[0] + 1) % 5)  # image 0: misclassified already


def cnn():
  """test_attacks.py's tiny CNN (its shapes, numpy weights); labels are its clean classes
  but image 0's."""
  return (_CNN.apply, *_cnn_once())


def distance(a, b, norm):
  d = np.asarray(a, np.float64).reshape(len(a), -1) - np.asarray(b, np.float64).reshape(len(b), -1)
  return np.abs(d).max(1) if norm == "linf" else np.linalg.norm(d, axis=1)


def _numpy_fab(x0, w, offset, y, norm, steps, alpha_max=0.1, eta=1.05, beta=0.9):
  """The reference's loop, in float64, for a binary linear model whose closest points lie
  inside the box: the linearisation is the model, and a projection onto the boundary
  needs no box. Returns the smallest distance at which each image was misclassified."""
  sign = np.where(y == 0, 1.0, -1.0)[:, None]  # g = z_other - z_y = sign * (w . z + offset)
  g = lambda z: sign[:, 0] * (z @ w + offset)
  step = sign * (np.sign(w) / np.abs(w).sum() if norm == "linf" else w / np.sum(w * w))
  size = lambda d: np.abs(d).max(1) if norm == "linf" else np.linalg.norm(d, axis=1)
  x1, best = x0.copy(), np.full(len(x0), np.inf)
  for _ in range(steps):
    d1, d0 = -g(x1)[:, None] * step, -g(x0)[:, None] * step
    a1, a0 = np.maximum(size(d1), 1e-8), np.maximum(size(d0), 1e-8)
    alpha = np.clip(a1 / (a1 + a0), 0.0, alpha_max)[:, None]
    new = np.clip((x1 + eta * d1) * (1 - alpha) + (x0 + eta * d0) * alpha, 0.0, 1.0)
    fooled = g(new) > 0
    best = np.where(fooled, np.minimum(best, size(new - x0)), best)
    x1 = np.where(fooled[:, None], x0 + beta * (new - x0), new)
  return best


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("targeted", [True, False])
def test_on_a_linear_model_the_point_is_at_the_minimal_distance(norm, targeted):
  """For z = Wx + b, the boundary is a hyperplane: the closest point of the other class
  lies |margin| / ||w_1 - w_0||_dual away (dual: L1 for L-inf, L2 for L2); FAB's steps
  are the reference's, step for step."""
  x = images(lo=0.3, hi=0.7)
  v = binary_model(x)
  y = jnp.argmax(linear(v, x), -1)
  assert bool((y < 2).all())
  w = np.asarray(v["w"][:, 1] - v["w"][:, 0], np.float64)
  offset = float(v["b"][1] - v["b"][0])
  flat = np.asarray(x, np.float64).reshape(16, -1)
  margin = flat @ w + offset  # > 0 on class 1's side
  dual = np.linalg.norm(w, 1 if norm == "linf" else 2)
  exact = np.abs(margin) / dual
  step = np.sign(w) / dual if norm == "linf" else w / dual ** 2
  closest = flat - margin[:, None] * step  # on the boundary
  assert (closest > 0).all() and (closest < 1).all()  # the box does not bind
  eps = 0.5 if norm == "linf" else 2.0
  x_adv = fab(linear, v, x, y, eps=eps, norm=norm, steps=20, targets=1, targeted=targeted)
  found = distance(x_adv, x, norm)
  assert bool((jnp.argmax(linear(v, x_adv), -1) != y).all())
  assert (found >= exact * (1 - 1e-4)).all()  # nothing closer exists
  # eta = 1.05 overshoots and beta = 0.9 steps back: on a hyperplane FAB's points settle
  # 0.5% beyond it (the reference code's as well).
  np.testing.assert_allclose(found, exact, rtol=0.01)
  np.testing.assert_allclose(found, _numpy_fab(flat, w, offset, np.asarray(y), norm, 20),
                             rtol=1e-4, atol=1e-6)  # float32 pixels: ulps of 6e-8


def _naive_l2(p, w, c):
  """min ||d||_2 subject to w . d = -c, -p <= d <= 1 - p, per row: the best of all 3^n
  active sets (each coordinate at its lower bound, its upper bound, or free, the free ones
  then the least-norm solution); NaN rows where none is feasible."""
  states = np.array(list(itertools.product((0, 1, 2), repeat=p.shape[1])))[None]  # [1, S, n]
  p, w, c = p[:, None], w[:, None], c[:, None]
  free = states == 2
  d = np.where(states == 0, -p, 1 - p)
  rest = -c - np.sum(np.where(free, 0.0, w * d), -1)
  norm2 = np.sum(np.where(free, w * w, 0.0), -1)
  with np.errstate(divide="ignore", invalid="ignore"):
    d = np.where(free, (rest / norm2)[..., None] * w, d)
  ok = (norm2 > 0) & (d >= -p - 1e-12).all(-1) & (d <= 1 - p + 1e-12).all(-1)
  size = np.where(ok, np.sum(d * d, -1), np.inf)
  best = np.take_along_axis(d, np.argmin(size, 1)[:, None, None], 1)[:, 0]
  return np.where(np.isfinite(size.min(1))[:, None], best, np.nan)


def _naive_linf_radius(p, w, c):
  """min ||d||_inf subject to w . d = -c and the box, per row, by bisection on the radius
  t: with |d_i| <= t and the box, w . d covers an interval; the smallest t whose interval
  holds -c (NaN where even t = 1 does not)."""
  def covers(t):
    lo, hi = np.maximum(-t[:, None], -p), np.minimum(t[:, None], 1 - p)
    span = np.sort(np.stack([w * lo, w * hi]), axis=0).sum(-1)
    return (span[0] <= -c) & (-c <= span[1])

  lo, hi = np.zeros(len(p)), np.ones(len(p))
  for _ in range(60):
    mid = 0.5 * (lo + hi)
    inside = covers(mid)
    lo, hi = np.where(inside, lo, mid), np.where(inside, mid, hi)
  return np.where(covers(np.ones(len(p))), hi, np.nan)


def test_projection_matches_a_naive_reference():
  rng = np.random.default_rng(0)
  rows, n = 240, 5
  p = rng.uniform(size=(rows, n))
  p[rng.uniform(size=p.shape) < 0.15] = 0.0  # on the box's faces
  p[rng.uniform(size=p.shape) < 0.15] = 1.0
  w = rng.normal(size=(rows, n))
  w[rng.uniform(size=w.shape) < 0.15] = 0.0
  # Targets from on the hyperplane to far beyond what the box can reach.
  c = rng.uniform(-1.5, 1.5, size=rows) * np.abs(w).sum(1) * rng.choice([0.05, 0.5, 1.0], rows)
  c[:4] = 0.0
  b = np.sum(w * p, 1) - c
  project = jax.jit(lambda p, w, b: [fab_module.project_to_hyperplane(p, w, b, norm)
                                     for norm in ("linf", "l2")])
  got = project(*(jnp.asarray(a, jnp.float32) for a in (p, w, b)))
  d_linf, d_l2 = (np.asarray(d, np.float64) for d in got)
  for d in (d_linf, d_l2):
    assert (p + d >= -1e-6).all() and (p + d <= 1 + 1e-6).all()
  # Out of reach: every coordinate with w_i != 0 moves to the face that brings w . z
  # closest to b (both norms), the others stay.
  corner = np.where(w == 0, 0.0, np.where(w * np.sign(c)[:, None] > 0, -p, 1 - p))
  ref = _naive_l2(p, w, c)
  radius = _naive_linf_radius(p, w, c)
  out = np.isnan(radius)
  np.testing.assert_array_equal(np.isnan(ref).any(1), out)
  np.testing.assert_allclose(d_linf[out], corner[out], atol=1e-6)
  np.testing.assert_allclose(d_l2[out], corner[out], atol=1e-6)
  np.testing.assert_allclose(d_l2[~out], ref[~out], atol=2e-5)
  np.testing.assert_allclose(np.abs(d_linf[~out]).max(1), radius[~out], atol=2e-5)
  residual = np.abs(np.sum(w * (p + d_linf), 1) - b)[~out]
  assert (residual <= 1e-5 * (np.abs(w).sum(1)[~out] + 1e-12)).all()
  unclipped = -c[:, None] * w / np.maximum(np.sum(w * w, 1, keepdims=True), 1e-30)
  free = np.all(np.abs(ref - unclipped) < 1e-9, 1)
  cases = {"on": np.sum(c == 0), "free": np.sum(~out & free & (c != 0)),
           "box binds": np.sum(~out & ~free), "out of reach": np.sum(out)}
  assert min(cases.values()) >= 4, cases


@pytest.mark.parametrize("norm,targeted", [("linf", True), ("l2", True), ("linf", False)])
def test_result_is_in_the_ball_and_the_box_and_the_rest_is_exactly_x(norm, targeted):
  apply_fn, v, x, y = cnn()
  big = 0.5 if norm == "linf" else 3.0
  options = dict(norm=norm, steps=20, targets=1, targeted=targeted)
  far = fab(apply_fn, v, x, y, eps=big, **options)
  found = distance(far, x, norm)
  pred = np.asarray(jnp.argmax(apply_fn(v, far), -1))
  broken = pred != np.asarray(y)
  assert broken.mean() >= 0.75  # with a large budget, most
  assert found[0] == 0.0  # misclassified already: x itself
  # One target and one run: a smaller budget keeps exactly the images found within it,
  # at the same points, and returns the others untouched.
  eps = float(np.median(found[1:]))
  near = fab(apply_fn, v, x, y, eps=eps, **options)
  within = broken & (found <= eps)
  assert 0 < within.sum() < len(x) - 1
  np.testing.assert_array_equal(np.asarray(near)[within], np.asarray(far)[within])
  np.testing.assert_array_equal(np.asarray(near)[~within], np.asarray(x)[~within])
  for out in (far, near):
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0 and out.dtype == jnp.float32
  assert distance(near, x, norm).max() <= eps


def test_tiny_budget_breaks_nothing_and_returns_x():
  apply_fn, v, x, y = cnn()
  np.testing.assert_array_equal(fab(apply_fn, v, x, y, eps=1e-4, steps=10, targets=2), x)
  np.testing.assert_array_equal(fab(apply_fn, v, x, y, eps=0.0, steps=10, targets=2), x)


def test_budget_is_traced_and_each_part_compiles_once():
  apply_fn, v, x, y = cnn()
  keys = jax.random.split(jax.random.key(7), len(x))
  fab(apply_fn, v, x, y, keys, eps=0.1, steps=3, targets=2, restarts=2)
  parts = (fab_module._linearise, fab_module._move, fab_module._random_start,
           fab_module._merge)
  before = [f._cache_size() for f in parts]
  for eps in (0.05, 0.2):
    fab(apply_fn, v, x, y, keys, eps=eps, steps=3, targets=2, restarts=2)
  assert [f._cache_size() for f in parts] == before


def test_per_image_keys_make_an_image_s_result_independent_of_its_place():
  apply_fn, v, x, y = cnn()
  keys = jax.random.split(jax.random.key(7), len(x))
  # A budget most images need their random restart for (which then fails as well).
  options = dict(eps=0.02, steps=10, targets=2, restarts=2)
  out = np.asarray(fab(apply_fn, v, x, y, keys, **options))
  perm = np.random.default_rng(0).permutation(len(x))
  permuted = np.asarray(fab(apply_fn, v, x[perm], y[perm], keys[perm], **options))
  np.testing.assert_allclose(permuted, out[perm], atol=1e-6)


@pytest.mark.parametrize("norm,eps", [("linf", 0.2), ("l2", 0.5)])
def test_random_starts_lie_at_half_eps_drawn_from_their_image_s_key(norm, eps):
  # The CNN's shapes (one compile with the L-inf restarts of the CNN tests), and far enough
  # from the box's faces not to be clipped.
  x = 0.2 + 0.6 * cnn()[2]
  keys = jax.random.split(jax.random.key(7), len(x))

  def start(x, keys, run):  # eps as fab passes it: a float32 array, not a weak Python float
    return fab_module._random_start(x, keys, jnp.float32(eps), run, norm=norm)

  x1 = np.asarray(start(x, keys, 1))
  np.testing.assert_allclose(distance(x1, x, norm), eps / 2, rtol=1e-5)
  perm = np.random.default_rng(0).permutation(len(x))
  np.testing.assert_array_equal(np.asarray(start(x[perm], keys[perm], 1)), x1[perm])
  assert not np.any(np.all(np.asarray(start(x, keys, 2)) == x1, axis=(1, 2, 3)))


def test_traced_matches_the_host_loop():
  """Inside a jit the steps run as a lax loop, eps and the images traced: the same points."""
  x = images(lo=0.3, hi=0.7)
  v = binary_model(x)
  y = jnp.argmax(linear(v, x), -1)
  options = dict(norm="l2", steps=20, targets=1)
  host = fab(linear, v, x, y, eps=0.05, **options)
  traced = jax.jit(lambda x, eps: fab(linear, v, x, y, eps=eps, **options))(x, 0.05)
  np.testing.assert_allclose(traced, host, atol=1e-6)
  assert 0 < int(jnp.sum(jnp.any(host != x, axis=(1, 2, 3)))) < len(x)


def test_targeted_runs_reach_their_targets_on_an_easy_model():
  """On the quadrant model every class is within eps = 0.3 of every image, and the rank-2
  run ends in the rank-2 class; untargeted, FAB finds the closest of the three."""
  v = quadrant_model()
  x = images(lo=0.3, hi=0.7)
  logits = linear(v, x)
  y = jnp.argmax(logits, -1)
  second = jnp.argsort(-logits, axis=-1)[:, 1]
  x_adv = fab(linear, v, x, y, eps=0.3, steps=20, targets=1)
  assert float((jnp.argmax(linear(v, x_adv), -1) == second).mean()) >= 0.95
  x_all = fab(linear, v, x, y, eps=0.3, steps=20, targets=3)
  assert bool((jnp.argmax(linear(v, x_all), -1) != y).all())
  assert distance(x_all, x, "linf").max() <= 0.3
  # Untargeted, each step aims at the closest boundary: (z_y - z_k) / ||w_k - w_y||_1,
  # with ||w_k - w_y||_1 = 8 for every pair here.
  closest = np.sort(-np.asarray(logits), axis=1)
  exact = (closest[:, 1] - closest[:, 0]) / 8
  found = distance(fab(linear, v, x, y, eps=0.3, steps=20, targeted=False), x, "linf")
  assert (found >= exact * (1 - 1e-4)).all()
  np.testing.assert_allclose(found, exact, rtol=0.01)


def test_bad_options_are_user_errors():
  apply_fn, v, x, y = cnn()
  with pytest.raises(UserError, match=r"targets must be an integer in \[1, 4\]"):
    fab(apply_fn, v, x, y, eps=0.1, targets=5)
  with pytest.raises(UserError, match="needs a PRNG key"):
    fab(apply_fn, v, x, y, eps=0.1, targets=2, restarts=2)
  with pytest.raises(UserError, match="keys for 8 images"):
    fab(apply_fn, v, x, y, jax.random.split(KEY, 3), eps=0.1, targets=2, restarts=2)
  with pytest.raises(UserError, match="restarts must be a positive integer"):
    fab(apply_fn, v, x, y, eps=0.1, targets=2, restarts=0)
  with pytest.raises(UserError, match="eps must be in"):
    fab(apply_fn, v, x, y, eps=2.0, targets=2)
