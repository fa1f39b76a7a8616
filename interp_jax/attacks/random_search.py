"""Square attack: a black-box attack by random search over square-shaped updates.

    x_adv = square(apply_fn, variables, x, y, key, eps=8/255, norm="linf", queries=5000)

It reads the model's logits only, never a gradient, so masked or obfuscated
gradients do not stop it (it is one of AutoAttack's four attacks, run there
untargeted with p_init=0.8 and 5000 queries). Each query proposes, for every
image, a point that differs from its current one on a random square of side
~ sqrt(p * H * W), p halving on a fixed schedule of the query index: for L-inf
the square's pixels jump to a vertex of the eps-cube (one sign per channel);
for L2 a centred pattern is added there and mass is taken from a second square,
keeping the perturbation's norm at eps. A proposal is kept only where it lowers
the margin z_y - max_{j != y} z_j. The search starts from vertical stripes of
+-eps (L-inf) or a grid of those patterns scaled to norm eps (L2).

An image counts as fooled once its margin is below 0 (an image misclassified
from the start: at query 0) and is frozen from then on, so the loop stops when
every image is fooled and stopping changes nothing. The result is, per image,
the first point that fooled the model, else the lowest-margin point found (the
image itself if no query beat it). eps is traced: a sweep over eps does not
recompile. `key` is one PRNG key for the batch, or one key per example: then an
image's result depends on its own key and pixels, not on its place in the batch.

Unlike the reference code, every image draws its own squares and signs (the
reference shares the square's place, and for L-inf its signs, across the batch),
and a square may sit at any of the H - s + 1 offsets (the reference never
draws the last one, so with s = 1 it never touches the last row or column).

References: Andriushchenko, Croce, Flammarion and Hein 2020 (Square Attack);
Croce and Hein 2020 (AutoAttack).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from interp_jax.attacks import checks, loop
from interp_jax.attacks.projections import is_key_batch, to_ball_and_box
from interp_jax.errors import UserError

# Query indices after which the square's area fraction p halves (the reference's schedule,
# not rescaled to the query budget, as AutoAttack runs it).
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_TINY = 1e-12


class _State(NamedTuple):
  best: jax.Array    # [B, H, W, C] each image's current point
  margin: jax.Array  # [B] its margin
  fooled: jax.Array  # [B] margin below 0: frozen


def margin(logits: jax.Array, y: jax.Array) -> jax.Array:
  """z_y - max_{j != y} z_j per example: negative exactly when the prediction is not y."""
  true = jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]
  others = jnp.where(jax.nn.one_hot(y, logits.shape[-1], dtype=bool), -jnp.inf, logits)
  return true - others.max(axis=1)


def square_fraction(i, p_init: float) -> jax.Array:
  """p at query i (0-based): p_init, halved after each index of _HALVINGS."""
  halvings = sum((jnp.asarray(i) > t).astype(jnp.int32) for t in _HALVINGS)
  return p_init * jnp.exp2(-halvings.astype(jnp.float32))


def square_side(i, p_init: float, height: int, width: int, norm: str) -> jax.Array:
  """The side of query i's squares: round(sqrt(p * H * W)), at least 1 (L2: odd, at least 3),
  at most min(H, W)."""
  s = jnp.round(jnp.sqrt(square_fraction(i, p_init) * (height * width))).astype(jnp.int32)
  if norm == "l2":  # the L2 pattern wants a centre pixel
    s = jnp.maximum(s, 3)
    s = s + (s % 2 == 0)
  return jnp.clip(s, 1, min(height, width))


def _in_square(r0, c0, s, height: int, width: int) -> jax.Array:
  """[H, W] mask of the square with corner (r0, c0) and side s: dynamic sizes, no slicing."""
  rows = jnp.arange(height)[:, None]
  cols = jnp.arange(width)[None, :]
  return (rows >= r0) & (rows < r0 + s) & (cols >= c0) & (cols < c0 + s)


def _unit(v: jax.Array) -> jax.Array:
  return v / jnp.maximum(jnp.sqrt(jnp.sum(jnp.square(v))), _TINY)


def l2_pattern(r0, c0, s, flip, height: int, width: int) -> jax.Array:
  """[H, W] the L2 move's pattern, zero outside the square (r0, c0, s); unit L2 norm.

  The square's top s // 2 rows hold a bump, the other rows the negated bump: at
  Chebyshev distance d from its half's centre (row h // 2 of the half, column
  s // 2) the bump is sum_{m = d + 1}^{s // 2 + 1} 1 / m^2. Each half is scaled to
  unit norm before the whole is; `flip` transposes the pattern.
  """
  a = jnp.arange(height)[:, None] - r0
  b = jnp.arange(width)[None, :] - c0
  a, b = jnp.where(flip, b, a), jnp.where(flip, a, b)
  inside = (a >= 0) & (a < s) & (b >= 0) & (b < s)
  half = s // 2
  top = a < half
  row_in_half = jnp.where(top, a, a - half)
  centre = jnp.where(top, half // 2, (s - half) // 2)
  distance = jnp.maximum(jnp.abs(row_in_half - centre), jnp.abs(b - half))
  levels = half + 1
  # cumulative[n] = sum_{m=1}^{n} 1/m^2, so a bump value is one difference of two entries.
  cumulative = jnp.asarray(np.concatenate(
      [[0.0], np.cumsum(1.0 / np.arange(1, max(height, width) + 2) ** 2)]), jnp.float32)
  bump = cumulative[levels] - cumulative[jnp.clip(distance, 0, levels)]
  bump = jnp.where(inside, bump, 0.0)
  return _unit(_unit(jnp.where(top, bump, 0.0)) - _unit(jnp.where(top, 0.0, bump)))


# Every draw of a query comes from one `random.bits` call per image: each threefry call
# (split, randint, bernoulli) added to the step's compile time on CPU.


def _signs(bits: jax.Array) -> jax.Array:
  return jnp.where(bits & 1 == 1, 1.0, -1.0)


def _below(bits: jax.Array, n) -> jax.Array:
  """Uniform in [0, n) for n << 2^32 (the modulo's bias is below n / 2^32)."""
  return (bits % jnp.asarray(n, jnp.uint32)).astype(jnp.int32)


def _corner(bits: jax.Array, s, height: int, width: int):
  """A uniform corner among the (H - s + 1) x (W - s + 1) places of a side-s square."""
  return _below(bits[0], height - s + 1), _below(bits[1], width - s + 1)


def _start_linf(key, x, eps):
  """Vertical stripes: one sign per column and channel, constant down the rows."""
  return jnp.clip(x + eps * _signs(jax.random.bits(key, (1,) + x.shape[1:])), 0.0, 1.0)


def _start_l2(key, x, eps):
  """A grid of L2 patterns of side H // 5, each with a random transposition and one sign
  per channel, scaled to norm eps."""
  height, width, channels = x.shape
  side = max(height // 5, 1)
  first = (height - 5 * side) // 2
  corners = [(first + i * side, first + j * side)
             for i in range(height // side) for j in range(width // side)]
  rows, cols = (jnp.asarray(v, jnp.int32) for v in zip(*corners))
  tiles = jax.vmap(l2_pattern, in_axes=(0, 0, None, None, None, None))
  upright, flipped = (tiles(rows, cols, side, f, height, width) for f in (False, True))
  bits = jax.random.bits(key, (len(corners), channels + 1))
  flip, signs = bits[:, :1] & 1 == 1, _signs(bits[:, 1:])
  # Contractions over the tiles: never a [tiles, H, W] array per image.
  delta = (jnp.einsum("thw,tc->hwc", upright, jnp.where(flip, 0.0, signs))
           + jnp.einsum("thw,tc->hwc", flipped, jnp.where(flip, signs, 0.0)))
  return jnp.clip(x + eps * _unit(delta), 0.0, 1.0)


def linf_move(x, best, corner, s, signs, eps):
  """best with the side-s square at `corner` moved to the vertex x + eps * signs [C] of the
  eps-cube (then into the box)."""
  height, width, _ = x.shape
  inside = _in_square(*corner, s, height, width)[..., None]
  return to_ball_and_box(jnp.where(inside, best + 2.0 * eps * signs, best), x, eps, "linf")


def l2_move(x, best, corner, clear, s, flip, signs, eps):
  """best with an L2 pattern (signed per channel) added on the square at `corner` and the
  square at `clear` emptied; per channel, the new square gets the mass both squares held
  plus an even share of what the budget has left, and the whole is rescaled to norm eps."""
  height, width, channels = x.shape
  first = _in_square(*corner, s, height, width)[..., None]
  second = _in_square(*clear, s, height, width)[..., None]
  delta = best - x
  channel_norm = lambda v: jnp.sqrt(jnp.sum(jnp.square(v), axis=(0, 1)))  # [C]
  in_first = jnp.where(first, delta, 0.0)
  both = channel_norm(jnp.where(first | second, delta, 0.0))
  room = jnp.maximum(jnp.square(eps) - jnp.sum(jnp.square(delta)), 0.0)
  pattern = l2_pattern(*corner, s, flip, height, width)[..., None]
  new = pattern * signs + in_first / (_TINY + channel_norm(in_first))
  new = new / (_TINY + channel_norm(new)) * jnp.sqrt(room / channels + jnp.square(both))
  delta = jnp.where(first, new, jnp.where(second, 0.0, delta))
  delta = delta * (eps / (jnp.sqrt(jnp.sum(jnp.square(delta))) + _TINY))
  return to_ball_and_box(x + delta, x, eps, "l2")


def _propose_linf(key, x, best, s, eps):
  height, width, channels = x.shape
  bits = jax.random.bits(key, (2 + channels,))
  return linf_move(x, best, _corner(bits, s, height, width), s, _signs(bits[2:]), eps)


def _propose_l2(key, x, best, s, eps):
  height, width, channels = x.shape
  bits = jax.random.bits(key, (5 + channels,))
  return l2_move(x, best, _corner(bits[0:2], s, height, width),
                 _corner(bits[2:4], s, height, width), s, bits[4] & 1 == 1,
                 _signs(bits[5:]), eps)


def _accept(state: _State, candidate, candidate_margin) -> _State:
  """Keeps each unfooled image's candidate where it lowers the margin."""
  better = (candidate_margin < state.margin) & ~state.fooled
  new_margin = jnp.where(better, candidate_margin, state.margin)
  best = jnp.where(better[:, None, None, None], candidate, state.best)
  return _State(best, new_margin, state.fooled | (new_margin < 0))


def _per_image_keys(keys, data):
  return jax.vmap(lambda k: jax.random.fold_in(k, data))(keys)


@functools.partial(jax.jit, static_argnames=("apply_fn", "norm"))
def _start(variables, x, y, keys, eps, *, apply_fn, norm):
  """Query 0: the clean margins, then the initial stripes or grid, taken as the search's
  starting point (as the reference does) unless the clean image is already fooled."""
  clean = margin(apply_fn(variables, x), y)
  init = _start_linf if norm == "linf" else _start_l2
  x0 = jax.vmap(init, in_axes=(0, 0, None))(_per_image_keys(keys, 0), x, eps)
  m0 = margin(apply_fn(variables, x0), y)
  fooled = clean < 0
  first = jnp.where(fooled, clean, m0)
  state = _State(jnp.where(fooled[:, None, None, None], x, x0), first, first < 0)
  return state, clean


@functools.partial(jax.jit, static_argnames=("apply_fn", "norm", "p_init"))
def _step(i, state, *, variables, x, y, keys, eps, apply_fn, norm, p_init):
  """Query i + 1: one proposal per image, one forward pass of the batch."""
  height, width = x.shape[1:3]
  s = square_side(i, p_init, height, width, norm)
  propose = _propose_linf if norm == "linf" else _propose_l2
  candidate = jax.vmap(propose, in_axes=(0, 0, 0, None, None))(
      _per_image_keys(keys, i + 1), x, state.best, s, eps)
  return _accept(state, candidate, margin(apply_fn(variables, candidate), y))


def _all_fooled(state: _State) -> jax.Array:
  return state.fooled.all()


def square(apply_fn, variables, x, y, key=None, *, eps, norm="linf", queries=5000, p_init=0.8):
  """Square attack (untargeted, margin loss): `queries` random-search steps after the start.

  Returns float32 images in [0, 1] within eps of x (L-inf or L2 per example).
  """
  checks.check_budget(x, eps, None, queries, norm)
  checks.check_inputs(apply_fn, variables, x, y)
  if key is None:
    raise UserError("the Square attack draws its squares at random: it needs a PRNG key "
                    "(jax.random.key(seed))")
  if not 0.0 < float(p_init) <= 1.0:
    raise UserError(f"p_init must be in (0, 1], got {p_init}")
  x = jnp.asarray(x, jnp.float32)
  if is_key_batch(key):
    if key.shape[0] != x.shape[0]:
      raise UserError(f"got {key.shape[0]} keys for {x.shape[0]} images; pass one key, "
                      "or one per image")
    keys = key
  else:
    keys = jax.random.split(key, x.shape[0])
  eps = jnp.asarray(eps, jnp.float32)
  state, clean = _start(variables, x, y, keys, eps, apply_fn=apply_fn, norm=norm)
  step = functools.partial(_step, variables=variables, x=x, y=y, keys=keys, eps=eps,
                           apply_fn=apply_fn, norm=norm, p_init=float(p_init))
  state = loop.fori(step, queries, state, done=_all_fooled)
  return jnp.where((state.margin < clean)[:, None, None, None], state.best, x)
