"""Gradient attacks: FGSM, BIM / PGD, iterative least-likely class, MI-FGSM.

    x_adv = pgd(apply_fn, variables, x, y, key, eps=8/255, step_size=2/255,
                steps=10, norm="linf", random_start=True, targeted=False)

`apply_fn(variables, x) -> logits` is any pure function (a Flax
`model.apply`, a wrapper, an `ensemble`); x is NHWC in [0, 1]; y holds the
true labels, or the target classes when `targeted=True`. Each attack returns
images in [0, 1] within eps of x, works under `jax.jit` and `jax.vmap`, and
compiles once per (apply_fn, shapes, static options): eps and step_size are
traced, so a sweep over eps does not recompile.

How the steps run depends on the backend (`unroll_steps` says which): on
XLA's CPU backend they are unrolled into straight-line code, because a loop
body gets generic, slow convolution kernels there, slower than the same gradient
passes unrolled (`python -m interp_jax.bench attacks` times each attack against
them);
elsewhere they run as one `lax.scan`, whose compile time does not grow with
the step count. `unroll=k` asks for a scan unrolled k times on any backend,
`unroll=steps` for straight-line code.

References: Goodfellow et al. 2015 (FGSM); Kurakin et al. 2017 (BIM, ILLC);
Madry et al. 2018 (PGD); Dong et al. 2018 (MI-FGSM).
"""

import functools

import jax
import jax.numpy as jnp

from interp_jax import losses
from interp_jax.attacks import checks
from interp_jax.attacks.projections import (ascent_direction, l1_norm, random_point,
                                            to_ball_and_box, _per_example)
from interp_jax.errors import UserError


def attack_loss(apply_fn, variables, x, y) -> jax.Array:
  """Per-example loss an attack ascends: CE of the logits, or the apply_fn's own.

  An apply_fn may define `attack_loss(variables, x, y)` (see `ensemble` with
  mode="loss") to be attacked through a loss other than CE of its logits.
  """
  own = getattr(apply_fn, "attack_loss", None)
  if own is not None:
    return own(variables, x, y)
  return losses.cross_entropy(apply_fn(variables, x), y)


def unroll_steps() -> bool:
  """Whether attacks unroll their steps by default: on XLA's CPU backend only, where measured."""
  return jax.default_backend() == "cpu"


@functools.partial(jax.jit, static_argnames=(
    "apply_fn", "steps", "norm", "random_start", "targeted", "decay", "unroll"))
def _iterate(apply_fn, variables, x, y, key, eps, step_size, *, steps, norm,
             random_start, targeted, decay, unroll):
  """The shared loop: optional random start, then `steps` projected ascent steps."""
  sign = -1.0 if targeted else 1.0  # targeted: descend the loss of the target class
  grad_fn = jax.grad(lambda z: sign * attack_loss(apply_fn, variables, z, y).sum())
  x = x.astype(jnp.float32)
  x_adv = x
  if random_start:
    x_adv = to_ball_and_box(x + random_point(key, x.shape, eps, norm), x, eps, norm)

  def update(g, x_adv, velocity):
    if decay is not None:  # MI-FGSM: accumulate L1-normalised gradients
      velocity = decay * velocity + g / _per_example(jnp.maximum(l1_norm(g), 1e-12), g)
      g = velocity
    return to_ball_and_box(x_adv + step_size * ascent_direction(g, norm), x, eps, norm), velocity

  carry = (x_adv, jnp.zeros_like(x))
  if unroll is None:
    unroll = steps if unroll_steps() else 1
  if unroll >= steps:
    # Straight-line code: even a one-trip scan compiles to a while loop whose
    # convolutions get XLA CPU's slow generic kernels (`bench attacks` shows the floor).
    # Each step's update goes through a conditional, a boundary XLA's fusion cannot
    # cross: fused, every step re-derived all earlier steps' input gradients from
    # their matmul outputs (work quadratic in the steps).
    # optimization_barrier would say this, but XLA's CPU pipeline drops it first.
    go = _true_at_run_time(variables, x)
    for _ in range(steps):
      carry = jax.lax.cond(go, update, lambda g, *c: c, grad_fn(carry[0]), *carry)
  else:
    carry, _ = jax.lax.scan(lambda c, _: (update(grad_fn(c[0]), *c), None), carry, None,
                            length=steps, unroll=unroll)
  return carry[0]


