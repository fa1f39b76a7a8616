"""Neuron consistency consis(n) = p(n)^T A p(n), and its companion measures.

    state = topk_init(num_neurons, k)
    for batch:                                     # any batch size, any order
      acts = neuron_activations(feature_map)       # [B, N]: spatial max per channel
      state = topk_update(state, acts, image_ids)  # O(N k) memory, jitted
    scores = neuron_consistency(labels[state.indices], A)   # [N] in (0, 1]

T_k(n, D) are the k images of D that excite neuron n most (ties broken by
the smaller image id, so the result does not depend on batching); p(n) is
the normalised histogram of their labels and A a class-similarity matrix
(similarity.py). consis(n) is the expected similarity of the labels of two
images drawn from T_k(n, D): 1 when all share a class, 1/C for a uniform
mix under A = I.

Reference: Dong et al. 2019, arXiv 1901.09035, section 3.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

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
    The TopK of the union, ordered by (activation descending, id ascending).
  """
  k = state.values.shape[1]
  acts = activations.astype(jnp.float32)                          # [B, N]
  ids = image_ids.astype(jnp.int32)
  if valid is not None:
    acts = jnp.where(valid[:, None], acts, -jnp.inf)
    ids = jnp.where(valid, ids, _NO_IMAGE)
  # The batch's best min(k, B) per neuron, sorted: rows in id order first, so
  # top_k's preference for the earlier of equal values is one for the smaller id.
  order = jnp.argsort(ids)
  acts, pos = jax.lax.top_k(acts[order].T, min(k, acts.shape[0]))  # [N, <=k]
  values, indices = _merge(state.values, state.indices, acts, ids[order][pos], k)
  return TopK(values, indices)


def _merge(va, ia, vb, ib, k: int):
  """The first k of two rows-wise lists sorted by (value desc, id asc), merged.

  Each element's place in the merged list is its place in its own list plus
  the number of elements of the other list ahead of it: comparisons only,
  [N, ka, kb] of them, and a scatter. XLA's CPU sort with two keys took 2.4 ms
  for the [240, 100] of the analysis benchmark (two thirds of the update);
  this merge takes 0.5 ms.
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
                       draws: int = 200) -> tuple[jax.Array, jax.Array]:
  """Mean and std of p^T A p over `draws` random k-subsets of a set with these labels."""
  n = labels.shape[0]
  keys = jax.random.split(key, draws)
  subsets = jax.vmap(lambda kk: jax.random.choice(kk, n, (k,), replace=False))(keys)
  scores = neuron_consistency(labels[subsets], similarity)
  return scores.mean(), scores.std()


def cosine_similarity(a: jax.Array, b: jax.Array) -> jax.Array:
  """Per-example cosine of two feature batches, flattened: [B, ...] -> [B]."""
  a = a.reshape(a.shape[0], -1).astype(jnp.float32)
  b = b.reshape(b.shape[0], -1).astype(jnp.float32)
  den = jnp.linalg.norm(a, axis=1) * jnp.linalg.norm(b, axis=1)
  return jnp.sum(a * b, axis=1) / jnp.maximum(den, 1e-12)
