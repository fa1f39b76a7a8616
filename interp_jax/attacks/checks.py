"""Input checks shared by every attack, run before anything is traced.

Values that are tracers (the attack called inside a user's jit or vmap) are
not inspected: their checks ran, or will run, where they are concrete.
"""

import math

import jax
import numpy as np

from interp_jax.attacks.projections import NORMS
from interp_jax.errors import UserError


def _concrete(v) -> bool:
  return not isinstance(v, jax.core.Tracer)


_CLASSES: dict = {}


def _num_classes(apply_fn, variables, x, random: bool = False) -> int:
  """The logits' width, from shapes alone; cached, since tracing a model is not free.

  random: the model is called as apply_fn(variables, x, key).
  """
  leaves, treedef = jax.tree.flatten(variables)
  key = (apply_fn, treedef, tuple((l.shape, l.dtype) for l in leaves), x.shape, x.dtype,
         random)
  if key not in _CLASSES:
    extra = (jax.random.key(0),) if random else ()
    try:
      _CLASSES[key] = jax.eval_shape(apply_fn, variables, x, *extra).shape[-1]
    except TypeError as e:
      if not random:
        raise
      raise UserError("a random model (AutoAttack's rand version, eot_iter > 1) is called as "
                      f"apply_fn(variables, x, key); this one could not be: {e}") from None
  return _CLASSES[key]


def check_options(eps, step_size, steps, norm: str, image_shape=None) -> None:
  """The bounds of an attack's options, the only place they live.

  image_shape (H, W, C), when known, bounds an L2 radius by the image cube's
  diagonal; without it an L2 radius need only be non-negative.
  """
  if norm not in NORMS:
    raise UserError(f"unknown norm {norm!r}; use one of {', '.join(NORMS)}")
  # L-inf radii live in [0, 1] like pixels; an L2 radius can reach the cube's diagonal.
  if norm == "linf":
    top = 1.0
  else:
    top = math.sqrt(float(np.prod(image_shape))) if image_shape is not None else math.inf
  if _concrete(eps) and not 0.0 <= float(eps) <= top:
    raise UserError(f"eps must be in [0, {top:g}] for the {norm} norm, got {eps}")
  if step_size is not None and _concrete(step_size) and not float(step_size) > 0.0:
    raise UserError(f"step_size must be positive, got {step_size}")
  if steps is not None and (int(steps) != steps or steps < 1):
    raise UserError(f"steps must be a positive integer, got {steps}")


def check_budget(x, eps, step_size, steps, norm: str) -> None:
  """check_options for a batch x of NHWC images."""
  if getattr(x, "ndim", None) != 4:
    raise UserError(f"images must be NHWC, got shape {getattr(x, 'shape', None)}")
  check_options(eps, step_size, steps, norm, x.shape[1:])


def check_inputs(apply_fn, variables, x, y, random: bool = False) -> None:
  """Images in [0, 1]; one integer label per image, within the model's classes."""
  if _concrete(x):
    xs = np.asarray(x)  # numpy: inside a jit trace, jnp reductions would be staged
    lo, hi = float(xs.min()), float(xs.max())
    if lo < 0.0 or hi > 1.0:
      raise UserError(f"images must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}]")
  if getattr(y, "shape", None) != (x.shape[0],):
    raise UserError(f"labels must have shape ({x.shape[0]},), got {getattr(y, 'shape', None)}")
  if not np.issubdtype(y.dtype, np.integer):
    raise UserError(f"labels must be integers, got {y.dtype}")
  if _concrete(y) and y.size:
    num_classes = _num_classes(apply_fn, variables, x, random)
    ys = np.asarray(y)
    lo, hi = int(ys.min()), int(ys.max())
    if lo < 0 or hi >= num_classes:
      raise UserError(f"labels must be in [0, {num_classes - 1}], got values in [{lo}, {hi}]")
