"""A small CNN that trains in minutes on a laptop CPU.

Blocks of conv3x3 -> BatchNorm -> ReLU -> max-pool 2x2, a global pooling of
the last map (`head_pool`: "max", "avg", or "flatten" for none), one hidden
dense layer and the logits. Named layers: conv1..convN (after ReLU, before pooling,
so dissection sees the finest map), fc1, logits.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from interp_jax.models.common import input_conv, max_pool_2x2, record


class SmallCNN(nn.Module):
  num_classes: int
  widths: Sequence[int] = (16, 32, 64)
  hidden: int = 128
  batch_norm: bool = True
  head_pool: str = "max"

  @property
  def layer_names(self) -> tuple[str, ...]:
    return tuple(f"conv{i + 1}" for i in range(len(self.widths))) + ("fc1", "logits")

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i, width in enumerate(self.widths):
      # The first conv's input gradient is every attack step's last op: input_conv
      # makes it cheap (see its docstring).
      x = nn.Conv(width, (3, 3), use_bias=not self.batch_norm, name=f"Conv_{i}",
                  conv_general_dilated=input_conv if i == 0 else None)(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name=f"BatchNorm_{i}")(x)
      x = record(self, f"conv{i + 1}", nn.relu(x))
      if i < len(self.widths) - 1 or self.head_pool == "flatten":
        x = max_pool_2x2(x)
    if self.head_pool == "max":  # position-invariant: the object may be anywhere
      x = jnp.max(x, axis=(1, 2))
    elif self.head_pool == "avg":
      x = jnp.mean(x, axis=(1, 2))
    elif self.head_pool == "flatten":
      x = x.reshape(x.shape[0], -1)
    else:
      raise ValueError(f"unknown head_pool {self.head_pool!r}; use max, avg or flatten")
    x = record(self, "fc1", nn.relu(nn.Dense(self.hidden, name="Dense_0")(x)))
    return record(self, "logits", nn.Dense(self.num_classes, name="head")(x).astype(jnp.float32))
