"""The crop-and-flip augmentation against a brute-force search over its outcomes."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from interp_jax.data import augment
from interp_jax.errors import UserError


def _outcomes(image, pad):
  """Every image random_crop_flip can return for `image`: each crop, each mirror."""
  h, w, _ = image.shape
  padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
  for dy in range(2 * pad + 1):
    for dx in range(2 * pad + 1):
      crop = padded[dy:dy + h, dx:dx + w]
      yield (dy, dx, False), crop
      yield (dy, dx, True), crop[:, ::-1]


def test_each_image_is_a_crop_of_its_padded_self_possibly_mirrored():
  rng = np.random.default_rng(0)
  x = rng.uniform(0.1, 1.0, (64, 8, 8, 3)).astype(np.float32)  # no zero pixel: unambiguous
  out = np.asarray(jax.jit(augment.random_crop_flip, static_argnums=2)(
      jnp.asarray(x), jax.random.key(0), 2))
  seen = []
  for image, got in zip(x, out):
    matches = [how for how, cand in _outcomes(image, 2) if np.array_equal(cand, got)]
    assert len(matches) == 1
    seen.append(matches[0])
  # The draws vary: several offsets and both orientations occur.
  assert len({(dy, dx) for dy, dx, _ in seen}) > 10
  assert {f for *_, f in seen} == {True, False}


def test_offsets_and_flips_are_uniform_and_keyed():
  # Nine equal rows, so the middle row of any crop is an image row (pad 4 < 9 - 4).
  x = jnp.broadcast_to(jnp.arange(12.0)[None, None, :, None] + 1, (4000, 9, 12, 1))
  out = np.asarray(augment.random_crop_flip(x, jax.random.key(3), pad=4))
  # The middle row of each output tells the horizontal offset dx and the flip:
  # unflipped, it is padded[dx:dx + 12] of 0 0 0 0 1 2 .. 12 0 0 0 0.
  flipped, dx = [], []
  for row in out[:, 4, :, 0]:
    nonzero = row[row > 0]
    flip = nonzero[0] > nonzero[1]
    row = row[::-1] if flip else row
    flipped.append(flip)
    dx.append(int(row[0]) + 3 if row[0] > 0 else 4 - int(np.argmax(row > 0)))
  assert abs(np.mean(flipped) - 0.5) < 0.03        # 4,000 fair coins: sd 0.008
  counts = np.bincount(dx, minlength=9)            # each offset 0..8 about 1/9 of the time
  assert counts.shape == (9,) and np.all(np.abs(counts / 4000 - 1 / 9) < 0.03)
  again = np.asarray(augment.random_crop_flip(x, jax.random.key(3), pad=4))
  other = np.asarray(augment.random_crop_flip(x, jax.random.key(4), pad=4))
  assert np.array_equal(out, again) and not np.array_equal(out, other)


def test_no_padding_leaves_only_the_mirror():
  x = jax.random.uniform(jax.random.key(1), (16, 5, 5, 2))
  out = augment.random_crop_flip(x, jax.random.key(2), pad=0)
  same = jnp.all(out == x, axis=(1, 2, 3)) | jnp.all(out == x[:, :, ::-1], axis=(1, 2, 3))
  assert bool(same.all())


def test_bad_settings_are_refused():
  assert augment.make_augment("") is None
  with pytest.raises(ValueError, match="unknown augmentation"):
    augment.make_augment("cutout")
  with pytest.raises(ValueError, match="padding"):
    augment.make_augment("crop_flip", pad=-1)


def test_the_train_step_augments_deterministically_by_step(tiny):
  from interp_jax import models
  from interp_jax.training import steps, trainer
  with pytest.raises(UserError, match="config.augment"):
    trainer.check_config(tiny(augment="cutout"))
  model = models.create("small_cnn", 9, widths=(4, 8, 8), hidden=16)
  tx = optax.sgd(0.1)   # a constant rate: the config's warm-up would make step 0 a no-op
  state = steps.create_train_state(model, tx, (16, 16, 3), jax.random.key(0))
  batch = {"image": jax.random.uniform(jax.random.key(1), (8, 16, 16, 3)),
           "label": jnp.arange(8) % 9}
  plain = jax.jit(steps.make_train_step(model))
  augmented = jax.jit(steps.make_train_step(model, augment=augment.make_augment("crop_flip")))
  a1, m1 = augmented(state, batch)
  a2, m2 = augmented(state, batch)
  p1, _ = plain(state, batch)
  chex.assert_trees_all_equal(a1.params, a2.params)
  with pytest.raises(AssertionError):  # the augmented step saw other images
    chex.assert_trees_all_equal(a1.params, p1.params)
  # The next step draws other crops: its loss on the same batch differs from
  # the loss the plain step would see there.
  _, m3 = augmented(a1, batch)
  _, m4 = plain(a1, batch)
  assert float(m3["train_loss"]) != float(m4["train_loss"])
