"""VGG-11/16 (Simonyan & Zisserman 2015) with BatchNorm.

Named layers: block1..block5 (after the last conv of each block, before its
pooling), fc1, fc2, logits. `hidden` sets the dense width: 512 suits 32x32
inputs, 4096 is the ImageNet original.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from interp_jax.models.common import input_conv, max_pool_2x2, record

DEPTHS = {11: (1, 1, 2, 2, 2), 16: (2, 2, 3, 3, 3)}
WIDTHS = (64, 128, 256, 512, 512)


class VGG(nn.Module):
  num_classes: int
  depth: int = 11
  widths: Sequence[int] = WIDTHS
  hidden: int = 512

  @property
  def layer_names(self) -> tuple[str, ...]:
    return tuple(f"block{i + 1}" for i in range(len(self.widths))) + ("fc1", "fc2", "logits")

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.depth not in DEPTHS:
      raise ValueError(f"VGG depth {self.depth} is not one of {sorted(DEPTHS)}")
    for i, (convs, width) in enumerate(zip(DEPTHS[self.depth], self.widths)):
      for j in range(convs):
        first = i == 0 and j == 0  # input_conv: a cheap input gradient for attacks
        x = nn.Conv(width, (3, 3), use_bias=False, name=f"conv{i + 1}_{j + 1}",
                    conv_general_dilated=input_conv if first else None)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                         name=f"bn{i + 1}_{j + 1}")(x)
        x = nn.relu(x)
      record(self, f"block{i + 1}", x)
      x = max_pool_2x2(x)
    x = x.reshape(x.shape[0], -1)
    x = record(self, "fc1", nn.relu(nn.Dense(self.hidden, name="dense1")(x)))
    x = record(self, "fc2", nn.relu(nn.Dense(self.hidden, name="dense2")(x)))
    return record(self, "logits", nn.Dense(self.num_classes, name="head")(x).astype(jnp.float32))
