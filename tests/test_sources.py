"""A user's image folders and the catalog path: real reads, clear errors."""

import numpy as np
from PIL import Image
import pytest

from interp_jax import data
from interp_jax.default_config import base_config
from interp_jax.errors import UserError


def _folder_config(root, prepared, size=12, holdout=0.0):
  c = base_config()
  c.dataset.name = "image_folder"
  c.dataset.data_dir = str(root)
  c.dataset.prepared_dir = str(prepared)
  c.dataset.image_size = size
  c.dataset.holdout_fraction = holdout
  return c.dataset


def _write(path, array):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path)


def _colour_folder(root):
  """train: 3 red and 2 blue images of mixed sizes and formats; test: one of each."""
  red = lambda h, w: np.tile(np.array([255, 0, 0], np.uint8), (h, w, 1))
  blue = lambda h, w: np.tile(np.array([0, 0, 255], np.uint8), (h, w, 1))
  for i, (h, w) in enumerate([(20, 20), (30, 18), (9, 9)]):
    _write(root / "train" / "red" / f"{i}.png", red(h, w))
  _write(root / "train" / "blue" / "0.jpg", blue(16, 16))
  _write(root / "train" / "blue" / "1.png", np.full((14, 14), 40, np.uint8))  # grayscale
  _write(root / "test" / "red" / "0.png", red(12, 12))
  _write(root / "test" / "blue" / "0.png", blue(40, 25))


def test_image_folder_reads_classes_sizes_and_modes(tmp_path):
  _colour_folder(tmp_path / "imgs")
  cfg = _folder_config(tmp_path / "imgs", tmp_path / "prepared")
  meta = data.describe(cfg)
  assert meta.class_names == ("blue", "red")  # sorted folder names
  assert meta.splits == {"train": 5, "test": 2}
  assert meta.image_shape == (12, 12, 3)
  train = data.open_split(cfg, "train").get(np.arange(5))
  assert train["image"].shape == (5, 12, 12, 3)
  np.testing.assert_array_equal(train["label"], [0, 0, 1, 1, 1])
  np.testing.assert_array_equal(train["image"][2:, 6, 6], [[255, 0, 0]] * 3)  # red, resized
  assert abs(int(train["image"][0, 6, 6, 2]) - 255) <= 3                   # jpeg blue
  np.testing.assert_array_equal(train["image"][1, 6, 6], [40, 40, 40])       # gray -> RGB


def test_image_folder_is_converted_once_and_reused(tmp_path):
  _colour_folder(tmp_path / "imgs")
  cfg = _folder_config(tmp_path / "imgs", tmp_path / "prepared")
  data.describe(cfg)
  built = sorted(p for p in (tmp_path / "prepared").rglob("*.array_record*"))
  stamps = [p.stat().st_mtime_ns for p in built]
  data.describe(cfg)
  assert built and [p.stat().st_mtime_ns for p in built] == stamps
  # Adding an image makes a new copy with it.
  _write(tmp_path / "imgs" / "test" / "red" / "1.png", np.zeros((8, 8, 3), np.uint8))
  assert data.describe(cfg).splits["test"] == 3


def test_a_split_in_memory_is_read_once_per_process_until_it_is_prepared_again(tmp_path):
  """The runs and analyses of a reproduction open the same splits: a second open shares
  the first's arrays, read-only (get returns copies); data prepared again in the same
  place is read again."""
  import shutil
  _colour_folder(tmp_path / "imgs")
  cfg = _folder_config(tmp_path / "imgs", tmp_path / "prepared")
  first = data.open_split(cfg, "train")
  assert data.open_split(cfg, "train") is first
  assert data.open_split(cfg, "test") is not first
  batch = first.get(np.arange(5))
  batch["image"][:] = 0                       # the caller's copy
  assert first.get(np.arange(5))["image"].max() == 255
  shutil.rmtree(tmp_path / "prepared")
  again = data.open_split(cfg, "train")      # prepared anew: new files, same path
  assert again is not first
  np.testing.assert_array_equal(again.get(np.arange(5))["image"],
                                first.get(np.arange(5))["image"])


