"""Cheaper input gradients for any model function on XLA's CPU backend, by rewriting its jaxpr.

    fast_apply = models.cpu_fast(module.apply)       # (variables, x, ...) -> the same output
    adv = attacks.pgd(fast_apply, variables, x, y, key, eps=8 / 255)

`models.adapt` applies it to a user's module (`adapt(..., cpu_fast=False)`
keeps XLA's own ops). The function is traced to a jaxpr, which is evaluated
again with two substitutions:

- pooling by max or min whose window equals its stride, without padding
  (`nn.max_pool(x, (2, 2), strides=(2, 2))`, "VALID", or "SAME" on even
  maps) becomes a reshape and a max, as `common.max_pool_2x2`:
  `reduce_window_max`'s gradient is select-and-scatter, which XLA's CPU
  backend runs several times slower than the gradient of a plain max;
- a convolution of the input image (at most 4 channels; the input itself, or
  through elementwise ops such as a normalisation) takes `common.input_conv`'s
  fast input gradient.

Values are identical. Gradients equal XLA's except at ties within a pooling
window, where XLA gives the whole gradient to one element and the rewrite
shares it (after a ReLU, ties at zero get no gradient either way). The
rewrite happens only on the CPU backend, decided when the function is traced;
elsewhere, and for a function it cannot trace or finds nothing to rewrite in,
the original runs. Calls of jitted functions inside the model are inlined
when they hold something to rewrite; custom_jvp and custom_vjp functions,
remat and control flow are left as they are.
"""

import functools
import warnings

import jax
from jax import lax
from jax.extend import core as jcore
import jax.numpy as jnp

from interp_jax.models import common

_POOLS = {"reduce_window_max": jnp.max, "reduce_window_min": jnp.min}
# Ops that keep a value "the input" for the first conv: a normalisation or a cast.
_ELEMENTWISE = {"add", "sub", "mul", "div", "neg", "convert_element_type"}
# input_conv's gradient writes kh x kw copies of its input's channels: cheap for an image's.
_IMAGE_CHANNELS = 4
_CALLS = {"jit": "jaxpr", "closed_call": "call_jaxpr"}


def cpu_fast(apply_fn):
  """`apply_fn(variables, x, ...)` with the substitutions of the module docstring on CPU.

  Args:
    apply_fn: a function of (variables, x) and optional further arguments,
      which are passed through unchanged and not differentiated.
  Returns:
    A function with apply_fn's signature and outputs.
  """
  @functools.wraps(apply_fn)
  def fast(variables, x, *args, **kwargs):
    original = lambda: apply_fn(variables, x, *args, **kwargs)
    if not common.fast_input_grad():  # the substitutions were measured on CPU only
      return original()
    try:
      closed, shapes = jax.make_jaxpr(lambda v, z: apply_fn(v, z, *args, **kwargs),
                                      return_shape=True)(variables, x)
    except Exception:  # pylint: disable=broad-except
      return original()  # not a function of arrays: run it as given (its own error, if any)
    jaxpr = closed.jaxpr
    image = set(jaxpr.invars[len(jaxpr.invars) - len(jax.tree.leaves(x)):])
    try:
      if not count_rewrites(jaxpr, image):
        return original()
      outs = _eval(jaxpr, closed.consts, jax.tree.leaves((variables, x)), image)
    except Exception as e:  # pylint: disable=broad-except
      warnings.warn(f"models.cpu_fast left {getattr(apply_fn, '__name__', apply_fn)} "
                    f"unchanged: {e!r}")
      return original()
    return jax.tree.unflatten(jax.tree.structure(shapes), outs)

  return fast


def count_rewrites(jaxpr, image=frozenset()) -> int:
  """How many equations of `jaxpr` (nested calls included) cpu_fast substitutes, given
  the variables `image` that hold the input."""
  image, n = set(image), 0
  for eqn in jaxpr.eqns:
    if _substitute(eqn, image):
      n += 1
    elif (inner := _inlined(eqn, image)) is not None:
      n += count_rewrites(inner[0].jaxpr, inner[1])
    image |= _derived(eqn, image)
  return n


