"""The Broden reader on a tiny hand-made directory: decoded ids checked by hand."""

import numpy as np
from PIL import Image
import pytest

from interp_jax.data.broden import BrodenSource, ProbeConcepts, open_broden

HEADER = "image,split,ih,iw,sh,sw,color,object,part,material,scene,texture"
# Label numbers 1, 2, 3, 5, 300 (4 unused) -> dense ids 0, 1, 2, 3, 4. "person" lists its
# smaller count first: its category is still the one with the most images, object.
LABELS = """number,name,category,frequency,coverage,syns
0,-,,0,0,
1,red-c,color(2),2,1.5,
2,blue-c,color(1),1,1.0,
3,person,texture(1);object(2),3,0.2,human
5,striped,texture(2),2,2.0,
300,car,object(2),2,0.1,auto
"""
ROWS = ["a.png,train,8,8,4,4,a_color.png,a_obj0.png;a_obj1.png,,,,5",
        "b.png,val,8,8,4,4,b_color.png,b_obj.png,,,,",
        "c.png,train,8,8,4,4,,,,,,5"]
GRADIENT = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)


def _mask(numbers):
  """Label numbers -> a Broden mask PNG's pixels: red = n % 256, green = n // 256."""
  n = np.array(numbers)
  return np.stack([n % 256, n // 256, np.full_like(n, 7)], -1).astype(np.uint8)  # blue: noise


def _broden(root, rows=ROWS, labels=LABELS):
  images = root / "images"
  images.mkdir(parents=True)
  solid = lambda rgb: np.tile(np.array(rgb, np.uint8), (8, 8, 1))
  for name, px in [("a.png", solid((10, 20, 30))), ("b.png", GRADIENT),
                   ("c.png", solid((200, 100, 0))),
                   ("a_color.png", _mask([[1] * 4, [1] * 4, [2, 2, 0, 0], [2, 2, 0, 0]])),
                   ("a_obj0.png", _mask([[300, 300, 0, 0], [0, 3, 0, 0], [0] * 4, [0] * 4])),
                   ("a_obj1.png", _mask([[0] * 4, [0] * 4, [0, 0, 0, 3], [0] * 4])),
                   ("b_color.png", _mask(np.full((4, 4), 2))),
                   ("b_obj.png", _mask([[0] * 4, [0] * 4, [0] * 4, [0, 0, 0, 300]]))]:
    Image.fromarray(px).save(images / name)
  (root / "index.csv").write_text("\n".join([HEADER] + rows) + "\n")
  (root / "label.csv").write_text(labels)
  return root


def _full(v):
  return np.full((4, 4), v, np.int32)


# Layers: color, object slot 0, object slot 1, texture (part, material, scene: no entries).
A = np.array([[[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, -1, -1], [1, 1, -1, -1]],
              [[4, 4, -1, -1], [-1, 2, -1, -1], [-1] * 4, [-1] * 4],
              [[-1] * 4, [-1] * 4, [-1, -1, -1, 2], [-1] * 4],
              _full(3)], np.int32)
B = np.array([_full(1), [[-1] * 4, [-1] * 4, [-1] * 4, [-1, -1, -1, 4]], _full(-1), _full(-1)],
             np.int32)
C = np.array([_full(-1), _full(-1), _full(-1), _full(3)], np.int32)


def test_concepts_renumbered_densely_with_main_category(tmp_path):
  src = open_broden(_broden(tmp_path), image_size=8)
  assert isinstance(src, BrodenSource)
  assert src.concepts == ProbeConcepts(("red-c", "blue-c", "person", "striped", "car"),
                                       ("color", "color", "object", "texture", "object"))
  assert src.mask_shape == (4, 4) and len(src) == 3


def test_labels_decoded_per_pixel_and_layer(tmp_path):
  src = open_broden(_broden(tmp_path), image_size=8)
  batch = src.get(np.array([0, 1, 2]))
  assert batch["labels"].dtype == np.int32 and batch["labels"].shape == (3, 4, 4, 4)
  np.testing.assert_array_equal(batch["labels"], np.stack([A, B, C]))
  assert batch["labels"][0, 1, 0, 0] == 4  # 300 = 44 + 256 * 1: the green channel counts
  assert batch["index"].dtype == np.int64
  np.testing.assert_array_equal(batch["index"], [0, 1, 2])
  # Another order, a repeat: the same rows again, deterministically.
  again = src.get([2, 0, 0])
  np.testing.assert_array_equal(again["labels"], np.stack([C, A, A]))
  np.testing.assert_array_equal(again["index"], [2, 0, 0])


def test_images_alone_leave_the_masks_unread(tmp_path, monkeypatch):
  """labels=False (the dissection's first two passes): the same images, no mask decoded."""
  src = open_broden(_broden(tmp_path), image_size=8)
  full = src.get([0, 1])
  monkeypatch.setattr(src, "_decode", lambda *a: pytest.fail("a mask was decoded"))
  bare = src.get([0, 1], labels=False)
  assert "labels" not in bare
  np.testing.assert_array_equal(bare["image"], full["image"])
  np.testing.assert_array_equal(bare["index"], full["index"])


def test_images_read_and_resized(tmp_path):
  root = _broden(tmp_path)
  images = open_broden(root, image_size=8).get([0, 1])["image"]
  assert images.dtype == np.uint8 and images.shape == (2, 8, 8, 3)
  np.testing.assert_array_equal(images[0], np.tile(np.array([10, 20, 30], np.uint8), (8, 8, 1)))
  np.testing.assert_array_equal(images[1], GRADIENT)
  small = open_broden(root, image_size=4).get([0, 1])["image"]
  assert small.shape == (2, 4, 4, 3)
  np.testing.assert_array_equal(small[0], np.tile(np.array([10, 20, 30], np.uint8), (4, 4, 1)))
  np.testing.assert_array_equal(
      small[1], np.asarray(Image.fromarray(GRADIENT).resize((4, 4), Image.BILINEAR)))
  assert not np.array_equal(small[1], GRADIENT[::2, ::2])  # resized, not subsampled


def test_split_filter_keeps_index_order_and_its_own_layers(tmp_path):
  root = _broden(tmp_path)
  train = open_broden(root, image_size=8, split="train")
  assert len(train) == 2
  np.testing.assert_array_equal(train.get([0, 1])["labels"], np.stack([A, C]))
  val = open_broden(root, image_size=8, split="val")
  assert len(val) == 1
  # Only b: one colour and one object mask, no texture -> two layers.
  np.testing.assert_array_equal(val.get([0])["labels"], B[None, :2])
  np.testing.assert_array_equal(val.get([0])["image"][0], GRADIENT)


def test_category_restriction(tmp_path):
  root = _broden(tmp_path)
  # Layers follow index.csv's column order, not the order asked.
  src = open_broden(root, image_size=8, categories=["object", "color"])
  np.testing.assert_array_equal(src.get([0, 1, 2])["labels"], np.stack([A, B, C])[:, :3])
  texture = open_broden(root, image_size=8, categories="texture")
  np.testing.assert_array_equal(texture.get([0, 1, 2])["labels"],
                                np.stack([A, B, C])[:, 3:])
  assert texture.concepts.names[3] == "striped"  # the concept ids do not depend on it


def test_missing_index_or_label_csv(tmp_path):
  root = _broden(tmp_path)
  (root / "label.csv").unlink()
  with pytest.raises(FileNotFoundError, match="label.csv"):
    open_broden(root, image_size=8)
  (root / "index.csv").unlink()
  with pytest.raises(FileNotFoundError, match="index.csv"):
    open_broden(root, image_size=8)


def test_unknown_category_or_split(tmp_path):
  root = _broden(tmp_path)
  with pytest.raises(ValueError, match="unknown categories.*'shape'"):
    open_broden(root, image_size=8, categories=["object", "shape"])
  with pytest.raises(ValueError, match="unknown categories"):
    open_broden(root, image_size=8, categories=["split"])  # a meta column, not a category
  with pytest.raises(ValueError, match="split 'test'"):
    open_broden(root, image_size=8, split="test")


def test_missing_mask_file(tmp_path):
  root = _broden(tmp_path)
  (root / "images" / "a_obj1.png").unlink()
  with pytest.raises(FileNotFoundError, match="object mask a_obj1.png of image a.png"):
    open_broden(root, image_size=8)


def test_differing_mask_sizes(tmp_path):
  rows = ROWS[:2] + ["c.png,train,8,8,2,2,,,,,,5"]
  with pytest.raises(ValueError, match="mixes mask sizes"):
    open_broden(_broden(tmp_path, rows=rows), image_size=8)


def test_label_numbers_not_in_label_csv(tmp_path):
  # Drop label 3 (person): a.png's object masks hold it.
  labels = "\n".join(line for line in LABELS.splitlines() if not line.startswith("3,")) + "\n"
  src = open_broden(_broden(tmp_path, labels=labels), image_size=8)
  assert src.concepts.names == ("red-c", "blue-c", "striped", "car")
  np.testing.assert_array_equal(src.get([1])["labels"][0, 1, 3, 3], 3)  # car: id 3 now
  with pytest.raises(ValueError, match="label number 3"):
    src.get([0])


def test_unknown_image_level_label_and_bad_category_field(tmp_path):
  rows = ROWS[:2] + ["c.png,train,8,8,4,4,,,,,,4"]
  with pytest.raises(ValueError, match="texture label 4"):
    open_broden(_broden(tmp_path / "x", rows=rows), image_size=8)
  labels = LABELS.replace("color(2)", "color 2")
  with pytest.raises(ValueError, match="category"):
    open_broden(_broden(tmp_path / "y", labels=labels), image_size=8)
