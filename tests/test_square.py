"""Square attack: ball and box, no gradient, monotone margin, per-example keys, traces,
early stop, and the reference's schedule and L2 pattern."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp_jax import attacks, models
from interp_jax.attacks import loop
from interp_jax.errors import UserError

# The package's `square` is the function; the module is reached through importlib.
square_module = importlib.import_module("interp_jax.attacks.random_search")
KEY = jax.random.key(0)
EPS = {"linf": 8 / 255, "l2": 0.5}


def images(n, shape, lo=0.0, hi=1.0, seed=1):
  return jnp.asarray(np.random.default_rng(seed).uniform(lo, hi, (n, *shape)), jnp.float32)


def numpy_init(model, x, seed):
  """The model's variables drawn with numpy: model.init compiles for seconds on a busy CPU."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if "kernel" in name:  # He-scaled normal weights
      return (rng.normal(size=leaf.shape) * np.sqrt(2.0 / np.prod(leaf.shape[:-1]))).astype(
          np.float32)
    value = 1.0 if "scale" in name or "var" in name else 0.0  # BatchNorm as the identity
    return np.full(leaf.shape, value, np.float32)

  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  return jax.tree_util.tree_map_with_path(lambda p, l: jnp.asarray(draw(p, l)), shapes)


def _cnn():
  """A tiny CNN and 8 images: 0-5 the ones nearest its decision boundary among 256, labelled
  as it predicts them (fooled within a few queries); 6 and 7 misclassified from the start."""
  model = models.create("small_cnn", num_classes=5, widths=(4, 8), hidden=8)
  pool = images(256, (8, 8, 3))
  variables = numpy_init(model, pool, seed=3)
  logits = np.sort(np.asarray(model.apply(variables, pool)), -1)
  x = pool[np.argsort(logits[:, -1] - logits[:, -2])[:8]]
  pred = np.argmax(np.asarray(model.apply(variables, x)), -1)
  pred[6:] = (pred[6:] + 1) % 5
  return model.apply, variables, x, jnp.asarray(pred, jnp.int32)


CNN = _cnn()  # one model for the module: its programs compile once


def margins(apply_fn, variables, x, y):
  return np.asarray(square_module.margin(apply_fn(variables, x), y))


TRACES = []  # one entry per trace of masked_apply


def masked_apply(variables, x):
  """A linear model whose input gradient is zero everywhere."""
  TRACES.append(1)  # runs only while tracing
  return jax.lax.stop_gradient(x.reshape(x.shape[0], -1) @ variables["w"])


def _masked_linear(seed=0, shape=(6, 6, 3), num_classes=3, n=64):
  """masked_apply's weights, and images it classifies right (labelled as it predicts)."""
  rng = np.random.default_rng(seed)
  v = {"w": jnp.asarray(rng.normal(size=(int(np.prod(shape)), num_classes)), jnp.float32)}
  x = images(n, shape, 0.3, 0.7)
  return masked_apply, v, x, jnp.argmax(masked_apply(v, x), -1)


MASKED = _masked_linear()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_result_stays_in_the_ball_and_the_box_and_moves(norm):
  apply_fn, v, x, y = CNN
  eps = EPS[norm]
  x_adv = attacks.square(apply_fn, v, x, y, KEY, eps=eps, norm=norm, queries=30)
  assert x_adv.shape == x.shape and x_adv.dtype == jnp.float32
  assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
  delta = np.asarray(x_adv - x).reshape(len(x), -1)
  size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
  assert size.max() <= eps + 1e-5
  assert np.all(size[:6] > 0.5 * eps)  # every image it had to fool moved
  np.testing.assert_array_equal(x_adv[6:], x[6:])  # fooled from the start: untouched


