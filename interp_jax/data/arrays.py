"""Images and labels already in memory, as a source (`len`, `get`) like any split.

    source = ArraySource(images, labels)   # uint8 [N, H, W, C], or floats in [0, 1]
"""

import numpy as np


class ArraySource:
  """In-memory images (stored as uint8, the house's image format) and int labels."""

  def __init__(self, images, labels):
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 3:
      images = images[..., None]
    if images.ndim != 4 or labels.shape != images.shape[:1]:
      raise ValueError(f"need images [N, H, W, C] and labels [N], got {images.shape} and "
                       f"{labels.shape}")
    if images.dtype != np.uint8:
      if images.size and (images.min() < 0 or images.max() > 1):
        raise ValueError("float images must lie in [0, 1]")
      images = np.round(images * 255).astype(np.uint8)  # 8-bit pixels, as every data set here
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and labels.min() < 0):
      raise ValueError("labels must be non-negative integers")
    self._arrays = {"image": images, "label": labels.astype(np.int64)}

  def __len__(self) -> int:
    return len(self._arrays["label"])

  def get(self, indices) -> dict:
    indices = np.asarray(indices)
    return {k: v[indices] for k, v in self._arrays.items()}
