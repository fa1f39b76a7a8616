"""Batching: deterministic by (seed, epoch), resumable, split per process, complete eval."""

import numpy as np
import pytest

from interp_jax import data


class ArraySource:
  """A Source over in-memory arrays; image i is filled with the value i % 256."""

  def __init__(self, n):
    self.labels = np.arange(n) % 7
    self.n = n

  def __len__(self):
    return self.n

  def get(self, idx):
    idx = np.asarray(idx)
    return {"image": np.broadcast_to((idx % 256).astype(np.uint8)[:, None, None, None],
                                     (len(idx), 2, 2, 1)).copy(),
            "label": self.labels[idx], "id": idx}


def _ids(it, steps):
  return [next(it)["id"] for _ in range(steps)]


def test_same_seed_same_batches_other_seed_other_batches():
  src = ArraySource(100)
  a = _ids(data.TrainBatches(src, 10, seed=1), 25)
  b = _ids(data.TrainBatches(src, 10, seed=1), 25)
  c = _ids(data.TrainBatches(src, 10, seed=2), 25)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_each_epoch_is_a_permutation_and_epochs_differ():
  src = ArraySource(95)  # 9 full batches of 10 per epoch; 5 examples dropped
  ids = np.concatenate(_ids(data.TrainBatches(src, 10, seed=0), 18))
  first, second = ids[:90], ids[90:]
  assert len(set(first)) == 90 and len(set(second)) == 90
  assert not np.array_equal(first, second)


def test_images_are_floats_in_unit_range():
  batch = next(data.TrainBatches(ArraySource(50), 10, seed=0))
  assert batch["image"].dtype == np.float32 and batch["label"].dtype == np.int32
  np.testing.assert_allclose(batch["image"][:, 0, 0, 0], (batch["id"] % 256) / 255.0)


@pytest.mark.parametrize("stop", [0, 3, 9, 10, 17])
def test_resume_sees_the_same_batches(stop):
  src = ArraySource(100)
  straight = _ids(data.TrainBatches(src, 10, seed=5), 25)
  first = data.TrainBatches(src, 10, seed=5)
  _ids(first, stop)
  resumed = data.TrainBatches(src, 10, seed=5)
  resumed.set_state(first.get_state())
  np.testing.assert_array_equal(_ids(resumed, 25 - stop), straight[stop:])


def test_restoring_another_seed_is_refused():
  it = data.TrainBatches(ArraySource(20), 5, seed=0)
  with pytest.raises(ValueError, match="seed"):
    it.set_state({"step": 3, "seed": 1})


def test_processes_read_disjoint_slices_of_the_global_batch():
  src = ArraySource(120)
  whole = _ids(data.TrainBatches(src, 12, seed=3), 6)
  parts = [_ids(data.TrainBatches(src, 12, seed=3, process_index=p, process_count=3), 6)
           for p in range(3)]
  for step in range(6):
    np.testing.assert_array_equal(np.concatenate([p[step] for p in parts]), whole[step])


def test_eval_batches_cover_every_example_once_with_a_mask():
  src = ArraySource(53)
  batches = list(data.eval_batches(src, 20))
  assert len(batches) == data.num_eval_batches(src, 20) == 3
  assert all(b["image"].shape[0] == 20 for b in batches)  # padded: one compiled shape
  kept = np.concatenate([b["id"][b["mask"]] for b in batches])
  np.testing.assert_array_equal(kept, np.arange(53))