def test_it_breaks_a_model_whose_gradient_is_zero_where_pgd_cannot():
  apply_fn, v, x, y = MASKED
  fooled = lambda z: float((jnp.argmax(apply_fn(v, z), -1) != y).mean())
  assert fooled(x) == 0.0
  by_square = attacks.square(apply_fn, v, x, y, KEY, eps=0.05, queries=1000)
  by_pgd = attacks.pgd(apply_fn, v, x, y, KEY, eps=0.05, steps=2)
  assert fooled(by_square) >= 0.9
  assert fooled(by_pgd) <= 0.05
  assert float(jnp.abs(by_square - x).max()) <= 0.05 + 1e-6


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_the_margin_never_rises_and_a_fooled_image_stays_fooled(norm):
  apply_fn, v, x, y = CNN
  clean = margins(apply_fn, v, x, y)
  eps = EPS[norm]
  short = attacks.square(apply_fn, v, x, y, KEY, eps=eps, norm=norm, queries=20)
  long = attacks.square(apply_fn, v, x, y, KEY, eps=eps, norm=norm, queries=60)
  m_short, m_long = margins(apply_fn, v, short, y), margins(apply_fn, v, long, y)
  assert np.all(m_short <= clean + 1e-6) and np.all(m_long <= m_short + 1e-6)
  assert np.any(m_long < clean - 1e-3)  # the search made progress
  assert np.any(m_short[:6] < 0)  # some image was fooled early ...
  fooled = m_short < 0
  assert np.all(m_long[fooled] < 0)  # ... and stays fooled, at the first point that fooled it
  np.testing.assert_array_equal(np.asarray(long)[fooled], np.asarray(short)[fooled])
  pred = np.asarray(jnp.argmax(apply_fn(v, long), -1))
  assert np.all(pred[m_long < 0] != np.asarray(y)[m_long < 0])


def test_an_image_no_query_improved_is_returned_as_it_came():
  """The random start is the search's first point (as in the reference) even where it is worse
  than the image; after one query some images still have nothing better, and come back as is."""
  apply_fn, v, x, y = MASKED
  clean = margins(apply_fn, v, x, y)
  x_adv = attacks.square(apply_fn, v, x, y, KEY, eps=0.05, queries=1)
  assert np.all(margins(apply_fn, v, x_adv, y) <= clean + 1e-5)
  unchanged = np.all(np.asarray(x_adv == x), axis=(1, 2, 3))
  assert 0 < unchanged.sum() < len(x)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_an_image_depends_on_its_own_key_not_its_place_in_the_batch(norm):
  apply_fn, v, x, y = CNN
  keys = jax.random.split(jax.random.key(7), 8)
  perm = jnp.array([3, 7, 0, 5, 1, 6, 2, 4])
  run = lambda x, y, k: attacks.square(apply_fn, v, x, y, k, eps=EPS[norm], norm=norm,
                                       queries=20)
  base = run(x, y, keys)
  np.testing.assert_allclose(run(x[perm], y[perm], keys[perm]), base[perm], atol=1e-6)
  other = run(x, y, jax.random.split(jax.random.key(8), 8))
  assert not np.allclose(other[:6], base[:6])  # the keys are used


