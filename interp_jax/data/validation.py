"""The validation split of a data set that stores none: a hold-out of train chosen by content.

    train_idx, val_idx = holdout(source, fraction=0.1, seed=0)   # sorted, disjoint, exact size
    holdout_size(60_000, 0.1)                                    # 6000, before any image is read

Hyperparameters are chosen on validation images that training never reads
(METHOD.md, "How a finding is decided"). MNIST, CIFAR-10 and most image
folders store no validation split, so sources.open_split holds one out of
train: the round(fraction * N) images whose content digests, keyed by the
seed, are the smallest. The draw follows the pixels, not the storage
position, so a reordered or renamed copy of the same images gives the same
validation images (a seeded permutation of positions would not), and its
size is exact and known from N alone, so a report can state it.
"""

import hashlib

import numpy as np

from interp_jax.errors import UserError


def content_digests(images: np.ndarray, key: int = 0) -> np.ndarray:
  """One uint64 per image, a keyed hash of its pixels: an order of the images drawn by `key`.

  Sorting by it orders images by what they are, not where they are stored, in
  an order that changes with the key: `holdout` draws validation hold-outs
  with it. Equal images have equal digests; two different images share one
  with probability 2^-64 per pair (pipeline.content_hashes, which seeds the
  attacks, has 32 bits: about n^2 / 2^33 pairs of n images share one).
  """
  rows = np.ascontiguousarray(images).reshape(len(images), -1) if len(images) else []
  salt = int(key).to_bytes(16, "little", signed=True)
  return np.frombuffer(b"".join(hashlib.blake2b(r, digest_size=8, salt=salt).digest()
                                for r in rows), "<u8").astype(np.uint64)


def holdout_size(n: int, fraction: float) -> int:
  """How many of n training examples a hold-out of `fraction` takes: round(n * fraction), >= 1."""
  if not 0.0 < fraction < 1.0:
    raise UserError(f"config.dataset.holdout_fraction must be in (0, 1), got {fraction}")
  return max(1, int(round(n * fraction)))


def holdout(source, fraction: float, seed: int,
            chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """(train indices, validation indices) of a hold-out of a source, chosen by image content.

  The validation examples are the holdout_size(len(source), fraction) whose
  images have the smallest digests keyed by `seed` (content_digests): a
  pseudo-random draw that follows the pixels, not the storage position, so
  the same images stored in another order give the same validation images.
  Equal digests (the same image stored twice) are ordered by label, then by
  position: copies of one image with one label are interchangeable, so which
  of them is taken changes no image or label of either side. Copies whose
  digest falls exactly at the boundary are split between the sides; keeping
  them together would make the size depend on the images (MNIST's training
  images hold no two equal ones).

  Args:
    source: `len(source)` and `source.get(indices) -> {"image", "label"}`; read once, in
      chunks of `chunk` examples.
    fraction: the share held out, in (0, 1).
    seed: config.dataset.holdout_seed; another seed draws another hold-out.

  Returns:
    Sorted, disjoint index arrays covering range(len(source)).
  """
  n = len(source)
  held = holdout_size(n, fraction)
  digests, labels = [np.zeros(0, np.uint64)], [np.zeros(0, np.int64)]
  for s in range(0, n, chunk):  # one pass; each chunk's pixels are hashed and let go
    batch = source.get(np.arange(s, min(s + chunk, n)))
    digests.append(content_digests(batch["image"], seed))
    labels.append(np.asarray(batch["label"], np.int64))
  order = np.lexsort((np.concatenate(labels), np.concatenate(digests)))  # stable: then position
  return np.sort(order[held:]), np.sort(order[:held])
