"""Image folders named by WordNet ids, and ImageNet's resize + centre crop."""

import os

import numpy as np
from PIL import Image
import pytest

from interp_jax import data
from interp_jax.data import builders
from interp_jax.default_config import base_config
from interp_jax.errors import UserError
from interp_jax.measures import similarity, wordnet

TENCH, GOLDFISH, CHIHUAHUA = "n01440764", "n01443537", "n02085620"


def _config(root, prepared, size, resize=0, classes=""):
  c = base_config().dataset
  c.name, c.data_dir, c.prepared_dir = "image_folder", str(root), str(prepared)
  c.image_size, c.holdout_fraction = size, 0.0
  c.resize, c.classes = resize, classes   # optional fields (configs/imagenet_pretrained.py)
  return c


def _write(path, array):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path)


def _noise(h, w, seed):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _wnid_folder(root):
  """val: JPEGs of three ImageNet classes, written out of order; train: two of them."""
  for i, wnid in enumerate([CHIHUAHUA, TENCH, GOLDFISH]):
    _write(root / "val" / wnid / f"ILSVRC2012_val_{i:08d}.JPEG", _noise(40 + 7 * i, 30, i))
  for i, wnid in enumerate([GOLDFISH, TENCH]):
    _write(root / "train" / wnid / f"{wnid}_{i}.JPEG", _noise(30, 50, 10 + i))


def test_wnid_folders_are_classes_in_sorted_order(tmp_path):
  _wnid_folder(tmp_path / "imgs")
  cfg = _config(tmp_path / "imgs", tmp_path / "p", size=16, resize=20)
  meta = data.describe(cfg)
  assert meta.class_names == (TENCH, GOLDFISH, CHIHUAHUA)   # sorted = ImageNet's order
  assert meta.splits == {"train": 2, "validation": 3}
  val = data.open_split(cfg, "validation").get(np.arange(3))
  assert val["image"].shape == (3, 16, 16, 3)
  np.testing.assert_array_equal(val["label"], [0, 1, 2])    # files in class order


def test_imagenet1k_classes_keep_the_1000_class_label_space(tmp_path):
  names = builders.imagenet1k_wnids()
  assert len(names) == 1000 and list(names) == sorted(set(names))
  assert (names[0], names[1], names[151], names[999]) == (TENCH, GOLDFISH, CHIHUAHUA,
                                                         "n15075141")
  _wnid_folder(tmp_path / "imgs")
  cfg = _config(tmp_path / "imgs", tmp_path / "p", size=16, classes="imagenet1k")
  meta = data.describe(cfg)
  assert meta.class_names == names
  val = data.open_split(cfg, "validation").get(np.arange(3))
  np.testing.assert_array_equal(val["label"], [0, 1, 151])
  _write(tmp_path / "imgs" / "val" / "cat" / "0.png", _noise(8, 8, 0))
  with pytest.raises(UserError, match="ImageNet-1k wnids.*cat"):
    data.describe(cfg)
  cfg.classes = "imagenet22k"
  with pytest.raises(UserError, match="unknown config.dataset.classes"):
    data.describe(cfg)


def test_resize_then_centre_crop_geometry(tmp_path):
  """Exact offsets where no resampling happens: the shorter side already equals resize."""
  ys, xs = np.mgrid[0:10, 0:17]
  pattern = np.stack([xs * 10, ys * 10, np.full_like(xs, 7)], -1).astype(np.uint8)  # 17 x 10
  _write(tmp_path / "imgs" / "val" / TENCH / "wide.png", pattern)
  _write(tmp_path / "imgs" / "val" / GOLDFISH / "tall.png", pattern.transpose(1, 0, 2))
  cfg = _config(tmp_path / "imgs", tmp_path / "p", size=8, resize=10)
  out = data.open_split(cfg, "validation").get(np.arange(2))["image"]
  # wide: top = round((10 - 8) / 2) = 1, left = round((17 - 8) / 2) = round(4.5) = 4
  # (Python's and torchvision's round half to even)
  np.testing.assert_array_equal(out[0], pattern[1:9, 4:12])
  np.testing.assert_array_equal(out[1], pattern.transpose(1, 0, 2)[4:12, 1:9])


def test_resize_scales_the_shorter_side_then_crops_the_centre(tmp_path):
  """60 x 30: shorter side 30 -> 10 gives 20 x 10, whose centre 8 x 8 is the middle third."""
  img = np.zeros((30, 60, 3), np.uint8)
  img[:, :15], img[:, 15:45], img[:, 45:] = [255, 0, 0], [0, 255, 0], [0, 0, 255]
  _write(tmp_path / "imgs" / "val" / TENCH / "0.png", img)
  out = data.open_split(_config(tmp_path / "imgs", tmp_path / "p", size=8, resize=10),
                        "validation").get(np.arange(1))["image"][0]
  # the crop spans resized columns 6..13 = original 18..42: green, away from the borders
  np.testing.assert_array_equal(out, np.broadcast_to([0, 255, 0], (8, 8, 3)))


def test_default_crops_the_largest_centred_square(tmp_path):
  """Without resize a wide image loses its sides, as the catalog path does (no stretching)."""
  img = np.zeros((10, 20, 3), np.uint8)
  img[:, :5], img[:, 5:15], img[:, 15:] = [255, 0, 0], [0, 255, 0], [0, 0, 255]
  _write(tmp_path / "imgs" / "val" / TENCH / "0.png", img)
  out = data.open_split(_config(tmp_path / "imgs", tmp_path / "p", size=5),
                        "validation").get(np.arange(1))["image"][0]
  np.testing.assert_array_equal(out, np.broadcast_to([0, 255, 0], (5, 5, 3)))


def test_resize_matches_torchvisions_imagenet_evaluation_transform(tmp_path):
  transforms = pytest.importorskip("torchvision.transforms")
  _wnid_folder(tmp_path / "imgs")
  cfg = _config(tmp_path / "imgs", tmp_path / "p", size=24, resize=28)
  ours = data.open_split(cfg, "validation").get(np.arange(3))["image"]
  reference = transforms.Compose([transforms.Resize(28), transforms.CenterCrop(24)])
  files = builders.list_image_folder(str(tmp_path / "imgs"))["val"]
  for image, (path, _) in zip(ours, files):
    with Image.open(path) as im:
      np.testing.assert_array_equal(image, np.asarray(reference(im.convert("RGB"))))


def test_resize_below_image_size_is_a_user_error(tmp_path):
  _wnid_folder(tmp_path / "imgs")
  with pytest.raises(UserError, match="resize = 100 .*224"):
    data.describe(_config(tmp_path / "imgs", tmp_path / "p", size=224, resize=100))


@pytest.mark.skipif(not os.path.isfile(os.path.join(wordnet.DEBIAN_DIR, "data.noun")),
                    reason="WordNet 3.0 is not installed (apt-get install wordnet-base)")
def test_wordnet_similarity_applies_to_the_folder_classes(tmp_path):
  _wnid_folder(tmp_path / "imgs")
  meta = data.describe(_config(tmp_path / "imgs", tmp_path / "p", size=16))
  a = similarity.for_dataset("wordnet", meta, wordnet_dir=wordnet.DEBIAN_DIR)
  assert a[0, 1] == pytest.approx(16 / 17)    # tench / goldfish
  assert a[0, 2] < a[0, 1]                    # a fish is closer to a fish than to a dog
