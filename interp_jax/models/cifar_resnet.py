"""The CIFAR ResNets of He et al. 2016 (section 4.2): ResNet-20, 32, 44, 56.

Three stages of 16, 32 and 64 channels on 32x32 images, n = (depth - 2) / 6
basic blocks per stage, and parameter-free "option A" shortcuts: where a
block halves the map and doubles the channels, the shortcut takes every other
pixel (`x[:, ::2, ::2]`) and pads the new channels with zeros, half before
and half after the old ones. The layout is that of the widely shared PyTorch
code (`conv1, bn1, layer{1,2,3}.N.{conv1,bn1,conv2,bn2}, linear`), so its
checkpoints import (models/torch_import.py). Named layers: stem, layer1,
layer2, layer3 (the output of each stage), pool (global average), logits.

References: He, Zhang, Ren, Sun, "Deep Residual Learning for Image
Recognition", CVPR 2016.
"""

import flax.linen as nn
import jax.numpy as jnp

from interp_jax.models.common import input_conv, record

WIDTHS = (16, 32, 64)
_PAD1 = ((1, 1), (1, 1))  # PyTorch's padding=1: a stride-2 "SAME" would pad (0, 1)


class ShortcutABlock(nn.Module):
  width: int
  stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool):
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)
    y = nn.Conv(self.width, (3, 3), self.stride, padding=_PAD1, use_bias=False,
                name="conv1")(x)
    y = nn.relu(norm("bn1")(y))
    y = norm("bn2")(nn.Conv(self.width, (3, 3), padding=_PAD1, use_bias=False,
                            name="conv2")(y))
    if self.stride != 1 or x.shape[-1] != self.width:
      x = x[:, ::self.stride, ::self.stride]
      extra = self.width - x.shape[-1]
      x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
    return nn.relu(x + y)


class CifarResNet(nn.Module):
  num_classes: int
  depth: int = 20

  @property
  def layer_names(self) -> tuple[str, ...]:
    return ("stem", "layer1", "layer2", "layer3", "pool", "logits")

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.depth < 8 or (self.depth - 2) % 6:
      raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (20, 32, 44, 56...), "
                       f"got {self.depth}")
    blocks = (self.depth - 2) // 6
    x = nn.Conv(WIDTHS[0], (3, 3), padding=_PAD1, use_bias=False, name="stem_conv",
                conv_general_dilated=input_conv)(x)  # a cheap input gradient for attacks
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="stem_bn")(x)
    x = record(self, "stem", nn.relu(x))
    for i, width in enumerate(WIDTHS):
      for j in range(blocks):
        stride = 2 if i > 0 and j == 0 else 1
        x = ShortcutABlock(width, stride, name=f"layer{i + 1}_{j}")(x, train)
      x = record(self, f"layer{i + 1}", x)
    x = record(self, "pool", jnp.mean(x, axis=(1, 2)))
    return record(self, "logits", nn.Dense(self.num_classes, name="head")(x).astype(jnp.float32))
