"""Pre-activation ResNet-18 (He et al. 2016b), as in "Fast is better than free".

Each block normalises and activates its input first, `relu(bn1(x))`, and adds
its two convs to the block's *input*; where a block changes the shape the
shortcut is a bare 1x1 conv (no BatchNorm) of that same input, as in Wong et
al.'s code and RobustBench's `PreActBlock`. The stem is one 3x3 conv without
BatchNorm, and `final_bn` adds the BatchNorm + ReLU before the global pool
(`bn.*` in Wong et al.'s files; RobustBench's definition of Wong2020Fast has
none). The PyTorch layout is `conv1, layer{1..4}.N.{bn1, conv1, bn2, conv2,
shortcut.0}, bn, linear`; models/torch_import.py maps it. Named layers: stem,
layer1..layer4 (each stage's output, before any activation), pool, logits.

References: He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual
Networks", ECCV 2016; Wong, Rice, Kolter, "Fast is better than free:
Revisiting adversarial training", ICLR 2020.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from interp_jax.models.common import input_conv, record

_PAD1 = ((1, 1), (1, 1))  # PyTorch's padding=1: a stride-2 "SAME" would pad (0, 1)


class PreActBlock(nn.Module):
  width: int
  stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool):
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)
    y = nn.relu(norm("bn1")(x))
    shortcut = x
    if self.stride != 1 or x.shape[-1] != self.width:
      shortcut = nn.Conv(self.width, (1, 1), self.stride, use_bias=False, name="proj")(x)
    y = nn.Conv(self.width, (3, 3), self.stride, padding=_PAD1, use_bias=False,
                name="conv1")(y)
    y = nn.relu(norm("bn2")(y))
    y = nn.Conv(self.width, (3, 3), padding=_PAD1, use_bias=False, name="conv2")(y)
    return shortcut + y


class PreActResNet(nn.Module):
  num_classes: int
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  base_width: int = 64
  final_bn: bool = True

  @property
  def layer_names(self) -> tuple[str, ...]:
    return ("stem",) + tuple(f"layer{i + 1}" for i in range(len(self.stage_sizes))) + (
        "pool", "logits")

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Conv(self.base_width, (3, 3), padding=_PAD1, use_bias=False, name="stem_conv",
                conv_general_dilated=input_conv)(x)  # a cheap input gradient for attacks
    x = record(self, "stem", x)
    for i, blocks in enumerate(self.stage_sizes):
      for j in range(blocks):
        stride = 2 if i > 0 and j == 0 else 1
        x = PreActBlock(self.base_width * 2 ** i, stride, name=f"layer{i + 1}_{j}")(x, train)
      x = record(self, f"layer{i + 1}", x)
    if self.final_bn:
      x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9,
                               name="final_bn")(x))
    x = record(self, "pool", jnp.mean(x, axis=(1, 2)))
    return record(self, "logits", nn.Dense(self.num_classes, name="head")(x).astype(jnp.float32))