def test_all_grayscale_folder_gives_one_channel(tmp_path):
  for cls in ("a", "b"):
    _write(tmp_path / "g" / "train" / cls / "0.png", np.full((10, 10), 7, np.uint8))
  meta = data.describe(_folder_config(tmp_path / "g", tmp_path / "p"))
  assert meta.image_shape == (12, 12, 1)


def test_corrupt_images_are_named(tmp_path):
  _colour_folder(tmp_path / "imgs")
  bad = tmp_path / "imgs" / "train" / "red" / "broken.png"
  bad.write_bytes(b"not a png at all")
  with pytest.raises(UserError, match="broken.png"):
    data.describe(_folder_config(tmp_path / "imgs", tmp_path / "prepared"))


def test_missing_and_empty_folders_are_user_errors(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    data.describe(_folder_config(tmp_path / "nowhere", tmp_path / "p"))
  (tmp_path / "empty" / "train" / "cat").mkdir(parents=True)
  with pytest.raises(UserError, match="holds no images"):
    data.describe(_folder_config(tmp_path / "empty", tmp_path / "p"))


def test_unprepared_catalog_set_names_the_directory_and_the_alternative(tmp_path):
  c = base_config()
  c.dataset.name = "mnist"
  c.dataset.data_dir = str(tmp_path)
  with pytest.raises(UserError) as e:
    data.describe(c.dataset)
  assert str(tmp_path) in str(e.value) and "concept_shapes" in str(e.value)
  c.dataset.name = "no_such_dataset_xyz"
  with pytest.raises(UserError, match="unknown data set"):
    data.describe(c.dataset)
  # Only TFDS's not-found error means a wrong name; its other errors keep their own words.
  c.dataset.name = "mnist/no_such_config"
  with pytest.raises(ValueError) as e:
    data.describe(c.dataset)
  assert not isinstance(e.value, UserError) and "unknown data set" not in str(e.value)


def test_missing_split_is_a_user_error(tmp_path):
  _colour_folder(tmp_path / "imgs")
  with pytest.raises(UserError, match="no split 'validation'.*holdout_fraction"):
    data.open_split(_folder_config(tmp_path / "imgs", tmp_path / "p"), "validation")
  with pytest.raises(UserError, match="holdout_fraction must be in"):
    data.describe(_folder_config(tmp_path / "imgs", tmp_path / "p", holdout=1.5))


def _numbered_folder(root, count=40, reverse=False):
  """train: `count` images whose pixel value is their number; test: 2 images.

  reverse: the same images under names that store them in the opposite order."""
  for i in range(count):
    name = count - 1 - i if reverse else i
    _write(root / "train" / ("a" if i % 2 else "b") / f"{name:03d}.png",
           np.full((4, 4, 3), i, np.uint8))
  for i in range(2):
    _write(root / "test" / "a" / f"{i}.png", np.zeros((4, 4, 3), np.uint8))


def test_validation_is_a_hold_out_of_train_by_content_that_training_never_reads(tmp_path):
  _numbered_folder(tmp_path / "imgs")
  cfg = _folder_config(tmp_path / "imgs", tmp_path / "p", size=4, holdout=0.1)
  meta = data.describe(cfg)
  assert meta.splits == {"train": 36, "validation": 4, "test": 2}
  stored = lambda cfg, split: data.open_split(cfg, split).get(np.arange(
      meta.splits[split]))["image"][:, 0, 0, 0].tolist()
  seen = lambda cfg, split: set(stored(cfg, split))
  train, val = seen(cfg, "train"), seen(cfg, "validation")
  assert len(train) == 36 and len(val) == 4 and not train & val and train | val == set(range(40))
  # The same images stored in the opposite order: the same hold-out.
  _numbered_folder(tmp_path / "reversed", reverse=True)
  other = _folder_config(tmp_path / "reversed", tmp_path / "p", size=4, holdout=0.1)
  assert stored(other, "train") != stored(cfg, "train")   # another storage order
  assert seen(other, "validation") == val and seen(other, "train") == train
  # Deterministic: the same hold-out again, another one under another seed.
  assert seen(cfg, "validation") == val
  cfg.holdout_seed = 1
  assert seen(cfg, "validation") != val
  # A stored ROOT/val folder is the validation split, and train is read whole.
  _write(tmp_path / "imgs" / "val" / "a" / "0.png", np.full((4, 4, 3), 99, np.uint8))
  meta = data.describe(cfg)
  assert meta.splits == {"train": 40, "validation": 1, "test": 2}
  assert seen(cfg, "validation") == {99}


def _images_by_bytes(source, indices):
  batch = source.get(indices)
  return sorted((im.tobytes(), int(y)) for im, y in zip(batch["image"], batch["label"]))


def test_holdout_is_exact_disjoint_sorted_and_follows_the_images_not_their_order():
  rng = np.random.default_rng(0)
  images, labels = rng.integers(0, 256, (1000, 5, 5, 1), np.uint8), rng.integers(0, 10, 1000)
  source = data.ArraySource(images, labels)
  train, val = data.holdout(source, 0.1, 3)
  assert len(val) == 100 and len(train) == 900
  assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
  np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(1000))
  np.testing.assert_array_equal(data.holdout(source, 0.1, 3)[1], val)
  assert set(data.holdout(source, 0.1, 4)[1]) != set(val)
  perm = rng.permutation(1000)
  shuffled = data.ArraySource(images[perm], labels[perm])
  assert _images_by_bytes(shuffled, data.holdout(shuffled, 0.1, 3)[1]) == \
      _images_by_bytes(source, val)


