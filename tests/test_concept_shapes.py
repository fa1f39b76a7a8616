"""The built-in data set: determinism, class tree, concept masks, TFDS builder."""

import chex
import numpy as np

from interp_jax import data
from interp_jax.data import concept_shapes as cs


def _render(seed, n=64, size=24):
  return cs.render(np.random.default_rng(seed), n, size)


def test_render_is_a_function_of_the_seed():
  a, b, other = _render(3), _render(3), _render(4)
  chex.assert_trees_all_equal(a, b)  # images, labels and masks
  assert not np.array_equal(a[0], other[0])


def test_shapes_and_ranges():
  images, labels, seg = _render(0, n=200, size=20)
  chex.assert_shape(images, (200, 20, 20, 3))
  chex.assert_shape(seg, (200, 20, 20, 3))
  assert images.dtype == np.uint8 and labels.dtype == np.int32
  assert set(labels) == set(range(len(cs.SHAPES)))  # 200 draws cover 9 classes


def test_class_tree_has_two_levels_and_covers_every_class_once():
  leaves = [c for group in cs.CLASS_TREE.values() for c in group]
  assert sorted(leaves) == sorted(cs.SHAPES)
  assert len(cs.CLASS_TREE) >= 2 and len(cs.SHAPES) >= 8


def test_masks_partition_the_image_and_agree_with_labels():
  images, labels, seg = _render(1, n=100)
  masks = cs.concept_masks(seg)
  chex.assert_shape(masks, (100, len(cs.CONCEPTS), 24, 24))
  shapes = masks[:, :len(cs.SHAPES)]
  colours = masks[:, len(cs.SHAPES):len(cs.SHAPES) + len(cs.COLOURS)]
  textures = masks[:, len(cs.SHAPES) + len(cs.COLOURS):]
  # Every pixel has exactly one colour and one texture; at most one shape.
  np.testing.assert_array_equal(colours.sum(1), 1)
  np.testing.assert_array_equal(textures.sum(1), 1)
  assert shapes.sum(1).max() == 1
  # The only shape present is the label, and the object is visible.
  present = shapes.any(axis=(2, 3))
  np.testing.assert_array_equal(present.argmax(1), labels)
  np.testing.assert_array_equal(present.sum(1), 1)
  assert shapes.sum(axis=(1, 2, 3)).min() >= 10
  # The object's colour differs from the background's.
  obj = shapes.any(1)
  for i in range(100):
    fg = set(np.unique(seg[i, ..., 1][obj[i]]))
    bg = set(np.unique(seg[i, ..., 1][~obj[i]]))
    assert len(fg) == 1 and len(bg) == 1 and fg != bg


def test_pixels_follow_the_colour_mask():
  """The mean pixel of the object is its palette colour (texture only darkens)."""
  images, _, seg = _render(2, n=50, size=32)
  palette = np.array(list(cs.COLOURS.values()))
  for i in range(50):
    obj = seg[i, ..., 0] > 0
    colour = palette[seg[i, ..., 1][obj][0] - 1]
    pixels = images[i][obj].astype(float)
    bright = pixels[pixels.sum(1) >= np.percentile(pixels.sum(1), 50)]
    np.testing.assert_allclose(bright.mean(0), colour, atol=25)


def test_builder_is_deterministic_and_ships_the_tree(tmp_path, tiny):
  cfgs = [tiny(**{"dataset.data_dir": str(tmp_path / d), "dataset.num_train": 300,
                  "dataset.num_test": 50}) for d in ("a", "b")]
  arrays = [data.open_split(c.dataset, "train", with_segmentation=True).get(np.arange(300))
            for c in cfgs]
  assert {"image", "label", "segmentation"} <= set(arrays[0])
  chex.assert_trees_all_equal(arrays[0], arrays[1])
  meta = data.describe(cfgs[0].dataset)
  assert meta.class_tree == cs.CLASS_TREE
  assert meta.concepts == cs.CONCEPTS
  assert meta.splits == {"train": 300, "validation": 400, "test": 50}
  assert meta.image_shape == (16, 16, 3)
  # Each split its own seed stream: no validation image is a train or test image.
  val = data.open_split(cfgs[0].dataset, "validation").get(np.arange(400))["image"]
  test = data.open_split(cfgs[0].dataset, "test").get(np.arange(50))["image"]
  seen = {im.tobytes() for im in np.concatenate([arrays[0]["image"], test])}
  assert not any(im.tobytes() in seen for im in val)
  # Example i of the split is image i of the generator (no shuffling on write).
  images, labels, _ = cs.render(np.random.default_rng([0, 0, 0]), 300, 16)
  np.testing.assert_array_equal(arrays[0]["image"], images)
  np.testing.assert_array_equal(arrays[0]["label"], labels)
