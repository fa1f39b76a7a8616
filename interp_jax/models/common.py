"""What every model shares: how named intermediates are recorded and read back.

A model calls `record(self, "conv1", x)` on each layer a user may select; the
activation lands in the `intermediates` collection under that name, and
`apply_with_features` returns them as a flat dict next to the logits:

    logits, feats = apply_with_features(model, variables, x, layers=("conv2", "fc1"))
"""

from typing import Iterable

import flax.linen as nn
import jax


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