def window_pool(x, window, reduce=jnp.max):
  """reduce_window of `reduce` with window = stride = `window` (one size per axis), no padding.

  As `common.max_pool_2x2`: a reshape that gives each window its own axes, then
  a reduction over them, whose gradient is elementwise where reduce_window's is
  a scatter. (Strided slices combined by lax.max measured slower inside a
  whole network's gradient.)
  """
  if any(n % w for n, w in zip(x.shape, window)):  # VALID drops the incomplete windows
    x = lax.slice(x, (0,) * x.ndim, tuple(n - n % w for n, w in zip(x.shape, window)))
  shape, axes = [], []
  for n, w in zip(x.shape, window):
    shape += [n // w, w] if w > 1 else [n]
    if w > 1:
      axes.append(len(shape) - 1)
  return reduce(x.reshape(shape), axis=tuple(axes)) if axes else x


def _is_var(v) -> bool:
  return isinstance(v, jcore.Var)


def _substitute(eqn, image):
  """The replacement for `eqn` (a function of its inputs), or None to keep it."""
  name, p = eqn.primitive.name, eqn.params
  if name in _POOLS:
    if (tuple(p["window_dimensions"]) == tuple(p["window_strides"])
        and all(tuple(pair) == (0, 0) for pair in p["padding"])
        and set(p["base_dilation"]) | set(p["window_dilation"]) == {1}):
      return functools.partial(window_pool, window=tuple(p["window_dimensions"]),
                               reduce=_POOLS[name])
  elif name == "conv_general_dilated" and _is_var(eqn.invars[0]) and eqn.invars[0] in image:
    lhs, rhs = (v.aval for v in eqn.invars)
    args = (p["window_strides"], p["padding"], p["lhs_dilation"], p["rhs_dilation"],
            p["dimension_numbers"], p["feature_group_count"])
    if (p["batch_group_count"] == 1 and p["preferred_element_type"] is None
        and jnp.issubdtype(lhs.dtype, jnp.floating) and lhs.dtype == rhs.dtype
        and lhs.ndim == 4 and lhs.shape[-1] <= _IMAGE_CHANNELS
        and common.tap_padding(lhs.shape, rhs.shape, *args) is not None):
      return lambda l, r: common.input_conv(l, r, *args, precision=p["precision"], fast=True)
  return None


def _inlined(eqn, image):
  """(closed jaxpr, its input variables) of a call to inline, or None."""
  param = _CALLS.get(eqn.primitive.name)
  if param is None:
    return None
  p = eqn.params
  # A jit with shardings or layouts says where its values live: inlining would drop that.
  if any(type(s).__name__ != "UnspecifiedValue"
         for s in (*p.get("in_shardings", ()), *p.get("out_shardings", ()))):
    return None
  if any(l is not None for l in (*p.get("in_layouts", ()), *p.get("out_layouts", ()))):
    return None
  closed = p[param]
  inner = {v for v, outer in zip(closed.jaxpr.invars, eqn.invars)
           if _is_var(outer) and outer in image}
  return (closed, inner) if count_rewrites(closed.jaxpr, inner) else None


def _derived(eqn, image) -> set:
  """The outputs of `eqn` that are still the input, elementwise (see _ELEMENTWISE)."""
  if eqn.primitive.name not in _ELEMENTWISE:
    return set()
  shapes = [v.aval.shape for v in eqn.invars if _is_var(v) and v in image]
  return {eqn.outvars[0]} if eqn.outvars[0].aval.shape in shapes else set()


def _eval(jaxpr, consts, args, image):
  """jax.core.eval_jaxpr with cpu_fast's substitutions and inlined calls."""
  env = dict(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  read = lambda v: v.val if isinstance(v, jcore.Literal) else env[v]
  image = set(image)
  for eqn in jaxpr.eqns:
    values = [read(v) for v in eqn.invars]
    if (replace := _substitute(eqn, image)) is not None:
      outs = [replace(*values)]
    elif (inner := _inlined(eqn, image)) is not None:
      outs = _eval(inner[0].jaxpr, inner[0].consts, values, inner[1])
    else:
      params = eqn.primitive.get_bind_params(eqn.params)
      subfuns, params = params if isinstance(params, tuple) else ((), params)
      outs = eqn.primitive.bind(*subfuns, *values, **params)
      outs = outs if eqn.primitive.multiple_results else [outs]
    env.update(zip(eqn.outvars, outs))
    image |= _derived(eqn, image)
  return [read(v) for v in jaxpr.outvars]
