"""Consistency: p^T A p by hand, streaming top-k against a full sort, planted neurons."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp_jax.measures import consistency as cons
from interp_jax.measures import similarity
from interp_jax.data import concept_shapes
from interp_jax.errors import UserError
from conftest import full_topk


def test_one_class_scores_one_and_a_uniform_mix_scores_one_over_c():
  a = similarity.identity(4)
  labels = jnp.array([[2, 2, 2, 2], [0, 1, 2, 3], [0, 0, 1, 1]])
  np.testing.assert_allclose(cons.neuron_consistency(labels, a), [1.0, 0.25, 0.5], rtol=1e-6)


def test_tree_similarity_and_consistency_by_hand():
  tree = {"animal": ["cat", "dog"], "vehicle": ["car"]}
  a = similarity.from_tree(tree, ["cat", "dog", "car"])
  # cat, dog: depth 3 each, lca "animal" at depth 2 -> 4/6; cat, car: lca root -> 2/6.
  np.testing.assert_allclose(a, [[1, 2 / 3, 1 / 3], [2 / 3, 1, 1 / 3], [1 / 3, 1 / 3, 1]],
                             rtol=1e-6)
  # p = (1/2, 1/2, 0): p^T A p = 1/4 (1 + 1 + 2 * 2/3) = 5/6
  np.testing.assert_allclose(cons.neuron_consistency(jnp.array([[0, 1, 0, 1]]), a), [5 / 6],
                             rtol=1e-6)
  # p = (1/2, 0, 1/2): 1/4 (1 + 1 + 2 * 1/3) = 2/3
  np.testing.assert_allclose(cons.neuron_consistency(jnp.array([[0, 2]]), a), [2 / 3],
                             rtol=1e-6)


def test_deeper_trees_and_the_shipped_tree():
  a = similarity.from_tree({"x": [{"y": ["a", "b"]}, "c"]}, ["a", "b", "c"])
  # a, b at depth 4 with lca y at depth 3: 6/8; a, c: lca x at depth 2, depths 4 and 3: 4/7
  np.testing.assert_allclose(a[0, 1], 6 / 8, rtol=1e-6)
  np.testing.assert_allclose(a[0, 2], 4 / 7, rtol=1e-6)
  shipped = similarity.from_tree(concept_shapes.CLASS_TREE, concept_shapes.SHAPES)
  assert shipped[0, 1] == pytest.approx(2 / 3) and shipped[0, 3] == pytest.approx(1 / 3)


def test_bad_similarity_inputs_are_user_errors(tmp_path):
  with pytest.raises(UserError, match="lacks the classes"):
    similarity.from_tree({"g": ["a"]}, ["a", "b"])
  with pytest.raises(UserError, match="symmetric"):
    similarity.validate(np.array([[1, 0.5], [0.2, 1]]))
  with pytest.raises(UserError, match="diagonal"):
    similarity.validate(np.array([[0.9, 0.5], [0.5, 1]]))
  with pytest.raises(UserError, match="cannot read"):
    similarity.from_tree_file(str(tmp_path / "none.json"), ["a"])
  (tmp_path / "t.json").write_text('{"g": ["a", "b"]}')
  assert similarity.from_tree_file(str(tmp_path / "t.json"), ["a", "b"])[0, 1] == pytest.approx(
      2 / 3)


@pytest.mark.parametrize("batch,shuffle", [(1, False), (7, True), (16, False), (64, True)])
def test_streaming_topk_equals_a_full_sort(batch, shuffle):
  rng = np.random.default_rng(batch)
  acts = rng.normal(size=(64, 5)).astype(np.float32)
  acts[10:20, 0] = 3.0  # ties: broken by the smaller id
  order = rng.permutation(64) if shuffle else np.arange(64)
  update = jax.jit(cons.topk_update)
  state = cons.topk_init(5, 8)
  for s in range(0, 64, batch):
    ids = order[s:s + batch]
    pad = batch - len(ids)
    valid = np.r_[np.ones(len(ids), bool), np.zeros(pad, bool)]
    ids_p = np.r_[ids, np.zeros(pad, int)]
    state = update(state, jnp.asarray(acts[ids_p]), jnp.asarray(ids_p), jnp.asarray(valid))
  expected = full_topk(acts, 8)
  np.testing.assert_array_equal(state.indices, expected)
  np.testing.assert_allclose(state.values, np.take_along_axis(acts.T, expected, 1))


def _relu_with_ties(rng, n):
  """[n, 6] ReLU activations; neuron 5 fires (1.0) on ~1% of the images and ties at 0
  on the rest, half of those zeros signed (-0.0 equals 0.0: ids decide between them)."""
  acts = np.maximum(rng.normal(size=(n, 6)), 0).astype(np.float32)
  acts[:, 5] = np.where(rng.random(n) < 0.01, 1.0, 0.0)
  acts[:, 5] = np.where((acts[:, 5] == 0) & (rng.random(n) < 0.5), -0.0, acts[:, 5])
  return acts


@pytest.mark.parametrize("arrival", ["shuffled", "descending"])
def test_a_long_stream_with_relu_ties_equals_a_full_sort(arrival):
  """Many batches into few slots, ReLU ties at 0 decided by id, and ids arriving out of
  order (descending: every tie at 0 of a new batch beats the slots' ids)."""
  rng = np.random.default_rng(3)
  n, k, batch = 1200, 20, 40
  acts = _relu_with_ties(rng, n)
  order = rng.permutation(n) if arrival == "shuffled" else np.arange(n)[::-1]
  update = jax.jit(cons.topk_update)
  state = cons.topk_init(6, k)
  for s in range(0, n, batch):
    ids = order[s:s + batch]
    state = update(state, jnp.asarray(acts[ids]), jnp.asarray(ids))
  expected = full_topk(acts, k)
  np.testing.assert_array_equal(state.indices, expected)
  np.testing.assert_allclose(state.values, np.take_along_axis(acts.T, expected, 1))


def _merge_one(tally, rows, counted):
  return cons.topk_update(tally, rows["acts"], rows["ids"], rows["valid"] & counted)


@pytest.mark.parametrize("drops", [True, False])
@pytest.mark.parametrize("rows,k", [(0, 20), (40, 20), (260, 20), (4096, 20), (40, 60)])
def test_merging_many_batches_at_a_time_equals_a_full_sort(rows, k, drops, monkeypatch):
  """Batches merged many at a time (one batch, 6 batches with a short last group
  padded, more than the data, or each as it comes; k beyond the group), with
  padding rows, ReLU ties at 0 and ids out of order, keep the full sort's top-k:
  rows only wait, nothing is dropped, counted twice or reordered; with and
  without the rows that cannot enter dropped first (CPU's path, and the others')."""
  monkeypatch.setattr(cons, "drops_hopeless_rows", lambda: drops)
  merge = functools.partial(_merge_one)  # a new function: traced again, not cached
  rng = np.random.default_rng(4)
  n, batch = 990, 40  # 27 batches of 37 rows and 3 of padding; the last has 28
  acts = _relu_with_ties(rng, n)
  order = rng.permutation(n)
  group = cons.merge_group(batch, rows)
  assert group == {0: 1, 40: 1, 260: 6, 4096: 102}[rows]
  queue, tally = cons.MergeQueue(merge, group), cons.topk_init(6, k)
  for start in range(0, n, batch - 3):
    real = order[start:start + batch - 3]  # the last 3 rows (at least) are padding
    ids = np.r_[real, np.zeros(batch - len(real), int)]
    tally = queue.add(tally, {"acts": jnp.asarray(acts[ids]), "ids": jnp.asarray(ids),
                              "valid": jnp.asarray(np.arange(batch) < len(real))})
  tally = queue.flush(tally)
  assert queue.flush(tally) is tally  # nothing left queued
  expected = full_topk(acts, k)
  np.testing.assert_array_equal(tally.indices, expected)
  np.testing.assert_allclose(tally.values, np.take_along_axis(acts.T, expected, 1))


def test_bad_group_batch_and_k_are_value_errors():
  with pytest.raises(ValueError, match="group must be positive"):
    cons.MergeQueue(_merge_one, 0)
  with pytest.raises(ValueError, match="batch must be positive"):
    cons.merge_group(0)
  with pytest.raises(ValueError, match="k must be positive"):
    cons.topk_init(3, 0)  # no slot: nothing to keep, no k-th value to compare


def test_consistency_is_equivariant_to_a_permutation_of_neurons():
  rng = np.random.default_rng(0)
  labels = jnp.asarray(rng.integers(0, 6, (12, 10)))
  a = similarity.from_tree({"p": ["0", "1", "2"], "q": ["3", "4", "5"]}, list("012345"))
  perm = rng.permutation(12)
  np.testing.assert_allclose(cons.neuron_consistency(labels[perm], a),
                             cons.neuron_consistency(labels, a)[perm], rtol=1e-6)


def test_planted_neurons_score_one_and_noise_scores_chance():
  """Neuron 0 fires only for class 3; neuron 1 is noise: chance level."""
  rng = np.random.default_rng(0)
  n, c, k = 2000, 5, 50
  labels = rng.integers(0, c, n)
  maps = rng.uniform(0, 1, (n, 6, 6, 2)).astype(np.float32) * 0.5
  maps[labels == 3, 2, 4, 0] += 2.0  # one location lights up for class 3
  acts = cons.neuron_activations(jnp.asarray(maps))
  state = cons.topk_update(cons.topk_init(2, k), acts, jnp.arange(n))
  a = similarity.identity(c)
  scores = np.asarray(cons.neuron_consistency(jnp.asarray(labels)[state.indices], a))
  chance, spread = cons.chance_consistency(jnp.asarray(labels), k, a, jax.random.key(0))
  assert scores[0] == pytest.approx(1.0)
  assert abs(scores[1] - float(chance)) < 3 * float(spread)


def test_chance_level_by_hand():
  """Two of four images drawn without replacement, every pair listed. Labels 0, 0, 1, 2
  under the cat/dog/car tree (A01 = 2/3, A02 = A12 = 1/3): the pair (0, 0) scores 1,
  the two (0, 1) pairs 5/6, the two (0, 2) pairs and (1, 2) 2/3, so the mean is
  (1 + 10/6 + 6/3) / 6 = 7/9. Drawing with replacement would give 17/24, p^T A p of
  the whole set 2/3, 1/C 1/3. Under A = I, labels 0, 0, 0, 1: (3 x 1 + 3 x 1/2) / 6."""
  tree = similarity.from_tree({"animal": ["cat", "dog"], "vehicle": ["car"]},
                              ["cat", "dog", "car"])
  for labels in ([0, 0, 1, 2], [2, 0, 1, 0]):  # any order
    mean, std = cons.chance_consistency(jnp.array(labels), 2, tree, jax.random.key(0),
                                        draws=2000)
    assert mean == pytest.approx(7 / 9, abs=1e-6)
    # The spread of the six pair scores (1, 5/6, 5/6, 2/3, 2/3, 2/3), estimated.
    assert std == pytest.approx(np.std([1, 5 / 6, 5 / 6, 2 / 3, 2 / 3, 2 / 3]), rel=0.1)
  mean, _ = cons.chance_consistency(jnp.array([0, 0, 0, 1]), 2, similarity.identity(2),
                                    jax.random.key(0))
  assert mean == pytest.approx(0.75, abs=1e-6)


def test_overlap_and_cosine():
  real = jnp.array([[0, 1, 2, 3], [4, 5, 6, 7]])
  adv = jnp.array([[3, 2, 9, 8], [4, 5, 6, 7]])
  np.testing.assert_allclose(cons.topk_overlap(real, adv), [0.5, 1.0])
  a = jnp.array([[1.0, 0.0], [1.0, 1.0]])
  np.testing.assert_allclose(cons.cosine_similarity(a, jnp.array([[0.0, 2.0], [2.0, 2.0]])),
                             [0.0, 1.0], atol=1e-6)
  np.testing.assert_allclose(cons.neuron_activations(jnp.ones((2, 3, 3, 4)) * 2, "mean"),
                             jnp.full((2, 4), 2.0))
