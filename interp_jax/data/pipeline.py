"""Deterministic, resumable batches for every source, split per process.

    it = TrainBatches(source, global_batch_size=128, seed=0)
    batch = next(it)            # {"image": float32 [B/P, H, W, C] in [0,1], "label": int32}
    state = it.get_state()      # {"step": 1, "seed": 0}; saved with each checkpoint
    it.set_state(state)         # a resumed run sees exactly the batches it would have

The order is a pure function of (seed, epoch): epoch e visits the examples in
the order of `np.random.default_rng([seed, e]).permutation(n)`, and batch b of
the run is the b-th slice of that sequence, so the position is one integer.
Each process reads its own contiguous slice of every global batch
(`jax.process_index()` of `jax.process_count()`).
"""

import hashlib

import numpy as np


def to_model_input(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """uint8 images to float32 in [0, 1]; labels to int32."""
  out = dict(batch)
  out["image"] = batch["image"].astype(np.float32) / np.float32(255.0)
  out["label"] = batch["label"].astype(np.int32)
  return out


def _process_slice(global_batch_size: int, process_index: int, process_count: int) -> slice:
  if global_batch_size % process_count:
    raise ValueError(f"global batch {global_batch_size} is not divisible by "
                     f"{process_count} processes")
  local = global_batch_size // process_count
  return slice(process_index * local, (process_index + 1) * local)


class TrainBatches:
  """An endless shuffled stream of full global batches, resumable by step."""

  def __init__(self, source, global_batch_size: int, seed: int,
               process_index: int = 0, process_count: int = 1):
    if global_batch_size > len(source):
      raise ValueError(f"batch size {global_batch_size} exceeds the {len(source)} examples")
    self._source, self._batch, self._seed = source, global_batch_size, seed
    self._slice = _process_slice(global_batch_size, process_index, process_count)
    self._per_epoch = len(source) // global_batch_size  # the remainder is dropped
    self._step = 0
    self._perm_epoch, self._perm = -1, None

  def _permutation(self, epoch: int) -> np.ndarray:
    if epoch != self._perm_epoch:
      self._perm = np.random.default_rng([self._seed, epoch]).permutation(len(self._source))
      self._perm_epoch = epoch
    return self._perm

  def indices(self, step: int) -> np.ndarray:
    """Example indices of this process's part of global batch `step`."""
    epoch, b = divmod(step, self._per_epoch)
    return self._permutation(epoch)[b * self._batch:(b + 1) * self._batch][self._slice]

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    batch = to_model_input(self._source.get(self.indices(self._step)))
    self._step += 1
    return batch

  def get_state(self) -> dict[str, int]:
    return {"step": self._step, "seed": self._seed}

  def set_state(self, state: dict[str, int]) -> None:
    if state["seed"] != self._seed:
      raise ValueError(f"data state of seed {state['seed']} restored into seed {self._seed}")
    self._step = int(state["step"])


def eval_batches(source, global_batch_size: int, process_index: int = 0,
                 process_count: int = 1):
  """One pass in index order; the last batch is padded and `mask` marks real rows.

  Padding keeps every batch the same shape, so the eval step compiles once.
  """
  sl = _process_slice(global_batch_size, process_index, process_count)
  n = len(source)
  for start in range(0, n, global_batch_size):
    idx = np.arange(start, start + global_batch_size)
    mask = idx < n
    batch = to_model_input(source.get(np.where(mask, idx, n - 1)[sl]))
    batch["mask"] = mask[sl]
    batch["index"] = idx[sl]
    yield batch


def num_eval_batches(source, global_batch_size: int) -> int:
  return -(-len(source) // global_batch_size)


def content_hashes(images: np.ndarray) -> np.ndarray:
  """One uint32 per image, a hash of its pixels: what an image is, not where it is stored.

  The analysis seeds each image's attack random start with it, and
  `sample_by_content` picks a subset with it, so neither depends on the order
  in which a data set stores its images.
  """
  rows = np.ascontiguousarray(images).reshape(len(images), -1)
  return np.array([int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=4).digest(),
                                  "little") for r in rows], np.uint32)


def sample_by_content(source, n: int, chunk: int = 4096):
  """The n images of `source` with the smallest content hashes (all when n >= len).

  A subset that a renaming or reordering of the files does not change (the
  first n would be a few classes of a class-sorted folder).
  """
  from interp_jax.data.sources import Subset
  if n >= len(source):
    return source
  hashes = np.concatenate([content_hashes(source.get(np.arange(s, min(s + chunk, len(source))))
                                          ["image"]) for s in range(0, len(source), chunk)])
  # Ties between equal images are broken by their bytes' hash alone: equal images
  # are interchangeable, so which one is taken changes no number.
  return Subset(source, np.sort(np.argsort(hashes, kind="stable")[:n]))