def test_eps_is_traced_and_nothing_recompiles():
  apply_fn, v, x, y = MASKED
  attacks.square(apply_fn, v, x, y, KEY, eps=0.01, queries=5)
  first = len(TRACES)
  for eps in (0.02, 0.03):  # the host loop: the same start and step programs
    attacks.square(apply_fn, v, x, y, jax.random.key(int(eps * 100)), eps=eps, queries=7)
  attacks.square(apply_fn, v, images(64, (6, 6, 3), 0.3, 0.7, seed=5), y, KEY, eps=0.02,
                 queries=5)
  assert len(TRACES) == first

  jitted = jax.jit(lambda e: attacks.square(apply_fn, v, x, y, KEY, eps=e, queries=5))
  low = jitted(0.01)
  traced = len(TRACES)
  high = jitted(0.03)
  assert len(TRACES) == traced  # a second eps: the same program
  assert float(jnp.abs(high - x).max()) > 0.01 + 1e-4 >= float(jnp.abs(low - x).max())
  # The lax loop under jit computes what the host loop does.
  np.testing.assert_allclose(high, attacks.square(apply_fn, v, x, y, KEY, eps=0.03, queries=5),
                             atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_zero_budget_returns_the_images(norm):
  apply_fn, v, x, y = CNN
  x_adv = attacks.square(apply_fn, v, x, y, KEY, eps=0.0, norm=norm, queries=10)
  np.testing.assert_array_equal(x_adv, x)


BAD = [
    ({"eps": -0.1}, "eps must be in"), ({"eps": 1.5}, "eps must be in"),
    ({"eps": 0.1, "norm": "l1"}, "unknown norm"),
    ({"eps": 0.1, "queries": 0}, "steps must be a positive integer"),
    ({"eps": 0.1, "p_init": 0.0}, "p_init must be in"),
    ({"eps": 0.1, "key": None}, "PRNG key"),
    ({"eps": 0.1, "key": jax.random.split(KEY, 3)}, "3 keys for 64 images"),
]


@pytest.mark.parametrize("options,message", BAD)
def test_bad_options_are_user_errors_before_anything_is_traced(options, message):
  apply_fn, v, x, y = MASKED
  before = len(TRACES)
  options = {"key": KEY, **options}
  with pytest.raises(UserError, match=message):
    attacks.square(apply_fn, v, x, y, options.pop("key"), **options)
  assert len(TRACES) <= before + 1  # at most the shape check's trace of the logits' width


def test_stopping_early_changes_nothing(monkeypatch):
  """Once every image is fooled the loop stops; the same run to the end gives the same
  images, and so does a run with a larger budget for the images fooled in the smaller."""
  apply_fn, v, x, y = MASKED
  real_fori, steps = loop.fori, []

  def fori(step, num_steps, carry, done=None, keep_done=True):
    def counted(i, c):
      steps.append(1)
      return step(i, c)
    return real_fori(counted, num_steps, carry, done=done if keep_done else None)

  monkeypatch.setattr(loop, "fori", fori)
  stopped = attacks.square(apply_fn, v, x, y, KEY, eps=0.07, queries=1500)
  assert 0 < len(steps) < 1500  # it did stop early
  del steps[:]
  monkeypatch.setattr(loop, "fori", lambda *a, done=None: fori(*a, done=done, keep_done=False))
  full = attacks.square(apply_fn, v, x, y, KEY, eps=0.07, queries=1500)
  assert len(steps) == 1500
  np.testing.assert_array_equal(stopped, full)

  monkeypatch.setattr(loop, "fori", real_fori)
  small = attacks.square(apply_fn, v, x, y, KEY, eps=0.07, queries=100)
  fooled = np.asarray(jnp.argmax(apply_fn(v, small), -1) != y)
  assert 0 < fooled.sum() < len(x)
  np.testing.assert_array_equal(np.asarray(small)[fooled], np.asarray(full)[fooled])


def test_the_square_schedule_is_the_reference_one():
  """p halves after queries 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 (0-based)."""
  at = [0, 10, 11, 50, 51, 200, 201, 500, 501, 1000, 1001, 2000, 2001, 4001, 6001, 8001]
  halvings = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7, 8, 9]
  got = jax.jit(jax.vmap(lambda i: square_module.square_fraction(i, 0.8)))(jnp.array(at))
  np.testing.assert_allclose(got, [0.8 / 2 ** h for h in halvings], rtol=1e-6)
  # Sides on 32 x 32 images: round(sqrt(p * 1024)); L2 odd and at least 3.
  first = [0, 11, 51, 201, 501, 1001, 2001, 4001, 6001, 8001]
  side = lambda norm, p=0.8, size=32: jax.jit(jax.vmap(
      lambda i: square_module.square_side(i, p, size, size, norm)))(jnp.array(first)).tolist()
  assert side("linf") == [29, 20, 14, 10, 7, 5, 4, 3, 2, 1]
  assert side("l2") == [29, 21, 15, 11, 7, 5, 5, 3, 3, 3]
  assert side("linf", 1.0, 8)[0] == 8  # capped at the image


