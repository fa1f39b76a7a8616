"""VGG-11/16 (Simonyan & Zisserman 2015), with or without BatchNorm.

Named layers: block1..block5 (after the last conv of each block, before its
pooling), fc1, fc2, logits. The defaults suit 32x32 inputs (BatchNorm, bias-free
convs, a 512-wide head on the flattened map); torchvision's layout is
`batch_norm` False (vgg11, vgg16) or True (vgg11_bn, vgg16_bn) with
`conv_bias=True, hidden=4096, pool_size=7` (an adaptive average pool to 7x7
before flattening). Dropout is left out: the identity at inference, and the
training steps pass no dropout key.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from interp_jax.models.common import adaptive_avg_pool, input_conv, max_pool_2x2, record

DEPTHS = {11: (1, 1, 2, 2, 2), 16: (2, 2, 3, 3, 3)}
WIDTHS = (64, 128, 256, 512, 512)


class VGG(nn.Module):
  num_classes: int
  depth: int = 11
  widths: Sequence[int] = WIDTHS
  hidden: int = 512
  batch_norm: bool = True
  conv_bias: bool = False
  pool_size: int | None = None  # None: flatten the last map as it is

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
        x = nn.Conv(width, (3, 3), use_bias=self.conv_bias or not self.batch_norm,
                    name=f"conv{i + 1}_{j + 1}",
                    conv_general_dilated=input_conv if first else None)(x)
        if self.batch_norm:
          x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                           name=f"bn{i + 1}_{j + 1}")(x)
        x = nn.relu(x)
      x = record(self, f"block{i + 1}", x)
      x = max_pool_2x2(x)
    if self.pool_size:
      x = adaptive_avg_pool(x, self.pool_size)
    x = x.reshape(x.shape[0], -1)
    x = record(self, "fc1", nn.relu(nn.Dense(self.hidden, name="dense1")(x)))
    x = record(self, "fc2", nn.relu(nn.Dense(self.hidden, name="dense2")(x)))
    return record(self, "logits", nn.Dense(self.num_classes, name="head")(x).astype(jnp.float32))
