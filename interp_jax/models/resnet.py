"""ResNet-18/34 (basic blocks) and ResNet-50 (bottlenecks), He et al. 2016.

`stem="cifar"` (3x3 conv, no pooling: for 32x32 images) or `"imagenet"`
(7x7 stride-2 conv and 3x3 max-pool). Named layers: stem, layer1..layer4 (the
output of each stage), pool (global average), logits.

With the ImageNet stem this is torchvision's layout: the stride of a
bottleneck is on its 3x3 conv (ResNet "v1.5"), a block's projection
shortcut (1x1 conv + BatchNorm, torchvision's `downsample.0/1`) is `proj` and
`bn_proj` here, and 3x3 convs pad one pixel on every side as PyTorch's
`padding=1` does (a stride-2 "SAME" would pad only after), so torchvision
checkpoints import (models/torch_import.py).
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from interp_jax.models.common import input_conv, record

_PAD1 = ((1, 1), (1, 1))  # PyTorch's padding=1


class BasicBlock(nn.Module):
  width: int
  stride: int = 1
  expansion = 1

  @nn.compact
  def __call__(self, x, train: bool):
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)
    y = nn.Conv(self.width, (3, 3), self.stride, padding=_PAD1, use_bias=False,
                name="conv1")(x)
    y = nn.relu(norm("bn1")(y))
    y = nn.Conv(self.width, (3, 3), padding=_PAD1, use_bias=False, name="conv2")(y)
    y = norm("bn2")(y)
    if x.shape != y.shape:
      x = norm("bn_proj")(nn.Conv(self.width, (1, 1), self.stride, use_bias=False,
                                  name="proj")(x))
    return nn.relu(x + y)


class Bottleneck(nn.Module):
  width: int
  stride: int = 1
  expansion = 4

  @nn.compact
  def __call__(self, x, train: bool):
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)
    y = nn.relu(norm("bn1")(nn.Conv(self.width, (1, 1), use_bias=False, name="conv1")(x)))
    y = nn.Conv(self.width, (3, 3), self.stride, padding=_PAD1, use_bias=False,
                name="conv2")(y)
    y = nn.relu(norm("bn2")(y))
    y = nn.Conv(self.width * 4, (1, 1), use_bias=False, name="conv3")(y)
    y = norm("bn3")(y)
    if x.shape != y.shape:
      x = norm("bn_proj")(nn.Conv(self.width * 4, (1, 1), self.stride, use_bias=False,
                                  name="proj")(x))
    return nn.relu(x + y)


class ResNet(nn.Module):
  num_classes: int
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  bottleneck: bool = False
  base_width: int = 64
  stem: str = "cifar"

  @property
  def layer_names(self) -> tuple[str, ...]:
    return ("stem",) + tuple(f"layer{i + 1}" for i in range(len(self.stage_sizes))) + (
        "pool", "logits")

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.stem == "imagenet":
      x = nn.Conv(self.base_width, (7, 7), 2, padding=[(3, 3), (3, 3)], use_bias=False,
                  name="stem_conv")(x)
    elif self.stem == "cifar":
      x = nn.Conv(self.base_width, (3, 3), use_bias=False, name="stem_conv",
                  conv_general_dilated=input_conv)(x)  # a cheap input gradient for attacks
    else:
      raise ValueError(f"unknown stem {self.stem!r}; use 'cifar' or 'imagenet'")
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="stem_bn")(x)
    x = record(self, "stem", nn.relu(x))
    if self.stem == "imagenet":
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    block = Bottleneck if self.bottleneck else BasicBlock
    for i, blocks in enumerate(self.stage_sizes):
      for j in range(blocks):
        stride = 2 if i > 0 and j == 0 else 1
        x = block(self.base_width * 2 ** i, stride, name=f"layer{i + 1}_{j}")(x, train)
      x = record(self, f"layer{i + 1}", x)
    x = record(self, "pool", jnp.mean(x, axis=(1, 2)))
    return record(self, "logits", nn.Dense(self.num_classes, name="head")(x).astype(jnp.float32))