def _naive_bump(rows, cols):
  """Nested centred rectangles, ring k (Chebyshev radius k) adding 1 / (k + 1)^2."""
  out = np.zeros((rows, cols))
  r, c = rows // 2, cols // 2
  for k in range(max(rows // 2, cols // 2) + 1):
    out[max(r - k, 0):r + k + 1, max(c - k, 0):c + k + 1] += 1.0 / (k + 1) ** 2
  norm = np.linalg.norm(out)
  return out / norm if norm else out


L2_PATTERN = jax.jit(square_module.l2_pattern, static_argnums=(4, 5))


@pytest.mark.parametrize("s", [1, 2, 3, 4, 5, 8, 9])
def test_the_l2_pattern_is_two_opposite_centred_bumps(s):
  top = _naive_bump(s // 2, s)
  want = np.concatenate([top, -_naive_bump(s - s // 2, s)])
  want /= np.linalg.norm(want)
  for flip in (False, True):
    got = np.asarray(L2_PATTERN(2, 3, jnp.int32(s), flip, 12, 14))
    expected = np.zeros((12, 14))
    expected[2:2 + s, 3:3 + s] = want.T if flip else want
    np.testing.assert_allclose(got, expected, atol=1e-6)


def _naive_l2_move(x, best, corner, clear, s, flip, signs, eps):
  """The L2 update spelled out with slices, one image [H, W, C]."""
  (r, c), (r2, c2) = corner, clear
  delta = best - x
  window = delta[r:r + s, c:c + s]
  union = np.zeros(x.shape[:2], bool)
  union[r:r + s, c:c + s] = union[r2:r2 + s, c2:c2 + s] = True
  held = np.sqrt((delta[union] ** 2).sum(0))  # per channel: what both squares hold
  room = max(eps ** 2 - (delta ** 2).sum(), 0.0) / x.shape[-1]
  pattern = np.concatenate([_naive_bump(s // 2, s), -_naive_bump(s - s // 2, s)])
  pattern /= np.linalg.norm(pattern)
  pattern = pattern.T if flip else pattern
  new = pattern[..., None] * signs + window / (1e-12 + np.sqrt((window ** 2).sum((0, 1))))
  new *= np.sqrt(room + held ** 2) / (1e-12 + np.sqrt((new ** 2).sum((0, 1))))
  delta[r2:r2 + s, c2:c2 + s] = 0.0
  delta[r:r + s, c:c + s] = new
  return np.clip(x + delta * eps / (np.linalg.norm(delta) + 1e-12), 0, 1)


# (corner, cleared corner, side, transposed): apart, overlapping, the same square, even side.
MOVES = [((1, 2), (5, 4), 3, False), ((0, 0), (1, 1), 5, True), ((3, 3), (0, 5), 5, False),
         ((6, 3), (6, 3), 3, True), ((2, 7), (7, 0), 2, False)]


@pytest.mark.parametrize("shrink", [1.0, 0.3])  # a start on the sphere, and one inside it
def test_the_moves_are_the_reference_updates(shrink):
  rng = np.random.default_rng(4)
  x = rng.uniform(0.2, 0.8, (10, 10, 3)).astype(np.float32)
  eps = 0.5
  delta = rng.normal(size=x.shape)
  best = (x + shrink * eps * delta / np.linalg.norm(delta)).astype(np.float32)
  l2_move = jax.jit(square_module.l2_move)
  linf_move = jax.jit(square_module.linf_move)
  for corner, clear, s, flip in MOVES:
    signs = rng.choice([-1.0, 1.0], 3).astype(np.float32)
    got = l2_move(x, best, corner, clear, s, flip, signs, eps)
    want = _naive_l2_move(x, best.astype(np.float64), corner, clear, s, flip, signs, eps)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.linalg.norm(np.asarray(got) - x) <= eps + 1e-5
    (r, c), box = corner, 0.1
    got = linf_move(x, np.clip(best, x - box, x + box), corner, s, signs, box)
    want = np.clip(best, x - box, x + box)
    want[r:r + s, c:c + s] = np.clip(x[r:r + s, c:c + s] + box * signs, 0, 1)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_the_starts_are_vertical_stripes_and_a_grid_of_patterns():
  x = images(1, (32, 32, 3), 0.3, 0.7)[0]
  linf = np.asarray(jax.jit(square_module._start_linf)(KEY, x, 0.1)) - np.asarray(x)
  np.testing.assert_allclose(np.abs(linf), 0.1, atol=1e-6)
  signs = np.sign(linf)
  np.testing.assert_array_equal(signs, np.broadcast_to(signs[:1], signs.shape))  # stripes
  assert 0 < (signs[0] > 0).sum() < signs[0].size
  l2 = np.asarray(jax.jit(square_module._start_l2)(KEY, x, 2.0)) - np.asarray(x)
  assert abs(np.linalg.norm(l2) - 2.0) < 1e-4
  # 32 // 5 = 6: a 5 x 5 grid of 6 x 6 tiles from pixel 1; the border is left alone.
  assert np.all(l2[0] == 0) and np.all(l2[:, 0] == 0) and np.all(l2[31] == 0)
  pattern = np.concatenate([_naive_bump(3, 6), -_naive_bump(3, 6)])
  shapes = [p / np.linalg.norm(p) for p in (pattern, -pattern, pattern.T, -pattern.T)]
  seen = set()
  for r in range(1, 31, 6):
    for c in range(1, 31, 6):
      for ch in range(3):
        tile = l2[r:r + 6, c:c + 6, ch]
        match = [np.allclose(tile / np.linalg.norm(tile), s, atol=1e-5) for s in shapes]
        assert sum(match) == 1
        seen.add(match.index(True))
  assert seen == {0, 1, 2, 3}  # random signs and transpositions


def test_a_square_can_sit_at_every_place():
  """H - s + 1 places per axis (the reference code never draws the last one)."""
  bits = jax.random.bits(KEY, (2, 400))
  rows, cols = jax.jit(square_module._corner, static_argnums=(2, 3))(bits, 3, 5, 6)
  assert set(np.asarray(rows).tolist()) == {0, 1, 2}
  assert set(np.asarray(cols).tolist()) == {0, 1, 2, 3}
