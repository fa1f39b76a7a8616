"""FAB: the fast adaptive boundary attack, targeted (FAB-T) or untargeted, L-inf or L2.

    x_adv = fab(apply_fn, variables, x, y, key, eps=8/255, norm="linf", steps=100, targets=9)

FAB looks for the smallest perturbation that changes the prediction, not for
the highest loss within eps. Each step linearises the model at the current
point x1: the boundary between the label y and a class k becomes a hyperplane
w . z = b with w = grad(z_k - z_y)(x1), b = w . x1 - (z_k - z_y)(x1). Both x1
and the clean image x0 are projected onto it within the box [0, 1] (minimal
L-inf or L2 norm); the next point mixes the two projections, overshot by eta:
x1 <- clip((1 - alpha)(x1 + eta d1) + alpha (x0 + eta d0)), with alpha =
min(|d1| / (|d1| + |d0|), alpha_max), which pulls the search towards x0. Once a
point is misclassified it is kept if it is the closest to x0 so far, and the
search steps back towards x0: x1 <- x0 + beta (x1 - x0).

The class k: targeted (FAB-T, AutoAttack's version), the r-th largest clean
logit, one run per rank r = 2 .. targets + 1, each run only for the images that
no earlier run broke; untargeted, the closest linearised boundary over all
classes (one input gradient per class and step). Either way a run counts for an
image only where the point it found is within eps (the reference's `perturb`):
FAB itself minimises the distance and uses eps only to scale the random starts
of restarts 2, 3, ... (at distance eps / 2 from x0, in a direction drawn as the
reference draws it: uniform pixels for L-inf, normal ones for L2).

Returns float32 images in [0, 1]: for an image broken within eps, the closest
misclassified point its first successful run found (within eps of x); for the
others, and for images misclassified from the start, x itself. eps is traced (a
sweep over eps does not recompile); the step never sees it. `key` is needed
only for restarts > 1: one PRNG key, or one key per image (then an image's
result depends on its own key and pixels, not on its place in the batch).

Each step costs one input gradient (untargeted: one per class), one forward
pass to check the new point, and the two projections. Each projection is a
one-dimensional root-finding problem: d_i = clip(-t sign(w_i)) (L-inf) or
clip(-t w_i) (L2) in the box, w . d piecewise linear and concave in t; it is
solved by a bracketed Newton/secant search, then one exact Newton step in the
last piece, without the sort the reference uses (a sort of 256 x 3072 pixels
took longer on XLA's CPU backend than the model's gradient). Where the
hyperplane cannot be reached inside the box, the point goes to the box's
corner, as far as the box allows (as the reference does). A targeted step
costs about one input gradient of the CE loss and an untargeted step one per
class (`python -m interp_jax.bench attacks` times it against that floor).

References: Croce and Hein 2020, "Minimally distorted adversarial examples with
a fast adaptive boundary attack" (ICML); Croce and Hein 2020, "Reliable
evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks" (AutoAttack, FAB-T).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from interp_jax.attacks import checks, loop
from interp_jax.attacks.projections import is_key_batch
from interp_jax.errors import UserError

# Safeguarded Newton/secant steps of the projection's root search: each at least halves the
# bracket's log-width; on a CNN's input gradients (3072 pixels) 8-10 reached float precision.
_SOLVE_STEPS = 10
_TINY = 1e-30


class _State(NamedTuple):
  x1: jax.Array      # [B, H, W, C] the current point
  best: jax.Array    # [B, H, W, C] the closest misclassified point so far
  dist: jax.Array    # [B] its distance to x0 (inf: none yet)
  active: jax.Array  # [B] searching (correctly classified, not broken by an earlier run)


def _size(v: jax.Array, norm: str) -> jax.Array:
  """The norm of each row of v over its last axis."""
  if norm == "linf":
    return jnp.max(jnp.abs(v), axis=-1)
  return jnp.sqrt(jnp.sum(jnp.square(v), axis=-1))


def _clipped_sum(a, r, t):
  """h(t) = sum_i a_i min(t, r_i) and its right slope sum_{r_i > t} a_i, per row."""
  t = t[..., None]
  return (jnp.sum(a * jnp.minimum(t, r), axis=-1),
          jnp.sum(jnp.where(r > t, a, 0.0), axis=-1))


def _solve_clipped(a, r, need, steps: int = _SOLVE_STEPS):
  """The smallest t >= 0 with sum_i a_i min(t, r_i) = need, per row; max r_i if out of reach.

  h(t) = sum_i a_i min(t, r_i) (a, r >= 0) is concave, increasing and piecewise linear,
  so a tangent's root is a lower bound of h's root (Newton from below never overshoots)
  and a chord's root an upper bound. Each step evaluates h once, at the geometric mean of
  the two bounds (L2's breakpoints r_i = room_i / |w_i| can span many decades), and moves
  one end of the bracket there; the last step is Newton's from the bracket's lower end,
  exact once no breakpoint lies between it and the root.
  """
  total = jnp.sum(a, axis=-1)
  reach = jnp.sum(a * r, axis=-1)  # h(max r): all the way to the box's corner
  top = jnp.max(jnp.where(a > 0, r, 0.0), axis=-1)
  # h(t) <= t * total, so need / total is below the root.
  lo = jnp.minimum(need / jnp.maximum(total, _TINY), top)
  h_lo, s_lo = _clipped_sum(a, r, lo)
  hi, h_hi = top, reach

  def narrow(_, bracket):
    lo, h_lo, s_lo, hi, h_hi = bracket
    gap = need - h_lo
    newton = jnp.clip(lo + gap / jnp.maximum(s_lo, _TINY), lo, hi)
    secant = jnp.clip(lo + gap * (hi - lo) / jnp.maximum(h_hi - h_lo, _TINY), newton, hi)
    # newton * sqrt(secant / newton), not sqrt of the product: that can overflow float32.
    q = jnp.where(newton > 0, newton * jnp.sqrt(secant / jnp.maximum(newton, _TINY)),
                  0.5 * secant)
    h_q, s_q = _clipped_sum(a, r, q)
    below = h_q <= need
    return (jnp.where(below, q, lo), jnp.where(below, h_q, h_lo), jnp.where(below, s_q, s_lo),
            jnp.where(below, hi, q), jnp.where(below, h_hi, h_q))

  # A loop, not unrolled: no slower, and quicker to compile.
  lo, h_lo, s_lo, hi, h_hi = jax.lax.fori_loop(0, steps, narrow, (lo, h_lo, s_lo, hi, h_hi))
  t = jnp.minimum(lo + (need - h_lo) / jnp.maximum(s_lo, _TINY), hi)
  t = jnp.where(need >= reach, top, t)
  return jnp.where(need > 0, t, 0.0)


def project_to_hyperplane(p: jax.Array, w: jax.Array, b: jax.Array, norm: str) -> jax.Array:
  """The smallest d (L-inf or L2) with w . (p + d) = b and p + d in [0, 1], per row.

  p, w: [..., n] (points in the box and normals), b: [...]. Where the hyperplane cannot
  be reached inside the box, d goes as far towards it as the box allows: every
  coordinate with w_i != 0 to the box's face that moves w . (p + d) towards b.
  """
  c = jnp.sum(w * p, axis=-1) - b
  # Oriented so that w . d must fall by need = |c|: each coordinate moves against w.
  w = jnp.where((c >= 0)[..., None], w, -w)
  need = jnp.abs(c)
  room = jnp.where(w > 0, p, 1.0 - p)  # how far each coordinate can move against w
  size = jnp.abs(w)
  if norm == "linf":
    # d_i = -sign(w_i) min(t, room_i): w . d = -sum_i |w_i| min(t, room_i).
    t = _solve_clipped(size, room, need)
    d = -jnp.sign(w) * jnp.minimum(t[..., None], room)
  else:
    # d_i = -w_i min(lam, room_i / |w_i|): w . d = -sum_i w_i^2 min(lam, room_i / |w_i|).
    r = jnp.where(size > 0, room / jnp.where(size > 0, size, 1.0), 0.0)
    lam = _solve_clipped(jnp.square(size), r, need)
    d = -w * jnp.minimum(lam[..., None], r)
  return jnp.clip(d, -p, 1.0 - p)  # rounding of room / |w_i| * |w_i| must not leave the box


def _label_logit(logits, y):
  return jnp.take_along_axis(logits, y[:, None], axis=1)[:, 0]


def _boundary(apply_fn, variables, x1, y, target, *, targeted: bool, norm: str):
  """(f, grad f) of the boundary to aim at, f = z_k - z_y at x1 (negative while y wins)."""
  if targeted:
    def diff(z):
      logits = apply_fn(variables, z)
      return _label_logit(logits, target) - _label_logit(logits, y)
    f, pull = jax.vjp(diff, x1)
    # One pullback of the summed differences: each image's logits depend on its own pixels.
    return f, pull(jnp.ones_like(f))[0]
  logits, pull = jax.vjp(lambda z: apply_fn(variables, z), x1)
  batch, num_classes = logits.shape
  # Cotangent e_k - e_y for every class k: one pullback per class, batched.
  cotangents = jnp.eye(num_classes)[:, None, :] - jax.nn.one_hot(y, num_classes)[None]
  grads = jax.vmap(lambda c: pull(c)[0])(cotangents).reshape(num_classes, batch, -1)
  f = logits - _label_logit(logits, y)[:, None]  # [B, K]
  # The closest linearised boundary: |f_k| / ||grad f_k||_dual (L1 for L-inf, L2 for L2).
  dual = jnp.sum(jnp.abs(grads), -1) if norm == "linf" else _size(grads, "l2")
  dist = jnp.abs(f) / (1e-12 + dual.T)
  k = jnp.argmin(jnp.where(jax.nn.one_hot(y, num_classes, dtype=bool), jnp.inf, dist), axis=1)
  grad = jnp.take_along_axis(grads, k[None, :, None], axis=0)[0]
  return _label_logit(f, k), grad.reshape(x1.shape)


@functools.partial(jax.jit, static_argnames=("apply_fn", "targeted", "norm"))
def _linearise(state, *, variables, y, target, apply_fn, targeted, norm):
  return _boundary(apply_fn, variables, state.x1, y, target, targeted=targeted, norm=norm)


@functools.partial(jax.jit, static_argnames=("apply_fn", "norm", "alpha_max", "eta", "beta"))
def _move(state, f, grad, *, variables, x0, y, apply_fn, norm, alpha_max, eta, beta):
  """The rest of a step, from the linearised boundary f + grad . (z - x1) = 0."""
  batch = x0.shape[0]
  w = grad.reshape(batch, -1)
  x1, x0f = state.x1.reshape(batch, -1), x0.reshape(batch, -1)
  b = jnp.sum(w * x1, axis=1) - f  # the boundary as w . z = b
  # Both projections in one call: the current point's and the clean image's.
  d = project_to_hyperplane(jnp.stack([x1, x0f]), jnp.stack([w, w]), jnp.stack([b, b]), norm)
  d1, d0 = d[0], d[1]
  size1 = jnp.maximum(_size(d1, norm), 1e-8)
  size0 = jnp.maximum(_size(d0, norm), 1e-8)
  # The closer the boundary is to x1 than to x0, the less the step is pulled towards x0.
  alpha = jnp.clip(size1 / (size1 + size0), 0.0, alpha_max)[:, None]
  new = jnp.clip((x1 + eta * d1) * (1.0 - alpha) + (x0f + eta * d0) * alpha, 0.0, 1.0)
  fooled = jnp.argmax(apply_fn(variables, new.reshape(x0.shape)), axis=-1) != y
  dist = _size(new - x0f, norm)
  better = state.active & fooled & (dist < state.dist)
  best = jnp.where(better[:, None], new, state.best.reshape(batch, -1))
  # After a success, step back towards x0 to look for a closer point.
  new = jnp.where(fooled[:, None], x0f + beta * (new - x0f), new)
  x1 = jnp.where(state.active[:, None], new, x1)
  return _State(x1.reshape(x0.shape), best.reshape(x0.shape),
                jnp.where(better, dist, state.dist), state.active)


def _step(i, state, *, variables, x0, y, target, apply_fn, norm, targeted, alpha_max, eta,
          beta):
  """One FAB step for every image; images not active keep their state.

  Two jitted calls, not one: compiled into one program with the rest of the step, the
  boundary's input gradient made the step slower on XLA's CPU backend (an optimization
  barrier or a conditional between the two did not help). Traced, the two are one
  program anyway.
  """
  del i
  # The norm picks the closest boundary, untargeted only: one compile for both norms else.
  f, grad = _linearise(state, variables=variables, y=y, target=target, apply_fn=apply_fn,
                       targeted=targeted, norm=None if targeted else norm)
  return _move(state, f, grad, variables=variables, x0=x0, y=y, apply_fn=apply_fn, norm=norm,
               alpha_max=alpha_max, eta=eta, beta=beta)


def _none_active(state: _State) -> jax.Array:
  return jnp.logical_not(state.active.any())


@functools.partial(jax.jit, static_argnames=("apply_fn", "ranks"))
def _clean(variables, x, y, *, apply_fn, ranks):
  """Which images the model gets right, and their classes by falling clean logit."""
  logits = apply_fn(variables, x)
  return jnp.argmax(logits, axis=-1) == y, jax.lax.top_k(logits, ranks)[1]


def _direction(key, shape, norm: str) -> jax.Array:
  """The reference's random direction: uniform in [-1, 1] (L-inf) or normal (L2) per pixel,
  per image from its own key when there is one per image."""
  def draw(k, s):
    if norm == "linf":
      return jax.random.uniform(k, s, jnp.float32, -1.0, 1.0)
    return jax.random.normal(k, s, jnp.float32)
  if is_key_batch(key):
    return jax.vmap(lambda k: draw(k, shape[1:]))(key)
  return draw(key, shape)


@functools.partial(jax.jit, static_argnames=("norm",))
def _random_start(x, key, eps, run, *, norm):
  """A point at distance eps / 2 from x in a random direction (clipped to the box)."""
  if is_key_batch(key):
    key = jax.vmap(jax.random.fold_in, in_axes=(0, None))(key, run)
  else:
    key = jax.random.fold_in(key, run)
  u = _direction(key, x.shape, norm)
  u = u / jnp.maximum(_size(u.reshape(x.shape[0], -1), norm), 1e-12)[:, None, None, None]
  return jnp.clip(x + 0.5 * eps * u, 0.0, 1.0)


@jax.jit
def _merge(state, result, broken, eps):
  """Takes a run's points where they are within eps; those images are done."""
  success = state.active & (state.dist <= eps)
  return jnp.where(success[:, None, None, None], state.best, result), broken | success


def fab(apply_fn, variables, x, y, key=None, *, eps, norm="linf", steps=100, targets=9,
        restarts=1, targeted=True, alpha_max=0.1, eta=1.05, beta=0.9):
  """FAB (targeted: FAB-T, AutoAttack's settings by default): see the module docstring.

  Args:
    x, y: NHWC images in [0, 1] and their labels.
    key: a PRNG key (or one per image), needed only when restarts > 1.
    eps: the budget a found point must meet to count (and the random starts' scale).
    norm: "linf" or "l2", the distance minimised.
    steps: FAB steps per run.
    targets: targeted only: runs aim at the 2nd .. (targets + 1)-th largest clean logit.
    restarts: runs per target (untargeted: in all); each after the first starts at random.
    targeted: False aims every step at the closest linearised boundary over all classes.
    alpha_max, eta, beta: the largest pull towards x0, the overshoot, the step back.

  Returns float32 images in [0, 1]: the closest misclassified point found within eps of x,
  or x itself where none was (and where x is misclassified already).
  """
  checks.check_budget(x, eps, None, steps, norm)
  checks.check_inputs(apply_fn, variables, x, y)
  if int(restarts) != restarts or restarts < 1:
    raise UserError(f"restarts must be a positive integer, got {restarts}")
  if targeted:
    num_classes = checks._num_classes(apply_fn, variables, x)
    if int(targets) != targets or not 1 <= targets <= num_classes - 1:
      raise UserError(f"targets must be an integer in [1, {num_classes - 1}] for a model "
                      f"of {num_classes} classes, got {targets}")
  if not 0.0 <= alpha_max <= 1.0 or not eta > 0.0 or not 0.0 < beta <= 1.0:
    raise UserError(f"FAB needs alpha_max in [0, 1], eta > 0 and beta in (0, 1], got "
                    f"{alpha_max}, {eta}, {beta}")
  if restarts > 1:
    if key is None:
      raise UserError("FAB's restarts start at random: restarts > 1 needs a PRNG key "
                      "(jax.random.key(seed))")
    if is_key_batch(key) and key.shape[0] != x.shape[0]:
      raise UserError(f"got {key.shape[0]} keys for {x.shape[0]} images; pass one key, "
                      "or one per image")
  x = jnp.asarray(x, jnp.float32)
  eps = jnp.asarray(eps, jnp.float32)
  runs = int(targets) if targeted else 1
  correct, ranked = _clean(variables, x, y, apply_fn=apply_fn, ranks=runs + 1)
  result, broken = x, jnp.logical_not(correct)  # misclassified already: x is the answer
  for r in range(runs):
    step = functools.partial(
        _step, variables=variables, x0=x, y=y, target=ranked[:, r + 1], apply_fn=apply_fn,
        norm=norm, targeted=bool(targeted), alpha_max=float(alpha_max), eta=float(eta),
        beta=float(beta))
    for k in range(int(restarts)):
      start = x if k == 0 else _random_start(x, key, eps, r * int(restarts) + k, norm=norm)
      state = _State(start, x, jnp.full(x.shape[:1], jnp.inf, jnp.float32),
                     jnp.logical_not(broken))
      state = loop.fori(step, int(steps), state, done=_none_active)
      result, broken = _merge(state, result, broken, eps)
  return result
