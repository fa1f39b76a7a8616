"""Neuron consistency consis(n) = p(n)^T A p(n), and its companion measures.

    state = topk_init(num_neurons, k + 1)          # one slot more than scored
    for batch:                                     # any batch size, any order
      acts = neuron_activations(feature_map)       # [B, N]: spatial max per channel
      state = topk_update(state, acts, image_ids)  # O(N k) memory, jitted
    # or a MergeQueue: the same TopK, merged many batches at a time (the update
    # faster per batch on XLA's CPU backend: `bench analyze` times both)
    scored = topk_is_defined(state.values, k)      # [N] bool: no tie decides a slot
    scores = neuron_consistency(labels[state.indices[:, :k]], A)   # [N] in (0, 1]

T_k(n, D) are the k images of D that excite neuron n most; p(n) is the
normalised histogram of their labels and A a class-similarity matrix
(similarity.py). consis(n) is the expected similarity of the labels of two
images drawn from T_k(n, D): 1 when all share a class, 1/C for a uniform
mix under A = I.

T_k is a property of the neuron only when its k-th best activation is
strictly above its (k+1)-th: otherwise a tie decides which images fill the
last slots, and the streaming merge breaks ties by image id, that is by the
order in which the data set happens to be stored. After a ReLU this is the
common case of a neuron that fires on fewer than k images (the rest tie at
0), so such neurons are left out of a set's statistics and counted
(`topk_is_defined`), and chance baselines are computed exactly from a set's
label counts (`chance_consistency`): every number is then a function of the
set, not of its storage order.

Reference: Dong et al. 2019, arXiv 1901.09035, section 3.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_NO_IMAGE = jnp.iinfo(jnp.int32).max  # id of an empty slot: sorts after every real id


class TopK(NamedTuple):
  """Per neuron, the k largest activations seen so far and their image ids."""
  values: jax.Array   # float32 [N, k], descending
  indices: jax.Array  # int32 [N, k]


def neuron_activations(features: jax.Array, reduce: str = "max") -> jax.Array:
  """One number per image and neuron: [B, H, W, C] -> [B, C] (spatial max or mean)."""
  if features.ndim == 2:
    return features
  axes = tuple(range(1, features.ndim - 1))
  if reduce == "max":
    return jnp.max(features, axis=axes)
  if reduce == "mean":
    return jnp.mean(features, axis=axes)
  raise ValueError(f"unknown activation reduce {reduce!r}; use max or mean")


def topk_init(num_neurons: int, k: int) -> TopK:
  """Empty slots (-inf, no image) for the k best images of each of N neurons."""
  if k < 1:  # the update compares with the k-th slot
    raise ValueError(f"k must be positive, got {k}")
  return TopK(jnp.full((num_neurons, k), -jnp.inf, jnp.float32),
              jnp.full((num_neurons, k), _NO_IMAGE, jnp.int32))


def topk_update(state: TopK, activations: jax.Array, image_ids: jax.Array,
                valid: jax.Array | None = None) -> TopK:
  """Merges a batch into the running top-k.

  Args:
    state: the running TopK of N neurons.
    activations: [B, N] activations of the batch.
    image_ids: [B] int ids of the batch's images.
    valid: optional [B] bool; False rows (padding) are ignored.

  Returns:
    The TopK of the union, ordered by (activation descending, id ascending); -0.0
    counts as 0.0. NaN activations are not supported: the merge's comparisons, and
    so its order, are undefined for them.
  """
  k = state.values.shape[1]
  acts, ids = _masked(activations, image_ids, valid)
  if drops_hopeless_rows():
    # A row strictly below a neuron's k-th value cannot enter: k better ones are
    # held already (none while a slot is empty, at -inf).
    acts = jnp.where(acts < state.values[None, :, -1], -jnp.inf, acts)
  # The batch's best min(k, B) per neuron, sorted: rows in id order first, so
  # top_k's preference for the earlier of equal values is one for the smaller id.
  order = jnp.argsort(ids)
  acts, pos = jax.lax.top_k(acts[order].T, min(k, acts.shape[0]))  # [N, <=k]
  values, indices = _merge(state.values, state.indices, acts, ids[order][pos], k)
  return TopK(values, indices)


def _masked(activations, image_ids, valid):
  acts = activations.astype(jnp.float32)                          # [B, N]
  # -0.0 as 0.0: top_k orders -0.0 below 0.0, and equal values are ordered by id.
  acts = jnp.where(acts == 0, 0.0, acts)
  ids = image_ids.astype(jnp.int32)
  if valid is not None:
    acts = jnp.where(valid[:, None], acts, -jnp.inf)
    ids = jnp.where(valid, ids, _NO_IMAGE)
  return acts, ids


def drops_hopeless_rows() -> bool:
  """Whether `topk_update` first sets what cannot enter to -inf, which XLA's CPU top_k
  turns away at its first comparison instead of inserting it into its heap and
  evicting it (`bench analyze` times the merge). On CPU only, where it was measured;
  the result is the same."""
  return jax.default_backend() == "cpu"


def rows_per_merge() -> int:
  """Rows merged at once by default (`merge_group`): 2,048 on XLA's CPU backend, where
  it was measured (`bench analyze`); none on GPU and TPU, where it was not, so each
  batch is merged as it comes."""
  return 2048 if jax.default_backend() == "cpu" else 0


def merge_group(batch: int, rows: int | None = None) -> int:
  """Batches of `batch` rows merged at once: as many as fit in `rows` (default
  `rows_per_merge()`), at least one."""
  if batch < 1:
    raise ValueError(f"batch must be positive, got {batch}")
  rows = rows_per_merge() if rows is None else rows
  return max(1, rows // batch)


class MergeQueue:
  """Batches' rows that wait on the device and are merged into running top-ks `group`
  batches at a time, by one compiled call.

      queue = MergeQueue(merge, merge_group(batch))
      for batch in batches:
        rows = step(batch)                  # jitted: [B, ...] leaves (activations, ids)
        tallies = queue.add(tallies, rows)  # merges once `group` batches wait
      tallies = queue.flush(tallies)        # and the rest

  `merge(tallies, rows, counted)` is a pure function of the rows of the group joined
  into one batch and a [rows] bool that is False on the padding of a short last
  group (padded so that it compiles once); pass it to `topk_update` as `valid`, or
  with it. It is jitted here, once per function.

  Why: XLA's CPU `top_k` pays a cost per neuron that hardly depends on the number of
  rows, so one merge of many batches costs little more than one of a batch (`bench
  analyze` times the queue against a merge per batch). The result is the same TopK as
  a merge per batch; the queue holds `group` batches.
  Rows queued outside the step, rather than written by it into a buffer merged
  behind a `lax.cond`, leave the step nothing but its own work (`bench analyze`
  times both against the forward passes).
  """

  def __init__(self, merge, group: int):
    if group < 1:
      raise ValueError(f"group must be positive, got {group}")
    self._merge, self._group, self._waiting = _grouped(merge), group, []

  def add(self, tallies, rows):
    """Queues one batch's rows; returns the tallies, merged when the group is full."""
    self._waiting.append(rows)
    return self.flush(tallies) if len(self._waiting) == self._group else tallies

  def flush(self, tallies):
    """The tallies with every queued row merged."""
    if not self._waiting:
      return tallies
    rows, self._waiting = self._waiting, []
    counted = np.arange(self._group) < len(rows)
    return self._merge(tallies, tuple(rows + rows[-1:] * (self._group - len(rows))), counted)