def _true_at_run_time(variables, x: jax.Array) -> jax.Array:
  """True whatever the values, but known only at run time: a predicate XLA cannot fold
  away with its conditional (as it does `eps >= 0` for a constant eps).

  Read from the model's first parameter, which callers pass to their jitted step
  and keep replicated: read from the sharded images instead, it cost a cross-device
  broadcast per step (a slower analysis step). Images only
  for a model without parameters.
  """
  leaves = [l for l in jax.tree.leaves(variables) if jnp.size(l)]
  source = leaves[0] if leaves else x
  scalar = jnp.ravel(jnp.asarray(source))[0].astype(jnp.float32)
  return (jax.lax.bitcast_convert_type(scalar, jnp.int32) | 1) != 0


def _run(apply_fn, variables, x, y, key, *, eps, step_size, steps, norm, random_start,
         targeted, decay=None, unroll=None, default_step=0.25):
  """Checks the inputs, then runs _iterate; step_size None means default_step * eps."""
  checks.check_budget(x, eps, step_size, steps, norm)
  checks.check_inputs(apply_fn, variables, x, y)
  if random_start and key is None:
    raise UserError("a random start needs a PRNG key (jax.random.key(seed))")
  if key is None:
    key = jax.random.key(0)  # unused without a random start; keeps one signature
  step_size = eps * default_step if step_size is None else step_size
  return _iterate(apply_fn, variables, x, y, key, jnp.float32(eps), jnp.float32(step_size),
                  steps=int(steps), norm=norm, random_start=bool(random_start),
                  targeted=bool(targeted), decay=decay, unroll=unroll)


def fgsm(apply_fn, variables, x, y, key=None, *, eps, norm="linf", targeted=False):
  """One step of size eps along sign(grad) (L-inf) or grad/||grad||2 (L2: FGM)."""
  return _run(apply_fn, variables, x, y, key, eps=eps, step_size=None, steps=1, norm=norm,
              random_start=False, targeted=targeted, default_step=1.0)


def pgd(apply_fn, variables, x, y, key=None, *, eps, step_size=None, steps=10, norm="linf",
        random_start=True, targeted=False, unroll=None):
  """Projected gradient descent (Madry et al.): `steps` steps of `step_size` (eps/4)."""
  return _run(apply_fn, variables, x, y, key, eps=eps, step_size=step_size, steps=steps,
              norm=norm, random_start=random_start, targeted=targeted, unroll=unroll)


def bim(apply_fn, variables, x, y, key=None, *, eps, step_size=None, steps=10, norm="linf",
        targeted=False, unroll=None):
  """Basic iterative method / I-FGSM: PGD without the random start."""
  return _run(apply_fn, variables, x, y, key, eps=eps, step_size=step_size, steps=steps,
              norm=norm, random_start=False, targeted=targeted, unroll=unroll)


def least_likely_class(apply_fn, variables, x) -> jax.Array:
  """argmin of the clean prediction: the ILLC target."""
  return jnp.argmin(apply_fn(variables, x), axis=-1).astype(jnp.int32)


def least_likely(apply_fn, variables, x, y, key=None, *, eps, step_size=None, steps=10,
                 norm="linf", unroll=None):
  """Iterative least-likely class: targeted BIM toward argmin of the clean logits.

  y (the true labels) is only checked; the target comes from the model.
  """
  checks.check_inputs(apply_fn, variables, x, y)
  target = least_likely_class(apply_fn, variables, x)
  return _run(apply_fn, variables, x, target, key, eps=eps, step_size=step_size,
              steps=steps, norm=norm, random_start=False, targeted=True, unroll=unroll)


def mi_fgsm(apply_fn, variables, x, y, key=None, *, eps, step_size=None, steps=10,
            decay=1.0, norm="linf", targeted=False, random_start=False, unroll=None):
  """Momentum iterative FGSM: g <- decay * g + grad / ||grad||1, step along sign(g)."""
  return _run(apply_fn, variables, x, y, key, eps=eps, step_size=step_size, steps=steps,
              norm=norm, random_start=random_start, targeted=targeted, decay=float(decay),
              unroll=unroll)
