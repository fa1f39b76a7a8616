"""MNIST-like IDX files: the reader on files written here, the `idx` source end to end, and its
validation hold-out chosen by content (never ../shared/data: a user's clone has none)."""

import gzip

import numpy as np
import pytest

from interp_jax import data
from interp_jax.data import idx
from interp_jax.default_config import base_config
from interp_jax.errors import UserError

_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
          np.float64: 0x0E}


def _idx_bytes(array) -> bytes:
  array = np.asarray(array)
  header = bytes([0, 0, _CODES[array.dtype.type], array.ndim])
  header += np.array(array.shape, ">u4").tobytes()
  return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write(path, payload: bytes, gz: bool = False):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(gzip.compress(payload) if gz else payload)
  return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_read_idx_round_trips_types_plain_and_gzipped(tmp_path, dtype, gz):
  array = (np.arange(2 * 3 * 5) * 37 - 100).reshape(2, 3, 5).astype(dtype)
  if dtype == np.uint8:
    array = (np.arange(30) * 9).reshape(2, 3, 5).astype(np.uint8)
  path = _write(tmp_path / "x-idx3", _idx_bytes(array), gz)
  out = idx.read_idx(path)
  assert out.dtype == np.dtype(dtype) and out.dtype.isnative and out.flags.writeable
  np.testing.assert_array_equal(out, array)


def test_gzip_is_told_by_content_not_by_name(tmp_path):
  labels = np.array([5, 0, 4, 1, 9], np.uint8)
  np.testing.assert_array_equal(
      idx.read_idx(_write(tmp_path / "gzipped-no-suffix", _idx_bytes(labels), gz=True)), labels)
  np.testing.assert_array_equal(
      idx.read_idx(_write(tmp_path / "plain.gz", _idx_bytes(labels))), labels)


def _malformed(good: bytes) -> dict[str, tuple[bytes, str]]:
  """Broken copies of an IDX file's bytes, with what the error must say."""
  return {
      "magic": (b"\x01\x02" + good[2:], "not an IDX file"),
      "type": (good[:2] + b"\x0a" + good[3:], "unknown type code 0x0A"),
      "short_header": (good[:6], "truncated"),
      "tiny": (good[:3], "truncated"),
      "truncated": (good[:-1], "truncated"),
      "trailing": (good + b"\0\0", "2 trailing bytes"),
  }


@pytest.mark.parametrize("case", ["magic", "type", "short_header", "tiny", "truncated",
                                  "trailing"])
@pytest.mark.parametrize("gz", [False, True])
def test_malformed_files_are_user_errors_naming_the_file(tmp_path, case, gz):
  payload, words = _malformed(_idx_bytes(np.zeros((3, 4, 4), np.uint8)))[case]
  path = _write(tmp_path / f"broken-{case}", payload, gz)
  with pytest.raises(UserError, match=words) as e:
    idx.read_idx(path)
  assert str(path) in str(e.value)