@functools.cache
def _grouped(merge):
  def grouped(tallies, rows, counted):
    joined = jax.tree.map(lambda *a: jnp.concatenate(a), *rows)
    batch = jax.tree.leaves(rows[0])[0].shape[0]
    return merge(tallies, joined, jnp.repeat(counted, batch))
  return jax.jit(grouped)


def _merge(va, ia, vb, ib, k: int):
  """The first k of two rows-wise lists sorted by (value desc, id asc), merged.

  Each element's place in the merged list is its place in its own list plus
  the number of elements of the other list ahead of it: comparisons only,
  [N, ka, kb] of them, and a scatter: it replaces XLA's CPU sort with two keys,
  which was most of the update's time in `bench analyze`.
  """
  b_ahead = (vb[:, None, :] > va[:, :, None]) | (
      (vb[:, None, :] == va[:, :, None]) & (ib[:, None, :] < ia[:, :, None]))  # [N, ka, kb]
  rank_a = jnp.arange(va.shape[1]) + jnp.sum(b_ahead, axis=2)
  rank_b = jnp.arange(vb.shape[1]) + jnp.sum(~b_ahead, axis=1)   # equal entries: a first
  ranks = jnp.concatenate([rank_a, rank_b], axis=1)               # a permutation per row
  rows = jnp.arange(va.shape[0])[:, None]

  def place(a, b):
    merged = jnp.zeros(ranks.shape, a.dtype)
    return merged.at[rows, ranks].set(jnp.concatenate([a, b], axis=1), unique_indices=True)

  return place(va, vb)[:, :k], place(ia, ib)[:, :k]


