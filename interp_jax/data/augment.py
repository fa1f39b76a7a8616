"""Training-time augmentation, on device, inside the jitted train step.

    augment = make_augment("crop_flip", pad=4)      # None for ""
    x = augment(x, key)                              # [B, H, W, C] in [0, 1]

The standard CIFAR augmentation (He et al. 2016; Madry et al. 2018): a random
H x W crop of the image zero-padded by `pad` pixels on each side, then a
horizontal flip with probability 1/2, drawn independently per image. It runs
on the batch already on the devices, keyed by the train step's own key, so a
resumed run augments exactly as an uninterrupted one and the input pipeline
stays a plain numpy iterator.
"""

import jax
import jax.numpy as jnp

KINDS = ("", "crop_flip")


def random_crop_flip(x, key, pad: int = 4):
  """Per image: a random crop of the zero-padded image, then a coin-flip mirror."""
  b, h, w, c = x.shape
  k_y, k_x, k_flip = jax.random.split(key, 3)
  padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  dy = jax.random.randint(k_y, (b,), 0, 2 * pad + 1)
  dx = jax.random.randint(k_x, (b,), 0, 2 * pad + 1)
  crops = jax.vmap(lambda im, y0, x0: jax.lax.dynamic_slice(im, (y0, x0, 0), (h, w, c)))(
      padded, dy, dx)
  flip = jax.random.bernoulli(k_flip, 0.5, (b,))
  return jnp.where(flip[:, None, None, None], crops[:, :, ::-1], crops)


def make_augment(kind: str, pad: int = 4):
  """The augmentation named `kind` as a function (x, key) -> x, or None for ""."""
  if kind not in KINDS:
    raise ValueError(f"unknown augmentation {kind!r}; choose one of {KINDS}")
  if pad < 0:
    raise ValueError(f"the crop padding must be >= 0, got {pad}")
  if not kind:
    return None
  return lambda x, key: random_crop_flip(x, key, pad)