def test_a_cut_gzip_download_is_a_user_error_naming_the_file(tmp_path):
  whole = gzip.compress(_idx_bytes(np.arange(4000, dtype=np.int32)))
  path = _write(tmp_path / "cut.gz", whole[:len(whole) // 2])
  with pytest.raises(UserError, match="damaged gzip") as e:
    idx.read_idx(path)
  assert str(path) in str(e.value)


def _digits(n, seed):
  """n distinct 28 x 28 'digits' (random pixels) and their labels 0-9."""
  rng = np.random.default_rng(seed)
  return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n, dtype=np.uint8) % 10


def _mnist_folder(folder, train=None, test=None, gz=True, names=None):
  """A fake MNIST: 60 train and 20 test images (or the given pairs) as the four IDX files."""
  train = train if train is not None else _digits(60, 0)
  test = test if test is not None else _digits(20, 1)
  names = names or idx.FILES
  for split, (images, labels) in (("train", train), ("test", test)):
    image_name, label_name = names[split]
    suffix = ".gz" if gz else ""
    _write(folder / f"{image_name}{suffix}", _idx_bytes(images), gz)
    _write(folder / f"{label_name}{suffix}", _idx_bytes(labels), gz)
  return folder


def _idx_config(folder, holdout=0.1, size=28, seed=0):
  c = base_config()
  c.dataset.name = "idx"
  c.dataset.data_dir = str(folder)
  c.dataset.image_size = size
  c.dataset.holdout_fraction = holdout
  c.dataset.holdout_seed = seed
  return c.dataset


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_idx_source_reads_both_layouts_end_to_end(tmp_path, layout):
  train, test = _digits(60, 0), _digits(20, 1)
  if layout == "flat":
    _mnist_folder(tmp_path / "mnist", train, test, gz=False)
  else:  # torchvision keeps the .gz and the extracted files side by side in ROOT/MNIST/raw
    _mnist_folder(tmp_path / "mnist" / "MNIST" / "raw", train, test, gz=False)
    _mnist_folder(tmp_path / "mnist" / "MNIST" / "raw", train, test, gz=True)
  cfg = _idx_config(tmp_path / "mnist", holdout=0.0)
  meta = data.describe(cfg)
  assert meta.class_names == tuple("0123456789")
  assert meta.image_shape == (28, 28, 1) and meta.splits == {"train": 60, "test": 20}
  for split, (images, labels) in (("train", train), ("test", test)):
    got = data.open_split(cfg, split).get(np.arange(len(labels)))
    assert got["image"].dtype == np.uint8 and got["image"].shape == (len(labels), 28, 28, 1)
    np.testing.assert_array_equal(got["image"][..., 0], images)
    np.testing.assert_array_equal(got["label"], labels)
  with pytest.raises(UserError, match="no split 'validation'"):
    data.open_split(cfg, "validation")


def test_idx_images_of_another_size_are_fitted_like_every_source(tmp_path):
  cfg = _idx_config(_mnist_folder(tmp_path / "m"), holdout=0.0, size=16)
  assert data.describe(cfg).image_shape == (16, 16, 1)
  assert data.open_split(cfg, "test").get(np.arange(3))["image"].shape == (3, 16, 16, 1)


def _held_out_bytes(cfg, split="validation"):
  src = data.open_split(cfg, split)
  batch = src.get(np.arange(len(src)))
  return {(img.tobytes(), int(label)) for img, label in zip(batch["image"], batch["label"])}


def test_idx_hold_out_is_chosen_by_content_whatever_the_storage_order(tmp_path):
  images, labels = _digits(60, 0)
  perm = np.random.default_rng(7).permutation(60)
  a = _idx_config(_mnist_folder(tmp_path / "a", (images, labels)))
  b = _idx_config(_mnist_folder(tmp_path / "b", (images[perm], labels[perm]), gz=False))
  assert data.describe(a).splits == {"train": 54, "validation": 6, "test": 20}
  val_a, train_a = _held_out_bytes(a), _held_out_bytes(a, "train")
  assert len(val_a) == 6 and len(train_a) == 54 and not val_a & train_a
  assert val_a == _held_out_bytes(b) and train_a == _held_out_bytes(b, "train")
  assert _held_out_bytes(a) == val_a                                   # deterministic
  assert _held_out_bytes(_idx_config(tmp_path / "a", seed=1)) != val_a  # another draw


def test_missing_files_name_the_folder_and_the_four_files(tmp_path):
  folder = _mnist_folder(tmp_path / "partial")
  (folder / "t10k-labels-idx1-ubyte.gz").unlink()
  for where in (folder, tmp_path / "nowhere"):
    with pytest.raises(UserError) as e:
      data.describe(_idx_config(where))
    message = str(e.value)
    assert str(where) in message and "MNIST/raw" in message
    assert all(name in message for pair in idx.FILES.values() for name in pair)
  with pytest.raises(UserError, match="data_dir"):
    data.describe(_idx_config(""))


def test_two_data_sets_under_one_root_are_named(tmp_path):
  _mnist_folder(tmp_path / "root" / "MNIST" / "raw")
  _mnist_folder(tmp_path / "root" / "FashionMNIST" / "raw")
  with pytest.raises(UserError, match="more than one data set.*FashionMNIST"):
    data.describe(_idx_config(tmp_path / "root"))
  assert data.describe(_idx_config(tmp_path / "root" / "FashionMNIST" / "raw")).splits["test"] == 20


def test_files_of_the_wrong_kind_or_count_are_user_errors_naming_the_file(tmp_path):
  images, labels = _digits(60, 0)
  cases = {
      "train-images-idx3-ubyte": (images[:, 0], "should hold images"),              # 2-D
      "train-labels-idx1-ubyte": (labels.reshape(6, 10), "should hold labels"),     # 2-D
      "t10k-labels-idx1-ubyte": (np.arange(19, dtype=np.uint8), "19 labels"),       # 20 images
      "t10k-images-idx3-ubyte": (images[:20, :14], "14x28 images"),                 # its size
  }
  for name, (array, words) in cases.items():
    folder = _mnist_folder(tmp_path / name, gz=False)
    _write(folder / name, _idx_bytes(array))
    with pytest.raises(UserError, match=words) as e:
      data.describe(_idx_config(folder))
    assert name in str(e.value)
  folder = _mnist_folder(tmp_path / "float", gz=False)
  _write(folder / "train-labels-idx1-ubyte", _idx_bytes(labels.astype(np.float32)))
  with pytest.raises(UserError, match="non-negative integers"):
    data.describe(_idx_config(folder))


def test_idx_has_no_segmentation(tmp_path):
  with pytest.raises(UserError, match="no segmentation"):
    data.open_split(_idx_config(_mnist_folder(tmp_path / "m")), "test", with_segmentation=True)