def topk_is_defined(values: jax.Array, k: int) -> jax.Array:
  """[N] bool: T_k is decided by the activations alone, not by a tie.

  values: [N, k + 1] from a TopK of k + 1 slots. True when the k-th value beats
  the (k+1)-th; False for a neuron that fires on fewer than k images of a ReLU
  layer, whose last slots tie at 0, and for a set of at most k images (its
  "top k" would be the whole set, whatever the neuron does).
  """
  if values.shape[1] < k + 1:
    raise ValueError(f"need k + 1 = {k + 1} slots to tell ties apart, got {values.shape[1]}")
  return (values[:, k - 1] > values[:, k]) & jnp.isfinite(values[:, k])


def label_histogram(labels: jax.Array, num_classes: int) -> jax.Array:
  """p: the normalised histogram of each row of labels [..., k] -> [..., C]."""
  return jnp.mean(jax.nn.one_hot(labels, num_classes, dtype=jnp.float32), axis=-2)


def neuron_consistency(topk_labels: jax.Array, similarity: jax.Array) -> jax.Array:
  """consis(n) = p(n)^T A p(n) for topk_labels [N, k] and A [C, C]; returns [N]."""
  similarity = jnp.asarray(similarity, jnp.float32)

  def one(labels):
    p = label_histogram(labels, similarity.shape[0])
    return p @ similarity @ p

  return jax.vmap(one)(topk_labels)


def topk_overlap(real_indices: jax.Array, adv_indices: jax.Array) -> jax.Array:
  """|T_k(n, real) & sources(T_k(n, adv))| / k per neuron, from image ids [N, k].

  Adversarial image i has source image i, so sources are the ids themselves.
  """
  same = real_indices[:, :, None] == adv_indices[:, None, :]
  return jnp.mean(jnp.any(same, axis=2).astype(jnp.float32), axis=1)


def chance_consistency(labels: jax.Array, k: int, similarity: jax.Array, key: jax.Array,
                       draws: int = 200) -> tuple[float, float]:
  """Mean and std of p^T A p for a random k-subset of a set with these labels.

  The mean is exact, from the label counts c (n images, k drawn without
  replacement): a pair of draws is one image twice with probability 1/k and
  two distinct images otherwise, so
      E[p^T A p] = (1/k) sum_c c_c A_cc / n
                   + (1 - 1/k) (c^T A c - sum_c c_c A_cc) / (n (n - 1)).
  The std is estimated from `draws` subsets of the sorted labels, so it too
  depends on the set's labels and not on their order. Returns (nan, nan)
  when the set has fewer than k images.
  """
  labels = jnp.sort(jnp.asarray(labels).reshape(-1))
  n = labels.shape[0]
  if n < k or k < 1:
    return float("nan"), float("nan")
  a = jnp.asarray(similarity, jnp.float32)
  counts = jnp.bincount(labels, length=a.shape[0]).astype(jnp.float32)
  same = jnp.sum(counts * jnp.diag(a))
  pairs = counts @ a @ counts - same
  mean = same / n / k + ((1 - 1 / k) * pairs / (n * (n - 1)) if n > 1 else 0.0)
  return float(mean), float(_subset_spread(labels, a, key, k=k, draws=draws))


@functools.partial(jax.jit, static_argnames=("k", "draws"))
def _subset_spread(labels, similarity, key, *, k: int, draws: int):
  """Std of p^T A p over `draws` uniform k-subsets: the indices of the k largest of
  n uniforms form a uniform k-subset, one top_k per draw instead of a permutation."""
  subsets = jax.lax.top_k(jax.random.uniform(key, (draws, labels.shape[0])), k)[1]
  return neuron_consistency(labels[subsets], similarity).std()


def cosine_similarity(a: jax.Array, b: jax.Array) -> jax.Array:
  """Per-example cosine of two feature batches, flattened: [B, ...] -> [B]."""
  a = a.reshape(a.shape[0], -1).astype(jnp.float32)
  b = b.reshape(b.shape[0], -1).astype(jnp.float32)
  den = jnp.linalg.norm(a, axis=1) * jnp.linalg.norm(b, axis=1)
  return jnp.clip(jnp.sum(a * b, axis=1) / jnp.maximum(den, 1e-12), -1.0, 1.0)  # float32 overshoot
