"""The attacked-batch pipeline: an image's attack does not depend on its batch, the step
compiles once per pass, and the host-side rows equal a naive loop over single images."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp_jax import attacks, data, models, sharding
from interp_jax.attacks import batches as ab

SPEC = attacks.AttackSpec("pgd", 8 / 255, steps=2)  # a random start: the keys matter


@pytest.fixture(scope="module")
def setup():
  """A tiny random small_cnn and 14 images of 8x8 (padding: 14 is no multiple of 4 or 6)."""
  model = models.create("small_cnn", 5, widths=(4, 8), hidden=8)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (14, 8, 8, 3), dtype=np.uint8)
  labels = rng.integers(0, 5, 14)
  return model, variables, images, labels


def _readout(variables, seen, batch, extra):
  return {"pred": {s: jnp.argmax(l, -1) for s, l in seen.logits.items()},
          "conv2": seen.features["adversarial"]["conv2"],
          "label": seen.labels, "index": batch["index"], "mask": batch["mask"]}


def _run(step, variables, source, batch_size, key, mesh, **call):
  acc = ab.Accumulator(len(source))
  for _, placed in ab.over(source, batch_size, desc="test", mesh=mesh, progress=False,
                           fields=("image", "label", "index", "mask", "seed")):
    out, made = step(variables, placed, key, **call)
    acc.add_rows(out, made["adversarial"])
    host = jax.device_get(out)
    if "pred" in host:
      acc.add_sums({"correct": (host["pred"]["adversarial"] == host["label"])[host["mask"]].sum()})
  return acc


def test_an_image_is_attacked_alike_wherever_and_in_whatever_batch_it_lands(setup):
  """A permuted split in batches of another size: every image's adversarial version is
  the same (its key comes from its pixels), and another key changes them."""
  model, variables, images, labels = setup
  mesh = sharding.data_mesh()
  step = ab.attacked_step(model, {"adversarial": SPEC}, forward=(), mesh=mesh,
                          readout=lambda v, seen, b, e: {"index": b["index"], "mask": b["mask"]})
  key = jax.random.key(3)
  first = _run(step, variables, data.ArraySource(images, labels), 4, key, mesh).images
  order = np.random.default_rng(1).permutation(len(images))
  permuted = data.ArraySource(images[order], labels[order])
  again = _run(step, variables, permuted, 6, key, mesh).images
  np.testing.assert_allclose(again, first[order], atol=1e-6)
  other = _run(step, variables, data.ArraySource(images, labels), 4, jax.random.key(4),
               mesh).images
  assert np.abs(other - first).max() > 1e-3
  x = images.astype(np.float32) / 255
  assert np.abs(first - x).max() <= SPEC.eps + 1e-6 and np.abs(first - x).max() > 0


def test_the_step_compiles_once_across_batches_and_eps(setup):
  """Full and padded batches and an eps sweep (a traced scale) share one compilation."""
  model, variables, images, labels = setup
  mesh = sharding.data_mesh()
  step = ab.attacked_step(model, {"adversarial": SPEC}, layers=("conv2",), readout=_readout,
                          clean="real", mesh=mesh)
  source = data.ArraySource(images, labels)
  for scale in (1.0, 0.5, 2.0):
    _run(step, variables, source, 4, jax.random.key(0), mesh, scale=np.float32(scale))
  assert step._cache_size() == 1
  # The scale reaches the attack: eps 0 leaves the images as they are.
  zero = _run(step, variables, source, 4, jax.random.key(0), mesh, scale=np.float32(0))
  np.testing.assert_allclose(zero.images, images.astype(np.float32) / 255, atol=1e-7)
  assert step._cache_size() == 1


def test_the_accumulated_rows_equal_a_naive_loop_over_single_images(setup):
  """Sharded batches of 4 with padding, written by index, against each image attacked and
  read alone (no mesh): the same predictions, features, images and sums."""
  model, variables, images, labels = setup
  key = jax.random.key(5)
  mesh = sharding.data_mesh()
  options = dict(layers=("conv2",), readout=_readout, clean="real")
  acc = _run(ab.attacked_step(model, {"adversarial": SPEC}, mesh=mesh, **options), variables,
             data.ArraySource(images, labels), 4, key, mesh)
  single = ab.attacked_step(model, {"adversarial": SPEC}, **options)
  preds, feats, advs = {"real": [], "adversarial": []}, [], []
  for i in range(len(images)):
    x = images[i:i + 1].astype(np.float32) / 255
    batch = {"image": x, "label": labels[i:i + 1].astype(np.int32), "index": np.array([i]),
             "mask": np.array([True]), "seed": data.content_hashes(x)}
    out, made = jax.device_get(single(variables, batch, key))
    for s in preds:
      preds[s].append(out["pred"][s][0])
    feats.append(out["conv2"][0])
    advs.append(made["adversarial"][0])
  for s in preds:
    np.testing.assert_array_equal(acc.rows["pred"][s], preds[s])
  np.testing.assert_array_equal(acc.rows["label"], labels)
  np.testing.assert_allclose(acc.rows["conv2"], np.stack(feats), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(acc.images, np.stack(advs), atol=1e-6)
  assert acc.sums["correct"] == (np.asarray(preds["adversarial"]) == labels).sum()


def test_sets_made_against_another_model_and_given_sets(setup):
  """An Attack against another function reads its variables from the step's `extra`; a
  given set is read from the batch; without labels the predictions are attacked away from."""
  model, variables, images, _ = setup
  other = jax.tree.map(lambda a: -a, variables)
  step = ab.attacked_step(
      model, {"shared": ab.Attack(SPEC, model.apply, lambda v, extra: extra)},
      given=("kept",), readout=lambda v, seen, b, e: (seen.labels, seen.logits["kept"]))
  x = images[:4].astype(np.float32) / 255
  seeds = data.content_hashes(x)
  key = jax.random.key(7)
  (labels, kept_logits), made = step(variables, {"image": x, "seed": seeds, "kept": x[::-1]},
                                     key, extra=other)
  predicted = np.argmax(np.asarray(model.apply(variables, x)), -1)
  np.testing.assert_array_equal(labels, predicted)
  np.testing.assert_allclose(kept_logits, model.apply(variables, x[::-1]), rtol=1e-5, atol=1e-6)
  by_hand = SPEC(model.apply, other, x, predicted, ab.image_keys(key, seeds))
  np.testing.assert_allclose(made["shared"], by_hand, atol=1e-6)
