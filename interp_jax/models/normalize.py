"""A model that normalises its input itself, so attacks keep working in [0, 1] pixels.

Imported PyTorch weights expect `(x - mean) / std` images (torchvision's
ImageNet statistics by default), while every attack and measure here clips
and projects in [0, 1] pixel space. Wrapping the model puts the
normalisation inside `__call__`:

    model = Normalized(models.create("resnet50", 1000, stem="imagenet"),
                       mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    model.apply(variables, images_in_0_1)

The wrapped model shares the wrapper's scope, so the variables and the
recorded intermediates have exactly the names of the bare model (a
checkpoint of the bare model loads into the wrapped one, and layer names do
not change). `models.create(..., input_mean=..., input_std=...)` builds it.
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class Normalized(nn.Module):
  inner: nn.Module
  mean: Sequence[float] = (0.0,)
  std: Sequence[float] = (1.0,)

  def setup(self):
    nn.share_scope(self, self.inner)  # no "inner" level in params or intermediates

  @property
  def layer_names(self) -> tuple[str, ...]:
    return self.inner.layer_names

  def __call__(self, x, train: bool = False):
    mean = jnp.asarray(self.mean, x.dtype)
    std = jnp.asarray(self.std, x.dtype)
    return self.inner((x - mean) / std, train=train)


def check_statistics(mean: Sequence[float], std: Sequence[float]) -> None:
  """Raises ValueError unless mean and std are per-channel lists with std > 0."""
  if len(mean) != len(std) or not mean:
    raise ValueError(f"input mean {list(mean)} and std {list(std)} need one value per "
                     "channel each (or one for all)")
  if min(std) <= 0:
    raise ValueError(f"input std {list(std)} must be positive")
