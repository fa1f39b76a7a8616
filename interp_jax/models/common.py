"""What every model shares: how named intermediates are recorded and read back.

A model calls `record(self, "conv1", x)` on each layer a user may select; the
activation lands in the `intermediates` collection under that name, and
`apply_with_features` returns them as a flat dict next to the logits:

    logits, feats = apply_with_features(model, variables, x, layers=("conv2", "fc1"))
"""

import functools
from typing import Iterable

from flax import traverse_util
import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp



ABLATIONS = "ablations"


def record(module: nn.Module, name: str, x: jax.Array) -> jax.Array:
  """Stores x under `name` (the last value wins, not a tuple of calls) and returns it.

  When the variables hold an `ablations` entry for this layer, {"keep": [C],
  "fill": broadcastable to x}, the returned (and stored) activation is
  `x * keep + fill * (1 - keep)`: channels with keep 0 are replaced by fill.
  This is how tracing knocks out one neuron (measures/influence.py).
  """
  if module.has_variable(ABLATIONS, name):
    edit = module.get_variable(ABLATIONS, name)
    x = x * edit["keep"] + edit["fill"] * (1 - edit["keep"])
  module.sow("intermediates", name, x, init_fn=lambda: None, reduce_fn=lambda _, v: v)
  return x


def features(intermediates) -> dict:
  """{name: array} from a Flax "intermediates" tree: nested names joined by "/", a
  captured submodule's "/__call__" dropped, a sown tuple's last value kept."""
  flat = traverse_util.flatten_dict(intermediates, sep="/")
  out = {}
  for name, value in flat.items():
    name = name[:-len("/__call__")] if name.endswith("/__call__") else name
    out[name] = value[-1] if isinstance(value, tuple) else value
  return out


