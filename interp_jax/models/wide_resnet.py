"""Wide ResNets, WRN-depth-width (Zagoruyko & Komodakis 2016), as robust CIFAR models use them.

A 3x3 stem conv to 16 channels, then three stages of 16w, 32w and 64w
channels (the second and third start with stride 2), n = (depth - 4) / 6
pre-activation blocks each, and BatchNorm + activation before the global pool
and the linear head. A block computes `a = act(bn1(x))`, then `conv2(act(bn2(conv1(a))))`
and adds its input `x`; where the width changes, the shortcut is a 1x1 conv of
`a` instead (not of `x`).

Two published layouts share this module:
- Madry / TRADES (RobustBench `wide_resnet.py`, Carmon et al. 2019, Zhang et
  al. 2019): ReLU, PyTorch's symmetric padding=1 on every 3x3 conv.
- DeepMind (RobustBench `dm_wide_resnet.py`, Gowal et al. 2020, Rebuffi et
  al. 2021): `activation="swish"` and `same_padding=True`, the padding of
  TensorFlow's "SAME": a stride-2 conv pads one row and column after the map
  and none before.
models/torch_import.py maps both files' names. Named layers: stem, layer1,
layer2, layer3 (each stage's output, before the activation), pool, logits.

References: Zagoruyko, Komodakis, "Wide Residual Networks", BMVC 2016;
Gowal et al., "Uncovering the Limits of Adversarial Training against
Norm-Bounded Adversarial Examples", 2020.
"""

import flax.linen as nn
import jax.numpy as jnp

from interp_jax.models.common import input_conv, record

ACTIVATIONS = {"relu": nn.relu, "swish": nn.swish}
_PAD1 = ((1, 1), (1, 1))  # PyTorch's padding=1


class WideBlock(nn.Module):
  width: int
  stride: int = 1
  activation: str = "relu"
  same_padding: bool = False

  @nn.compact
  def __call__(self, x, train: bool):
    norm = lambda name: nn.BatchNorm(use_running_average=not train, momentum=0.9, name=name)
    act = ACTIVATIONS[self.activation]
    a = act(norm("bn1")(x))
    pad = ((0, 1), (0, 1)) if self.same_padding and self.stride == 2 else _PAD1
    y = nn.Conv(self.width, (3, 3), self.stride, padding=pad, use_bias=False, name="conv1")(a)
    y = act(norm("bn2")(y))
    y = nn.Conv(self.width, (3, 3), padding=_PAD1, use_bias=False, name="conv2")(y)
    if x.shape[-1] != self.width:
      x = nn.Conv(self.width, (1, 1), self.stride, padding="VALID", use_bias=False,
                  name="proj")(a)
    return x + y


class WideResNet(nn.Module):
  num_classes: int
  depth: int = 28
  width: int = 10
  activation: str = "relu"      # "swish" for DeepMind's models
  same_padding: bool = False    # True for DeepMind's models

  @property
  def layer_names(self) -> tuple[str, ...]:
    return ("stem", "layer1", "layer2", "layer3", "pool", "logits")

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.depth < 10 or (self.depth - 4) % 6:
      raise ValueError(f"WideResNet depth must be 6n + 4 (16, 28, 34, 70...), got {self.depth}")
    if self.activation not in ACTIVATIONS:
      raise ValueError(f"unknown activation {self.activation!r}; use one of "
                       f"{sorted(ACTIVATIONS)}")
    blocks = (self.depth - 4) // 6
    x = nn.Conv(16, (3, 3), padding=_PAD1, use_bias=False, name="stem_conv",
                conv_general_dilated=input_conv)(x)  # a cheap input gradient for attacks
    x = record(self, "stem", x)
    for i in range(3):
      for j in range(blocks):
        x = WideBlock(16 * 2 ** i * self.width, 2 if i > 0 and j == 0 else 1,
                      self.activation, self.same_padding, name=f"layer{i + 1}_{j}")(x, train)
      x = record(self, f"layer{i + 1}", x)
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="final_bn")(x)
    x = record(self, "pool", jnp.mean(ACTIVATIONS[self.activation](x), axis=(1, 2)))
    return record(self, "logits", nn.Dense(self.num_classes, name="head")(x).astype(jnp.float32))
