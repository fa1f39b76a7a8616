"""TFDS builders of ours, written as array_record with no TensorFlow.

`ConceptShapes` generates the built-in data set; `ImageFolder` converts a
user's `ROOT/<split>/<class>/*.png|*.jpg` once (TFDS's own ImageFolder imports
TensorFlow), center-cropped to a square: the largest centred square resized
to `size`, or with `resize` ImageNet's evaluation preprocessing (the shorter
side resized to 256, the centre 224 x 224 cut out, as torchvision's
Resize(256) + CenterCrop(224)). Folders named by WordNet ids (ImageNet's
ROOT/val/n01440764/*.JPEG) are ordinary class folders: sorted, the 1000
ImageNet-1k wnids are in the standard class order (torchvision's ImageFolder
sorts too), and `classes="imagenet1k"` keeps that 1000-class label space for a
folder holding only some of them.

Both store images as `tfds.features.Tensor` of uint8 with bytes encoding:
`tfds.features.Image` would import TensorFlow to encode PNGs, and the default
int64-list encoding of a Tensor serialises six times slower.

    builder = ConceptShapes(config=concept_shapes_config(size=32, seed=0),
                            data_dir=data_dir, file_format="array_record")
    builder.download_and_prepare()
    source = builder.as_data_source(split="train")   # random access, no TF
"""

import hashlib
import importlib.resources
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


def fit_image(im: Image.Image, size: int, resize: int = 0) -> Image.Image:
  """A size x size centre crop of a PIL image, resampled bilinearly.

  resize = 0: the largest centred square, resized to size (a no-op on a
  size x size image). resize >= size: the shorter side scaled to `resize` and
  the centre size x size cut out, with torchvision's arithmetic (Resize(resize)
  then CenterCrop(size): the longer side int(resize * long / short), the crop
  offset round((side - size) / 2)), so ImageNet weights see what they were
  evaluated on.
  """
  w, h = im.size
  if resize:
    short, long = min(w, h), max(w, h)
    scaled = (resize, int(resize * long / short))
    w, h = scaled if w <= h else scaled[::-1]
    im = im.resize((w, h), Image.BILINEAR) if (w, h) != im.size else im
    top, left = int(round((h - size) / 2)), int(round((w - size) / 2))
    return im.crop((left, top, left + size, top + size))
  side = min(w, h)
  top, left = (h - side) // 2, (w - side) // 2
  if (top, left, side) != (0, 0, w):
    im = im.crop((left, top, left + side, top + side))
  return im.resize((size, size), Image.BILINEAR) if side != size else im


def _load_image(path: str, size: int, channels: int, resize: int = 0) -> np.ndarray:
  with Image.open(path) as im:
    arr = np.asarray(fit_image(im.convert("RGB" if channels == 3 else "L"), size, resize),
                     np.uint8)
  return arr if channels == 3 else arr[..., None]


IMAGENET1K = "imagenet1k"


def imagenet1k_wnids() -> tuple[str, ...]:
  """The 1000 ImageNet-1k (ILSVRC 2012) wnids in the standard class order (sorted).

  Read from the list TFDS ships for imagenet2012; sorted, index i is the class
  i of torchvision's ImageNet weights (tench n01440764 = 0, toilet tissue
  n15075141 = 999).
  """
  base = importlib.resources.files("tensorflow_datasets")
  for rel in ("datasets/imagenet2012/labels.txt", "image_classification/imagenet2012_labels.txt"):
    if (base / rel).is_file():
      return tuple(sorted((base / rel).read_text().split()))
  raise UserError("this tensorflow-datasets ships no ImageNet label list; use "
                  "--config.dataset.classes='' (the sorted folder names)")


def _class_names(files: dict, classes: str) -> list[str]:
  """The label space: the sorted folder names, or the 1000 ImageNet-1k wnids."""
  present = sorted({c for split_files in files.values() for _, c in split_files})
  if not classes:
    return present
  if classes != IMAGENET1K:
    raise UserError(f"unknown config.dataset.classes {classes!r}; use '' (the sorted "
                    f"folder names) or {IMAGENET1K}")
  names = imagenet1k_wnids()
  unknown = sorted(set(present) - set(names))
  if unknown:
    raise UserError(f"classes={IMAGENET1K} needs class folders named by ImageNet-1k wnids "
                    f"(like n01440764); these are not: {', '.join(unknown[:5])}")
  return list(names)


class ImageFolderConfig(tfds.core.BuilderConfig):
  """A folder, an image size and its crop; the name is a fingerprint of them and of the files.

  resize: 0 (the largest centred square) or the shorter side before the
  centre crop (ImageNet: 256 for size 224), see fit_image. classes: "" (the
  sorted folder names) or "imagenet1k" (the 1000 ImageNet-1k wnids in their
  standard order, whichever of them the folder holds).
  """

  def __init__(self, *, root: str, size: int, resize: int = 0, classes: str = ""):
    if resize and resize < size:
      raise UserError(f"config.dataset.resize = {resize} must be 0 or at least the "
                      f"image_size {size} that is cut out of it")
    self.root, self.size = os.path.abspath(os.path.expanduser(root)), size
    self.resize, self.classes = int(resize), classes
    self.files = list_image_folder(self.root)
    self.class_names = _class_names(self.files, classes)
    self.channels = self._channels()
    # "crop": the images are centre-cropped (earlier copies were stretched to the square)
    digest = hashlib.sha1(repr((self.root, size, "crop", self.resize, classes)).encode())
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
  """A user's ROOT/<split>/<class>/ images, centre-cropped to a square and stored once."""

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
      yield i, {"image": _load_image(path, cfg.size, cfg.channels, cfg.resize),
                "label": index[class_name]}