def apply_with_features(model: nn.Module, variables, x: jax.Array,
                        layers: Iterable[str] | None = None, train: bool = False):
  """Inference-mode logits and a {layer: activation} dict for `layers` (all if None)."""
  variables = {k: v for k, v in variables.items() if k != "intermediates"}
  logits, state = model.apply(variables, x, train=train, mutable=["intermediates"])
  feats = features(state.get("intermediates", {}))
  if layers is not None:
    missing = [name for name in layers if name not in feats]
    if missing:
      raise KeyError(f"unknown layer(s) {missing}; the model has {sorted(feats)}")
    feats = {name: feats[name] for name in layers}
  return logits, feats


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pooling, stride 2 (VALID: an odd last row or column is dropped).

  Written as a reshape and a max rather than `nn.max_pool`: XLA's CPU
  backward of reduce_window (select-and-scatter) runs several times slower than the
  gradient of a plain max, and every attack step and train step pays it.
  """
  b, h, w, c = x.shape
  x = x[:, :h - h % 2, :w - w % 2]
  return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


def fast_input_grad() -> bool:
  """Whether input_conv takes its fast path: on XLA's CPU backend only, where it was measured.

  Decided when a model is traced, from jax.default_backend(); GPU and TPU
  keep XLA's own convolution gradients.
  """
  return jax.default_backend() == "cpu"


def input_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
               dimension_numbers=None, feature_group_count=1, precision=None, *, fast=None):
  """`lax.conv_general_dilated` with a cheaper input gradient, for a network's first conv.

  Every attack step needs d loss / d image, which ends in the first conv's
  input gradient: a transposed convolution with 3 output channels, a shape
  XLA's CPU backend runs slowly (slower than the whole forward pass of small_cnn).
  On the fast path that gradient is one matmul to per-tap
  contributions [B, H, W, kh, kw, C] and kh x kw shifted adds; the forward
  pass and the kernel gradient are XLA's own. Stride-1, undilated NHWC/HWIO
  convolutions take it when `fast` (default: fast_input_grad(), i.e. on CPU);
  any other call is passed straight to lax. Forward mode (jax.jvp, jacfwd)
  works on both paths. Pass it to `nn.Conv(..., conv_general_dilated=input_conv)`.
  """
  fast = fast_input_grad() if fast is None else fast
  pads = tap_padding(lhs.shape, rhs.shape, window_strides, padding, lhs_dilation,
                     rhs_dilation, dimension_numbers, feature_group_count) if fast else None
  if pads is not None:
    return _tap_grad_conv(lhs, rhs, pads, precision)
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                  rhs_dilation, dimension_numbers, feature_group_count,
                                  precision=precision)


def tap_padding(lhs_shape, rhs_shape, window_strides, padding, lhs_dilation=None,
                rhs_dilation=None, dimension_numbers=None, feature_group_count=1):
  """The explicit padding ((top, bottom), (left, right)) of a convolution that input_conv's
  fast path takes (stride 1, undilated, NHWC/HWIO, one group, no negative padding), else None."""
  if len(lhs_shape) != 4 or len(rhs_shape) != 4:
    return None
  nhwc = lax.conv_dimension_numbers(lhs_shape, rhs_shape, ("NHWC", "HWIO", "NHWC"))
  given = lax.conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers)
  ones = (1, 1)
  if not (given == nhwc and tuple(window_strides) == ones
          and tuple(lhs_dilation or ones) == ones and tuple(rhs_dilation or ones) == ones
          and feature_group_count == 1):
    return None
  pads = (lax.padtype_to_pads(lhs_shape[1:3], rhs_shape[:2], window_strides, padding)
          if isinstance(padding, str) else padding)
  pads = tuple(tuple(int(p) for p in pair) for pair in pads)
  return pads if min(min(pair) for pair in pads) >= 0 else None


def _plain_conv(x, w, padding, precision):
  return lax.conv_general_dilated(x, w, (1, 1), padding,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)


def _tap_conv(x, w, padding, precision):
  """The same convolution as patches [B, H, W, kh*kw*C] times the kernel: one matmul.

  Linear in x, and its transpose is the fast input gradient: the matmul's
  transpose gives each tap's contribution, the slices' transposes are the
  shifted adds. JAX derives it, so no custom_vjp is needed and jvp works.
  """
  kh, kw, c, o = w.shape
  (top, bottom), (left, right) = padding
  xpad = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  oh, ow = xpad.shape[1] - kh + 1, xpad.shape[2] - kw + 1
  patches = jnp.stack([xpad[:, di:di + oh, dj:dj + ow] for di in range(kh) for dj in range(kw)],
                      axis=3)  # [B, oh, ow, kh*kw, C], taps in the kernel's HW order
  y = jnp.dot(patches.reshape(-1, kh * kw * c), w.reshape(kh * kw * c, o).astype(x.dtype),
              precision=precision)
  return y.reshape(x.shape[0], oh, ow, o)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _tap_grad_conv(x, w, padding, precision):
  return _plain_conv(x, w, padding, precision)


def _tap_grad_jvp(padding, precision, primals, tangents):
  # The forward value is XLA's conv; the image tangent goes through _tap_conv,
  # whose transpose (reverse mode) is the cheap input gradient, and the kernel
  # tangent through XLA's conv, whose transpose is XLA's kernel gradient. A
  # zero tangent (the kernel in an attack, the image in a train step) costs nothing.
  (x, w), (dx, dw) = primals, tangents
  y = _plain_conv(x, w, padding, precision)
  parts = []
  if not isinstance(dx, jax.custom_derivatives.SymbolicZero):
    parts.append(_tap_conv(dx, w, padding, precision))
  if not isinstance(dw, jax.custom_derivatives.SymbolicZero):
    parts.append(_plain_conv(x, dw, padding, precision))
  return y, sum(parts[1:], parts[0]) if parts else jnp.zeros_like(y)


_tap_grad_conv.defjvp(_tap_grad_jvp, symbolic_zeros=True)


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
  """PyTorch's AdaptiveAvgPool2d((size, size)) on an NHWC map.

  Output bin i averages input rows floor(i * H / size) .. ceil((i + 1) * H / size)
  (and the same for columns), so bins overlap or repeat a pixel when H does
  not divide (torchvision's VGG and AlexNet heads on inputs other than 224).
  """
  def pool(x, axis):
    n = x.shape[axis]
    if n == size:
      return x
    if n % size == 0:
      shape = x.shape[:axis] + (size, n // size) + x.shape[axis + 1:]
      return x.reshape(shape).mean(axis=axis + 1)
    bins = [lax.slice_in_dim(x, (i * n) // size, -(-((i + 1) * n) // size), axis=axis)
            for i in range(size)]
    return jnp.stack([b.mean(axis=axis) for b in bins], axis=axis)

  return pool(pool(x, 1), 2)
