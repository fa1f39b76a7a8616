"""What every model shares: how named intermediates are recorded and read back.

A model calls `record(self, "conv1", x)` on each layer a user may select; the
activation lands in the `intermediates` collection under that name, and
`apply_with_features` returns them as a flat dict next to the logits:

    logits, feats = apply_with_features(model, variables, x, layers=("conv2", "fc1"))
"""

from typing import Iterable

import flax.linen as nn
import jax
import jax.numpy as jnp


def record(module: nn.Module, name: str, x: jax.Array) -> jax.Array:
  """Stores x under `name` (the last value wins, not a tuple of calls)."""
  module.sow("intermediates", name, x, init_fn=lambda: None, reduce_fn=lambda _, v: v)
  return x


def apply_with_features(model: nn.Module, variables, x: jax.Array,
                        layers: Iterable[str] | None = None, train: bool = False):
  """Inference-mode logits and a {layer: activation} dict for `layers` (all if None)."""
  variables = {k: v for k, v in variables.items() if k != "intermediates"}
  logits, state = model.apply(variables, x, train=train, mutable=["intermediates"])
  feats = dict(state["intermediates"])
  if layers is not None:
    missing = [name for name in layers if name not in feats]
    if missing:
      raise KeyError(f"unknown layer(s) {missing}; the model has {sorted(feats)}")
    feats = {name: feats[name] for name in layers}
  return logits, feats


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pooling, stride 2 (VALID: an odd last row or column is dropped).

  Written as a reshape and a max rather than `nn.max_pool`: XLA's CPU
  backward of reduce_window (select-and-scatter) measured 6.6x slower than the
  gradient of a plain max, and every attack step and train step pays it.
  """
  b, h, w, c = x.shape
  x = x[:, :h - h % 2, :w - w % 2]
  return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))