def test_holdout_of_repeated_images_is_the_same_whatever_the_order():
  """Copies of an image share a digest; they are ordered by label, and copies with one label
  are interchangeable, so the held-out images and labels do not depend on the order."""
  rng = np.random.default_rng(1)
  distinct = rng.integers(0, 256, (5, 3, 3, 1), np.uint8)
  images = distinct[np.arange(60) % 5]          # each image 12 times, with mixed labels
  labels = np.arange(60) % 7
  source = data.ArraySource(images, labels)
  held = _images_by_bytes(source, data.holdout(source, 0.25, 0)[1])
  assert len(held) == 15
  for seed in range(3):
    perm = np.random.default_rng(seed).permutation(60)
    shuffled = data.ArraySource(images[perm], labels[perm])
    assert _images_by_bytes(shuffled, data.holdout(shuffled, 0.25, 0)[1]) == held


def test_catalog_path_reads_a_prepared_array_record_set_by_name(tiny):
  """Any prepared TFDS data set goes through the same path; here our own, by name."""
  cfg = tiny(**{"dataset.num_train": 300, "dataset.num_test": 50})
  ours = data.open_split(cfg.dataset, "test").get(np.arange(50))
  cfg.dataset.name = "concept_shapes/s16_seed0_300_400_50"   # a TFDS name, read from files
  cfg.dataset.image_size = 24                                 # and resized on read
  meta = data.describe(cfg.dataset)
  assert meta.splits == {"train": 300, "validation": 400, "test": 50}
  assert meta.image_shape == (24, 24, 3)
  catalog = data.open_split(cfg.dataset, "test").get(np.arange(50))
  np.testing.assert_array_equal(catalog["label"], ours["label"])
  assert catalog["image"].shape == (50, 24, 24, 3)


class _Items:
  """A stand-in TFDS data source: random access to a list of examples."""

  def __init__(self, items):
    self._items = items

  def __len__(self):
    return len(self._items)

  def __getitems__(self, indices):
    return [self._items[i] for i in indices]


def test_catalog_images_are_centre_cropped_and_resized_on_read():
  """Every source fits images alike: the largest centred square, or (resize) the shorter
  side scaled to `resize` and the centre cut out, as image folders are stored."""
  ys, xs = np.mgrid[0:10, 0:17]
  wide = np.stack([xs * 10, ys * 10, np.full_like(xs, 7)], -1).astype(np.uint8)
  item = [{"image": wide, "label": 0}]
  cropped = data.Source(_Items(item), 8, resize=10).get(np.array([0]))["image"][0]
  np.testing.assert_array_equal(cropped, wide[1:9, 4:12])  # offsets round(1), round(4.5)
  square = data.Source(_Items(item), 10).get(np.array([0]))["image"][0]
  np.testing.assert_array_equal(square, wide[:, 3:13])      # the centred 10 x 10, (17 - 10) // 2
  same = data.Source(_Items([{"image": wide[:8, :8], "label": 0}]), 8, resize=10)
  np.testing.assert_array_equal(same.get(np.array([0]))["image"][0], wide[:8, :8])  # as is
