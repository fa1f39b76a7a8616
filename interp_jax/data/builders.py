"""TFDS builders of ours, written as array_record with no TensorFlow.

`ConceptShapes` generates the built-in data set; `ImageFolder` converts a
user's `ROOT/<split>/<class>/*.png|*.jpg` once (TFDS's own ImageFolder imports
TensorFlow). Both store images as `tfds.features.Tensor` of uint8 with bytes
encoding: `tfds.features.Image` would import TensorFlow to encode PNGs, and
the default int64-list encoding of a Tensor serialises six times slower.

    builder = ConceptShapes(config=concept_shapes_config(size=32, seed=0),
                            data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare()
    source = builder.as_data_source(split="train")   # random access, no TF
"""

import hashlib
import os
import pathlib

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from interp_jax.data import concept_shapes
from interp_jax.errors import UserError

_CHUNK = 2000  # images rendered per call: fixed, so the data never depend on it
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def _uint8(shape):
  return tfds.features.Tensor(shape=shape, dtype=np.uint8,
                              encoding=tfds.features.Encoding.BYTES)


class ConceptShapesConfig(tfds.core.BuilderConfig):
  """Image size, seed and split sizes; the name encodes them all."""

  def __init__(self, *, size: int, seed: int, num_train: int, num_test: int,
               num_validation: int):
    super().__init__(name=f"s{size}_seed{seed}_{num_train}_{num_validation}_{num_test}")
    self.size, self.seed = size, seed
    self.num_train, self.num_test, self.num_validation = num_train, num_test, num_validation


def concept_shapes_config(size=32, seed=0, num_train=20_000, num_test=4_000,
                          num_validation=4_000):
  return ConceptShapesConfig(size=size, seed=seed, num_train=num_train, num_test=num_test,
                             num_validation=num_validation)


class ConceptShapes(tfds.core.GeneratorBasedBuilder):
  """Procedural shapes with a class tree and shape/colour/texture masks."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    size = self.builder_config.size
    return tfds.core.DatasetInfo(
        builder=self,
        description=concept_shapes.__doc__,
        features=tfds.features.FeaturesDict({
            "image": _uint8((size, size, 3)),
            "segmentation": _uint8((size, size, 3)),
            "label": tfds.features.ClassLabel(names=concept_shapes.SHAPES),
        }),
        supervised_keys=("image", "label"),
        disable_shuffling=True,  # example i is the i-th image generated
        metadata=tfds.core.MetadataDict(
            class_tree=concept_shapes.CLASS_TREE,
            concepts=list(concept_shapes.CONCEPTS)),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    cfg = self.builder_config
    # Each split has its own seed stream (0, 1, 2): the validation images are
    # neither training nor test images, and adding them changed neither.
    splits = {"train": self._generate_examples(0, cfg.num_train),
              "test": self._generate_examples(1, cfg.num_test)}
    if cfg.num_validation:
      splits["validation"] = self._generate_examples(2, cfg.num_validation)
    return splits

  def _generate_examples(self, split_id, count):
    cfg = self.builder_config
    for start in range(0, count, _CHUNK):
      rng = np.random.default_rng([cfg.seed, split_id, start])
      images, labels, seg = concept_shapes.render(rng, min(_CHUNK, count - start), cfg.size)
      for i in range(len(labels)):
        yield start + i, {"image": images[i], "segmentation": seg[i], "label": labels[i]}


def list_image_folder(root: str) -> dict[str, list[tuple[str, str]]]:
  """Returns {split: [(path, class_name), ...]} sorted, checking the layout."""
  rootp = pathlib.Path(root).expanduser()
  if not rootp.is_dir():
    raise UserError(f"image folder {root!r} does not exist; pass "
                    "--config.dataset.data_dir=ROOT with ROOT/<split>/<class>/*.png")
  splits = {}
  for split_dir in sorted(p for p in rootp.iterdir() if p.is_dir() and not p.name.startswith(".")):
    files = [(str(f), class_dir.name)
             for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir())
             for f in sorted(class_dir.iterdir())
             if f.suffix.lower() in _IMAGE_SUFFIXES]
    if files:
      splits[split_dir.name] = files
  if not splits:
    raise UserError(f"image folder {root!r} holds no images; expected "
                    "ROOT/<split>/<class>/*.png|*.jpg (for example ROOT/train/cat/1.png)")
  return splits


def _load_image(path: str, size: int, channels: int) -> np.ndarray:
  with Image.open(path) as im:
    im = im.convert("RGB" if channels == 3 else "L").resize((size, size), Image.BILINEAR)
    arr = np.asarray(im, np.uint8)
  return arr if channels == 3 else arr[..., None]


class ImageFolderConfig(tfds.core.BuilderConfig):
  """A folder and an image size; the name is a fingerprint of both and of the files."""

  def __init__(self, *, root: str, size: int):
    self.root, self.size = os.path.abspath(os.path.expanduser(root)), size
    self.files = list_image_folder(self.root)
    self.class_names = sorted({c for files in self.files.values() for _, c in files})
    self.channels = self._channels()
    digest = hashlib.sha1(repr((self.root, size)).encode())
    for split, files in self.files.items():
      for path, _ in files:
        st = os.stat(path)
        digest.update(f"{split}|{path}|{st.st_size}|{st.st_mtime_ns}".encode())
    super().__init__(name=f"s{size}_{digest.hexdigest()[:16]}")

  def _channels(self) -> int:
    """1 when every image is grayscale, else 3; unreadable files are named."""
    bad, modes = [], set()
    for files in self.files.values():
      for path, _ in files:
        try:
          with Image.open(path) as im:
            im.verify()
            modes.add(im.mode)
        except Exception:  # PIL raises many types for a corrupt file
          bad.append(path)
    if bad:
      shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
      raise UserError(f"cannot read {len(bad)} image file(s): {shown}; fix or remove them")
    return 1 if modes <= {"L", "1", "I;16", "I"} else 3


class ImageFolder(tfds.core.GeneratorBasedBuilder):
  """A user's ROOT/<split>/<class>/ images, resized to a square and stored once."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    cfg = self.builder_config
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            "image": _uint8((cfg.size, cfg.size, cfg.channels)),
            "label": tfds.features.ClassLabel(names=cfg.class_names),
        }),
        supervised_keys=("image", "label"),
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(root=cfg.root),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(files)
            for split, files in self.builder_config.files.items()}

  def _generate_examples(self, files):
    cfg = self.builder_config
    index = {name: i for i, name in enumerate(cfg.class_names)}
    for i, (path, class_name) in enumerate(files):
      yield i, {"image": _load_image(path, cfg.size, cfg.channels), "label": index[class_name]}
