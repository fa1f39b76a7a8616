"""Data sources: one random-access interface over every data set we read.

    meta = sources.describe(config.dataset)                 # checks, no compute
    train = sources.open_split(config.dataset, "train")      # Source
    batch = train.get(np.array([3, 1, 4]))                 # {"image": uint8 NHWC, "label": int32}

`config.dataset.name` is `concept_shapes` (built here on first use),
`image_folder` (a user's ROOT/<split>/<class>/ images), `idx` (MNIST,
Fashion-MNIST or KMNIST as their four original IDX files in
`config.dataset.data_dir`, data/idx.py) or a TFDS catalog name (`mnist`,
`cifar10`, `imagenet2012`, ...) prepared in array_record format under
`config.dataset.data_dir`. Splits under 2 GiB are held in memory, and TFDS
and image-folder splits up to 1 GiB are kept for later opens in the process
(a reproduction's runs and analyses open the same splits many times); larger
ones are read example by example from array_record.

A data set without a stored validation split (MNIST, CIFAR-10, most image
folders) has one held out of train when `config.dataset.holdout_fraction` >
0: the round(fraction * N) training images with the smallest content digests
under `config.dataset.holdout_seed` (data/validation.py). It is chosen by what the
images are, so the same images stored in another order give the same
validation images, and training never reads one of them.

Images of another size are centre-cropped to `config.dataset.image_size`: the
largest centred square resized, or, with `config.dataset.resize = R` (optional
field, 0 = off), the shorter side resized to R and the centre image_size
square cut out (ImageNet: resize 256, image_size 224). An image folder named
by WordNet ids (ROOT/val/n01440764/*.JPEG) may set `config.dataset.classes =
"imagenet1k"` (optional field) to keep ImageNet-1k's 1000 classes in their
standard order whichever of them it holds.
"""

import collections
import dataclasses
import os
from typing import Any

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds
from tqdm.auto import tqdm

from interp_jax.data import builders, idx
from interp_jax.data.arrays import ArraySource
from interp_jax.data.validation import holdout, holdout_size
from interp_jax.errors import UserError

_IN_MEMORY_BYTES = 2 << 30  # splits under 2 GiB are read once into numpy arrays
_KEPT_BYTES = 1 << 30       # in-memory splits kept for the next open, at most,
_KEPT_SPLITS = 16           # and at most this many


@dataclasses.dataclass(frozen=True)
class Meta:
  """What the model and the analyses need to know about a data set."""
  name: str
  class_names: tuple[str, ...]
  image_shape: tuple[int, int, int]
  splits: dict[str, int]
  class_tree: dict[str, Any] | None = None   # {group: [class or subtree, ...]}
  concepts: tuple[str, ...] = ()              # concept names of the segmentation

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


class Source:
  """Random access to one split: `len(src)`, `src.get(indices) -> dict of arrays`."""

  def __init__(self, data_source, image_size: int | None, keys=("image", "label"),
               resize: int = 0):
    self._ds, self._size, self.keys = data_source, image_size, tuple(keys)
    self._resize = resize
    self._arrays, self._len = None, len(data_source)
    if len(data_source) and self._bytes_estimate() <= _IN_MEMORY_BYTES:
      self._arrays = self._read(np.arange(len(data_source)), progress=True)
      self._ds = None  # all read: no reader held open (a kept split may live long)
      for v in self._arrays.values():  # read-only: a kept split is shared (_kept)
        v.flags.writeable = False

  @property
  def nbytes(self) -> int | None:
    """The bytes held in memory; None for a split read from disk at each get."""
    return None if self._arrays is None else sum(v.nbytes for v in self._arrays.values())

  def _bytes_estimate(self) -> int:
    first = self._read(np.array([0]))
    return len(self._ds) * sum(v.nbytes for v in first.values())

  def __len__(self) -> int:
    return self._len

  def _read(self, indices: np.ndarray, progress: bool = False) -> dict[str, np.ndarray]:
    chunks, step = [], 4096
    starts = range(0, len(indices), step)
    for s in tqdm(starts, desc="loading split", disable=not progress or len(starts) < 4,
                  leave=False):
      items = self._ds.__getitems__([int(i) for i in indices[s:s + step]])
      chunks.append({k: np.stack([self._fit(it[k]) if k == "image" else np.asarray(it[k])
                                  for it in items]) for k in self.keys})
    return {k: np.concatenate([c[k] for c in chunks]) for k in self.keys}

  def _fit(self, image: np.ndarray) -> np.ndarray:
    """Centre-crops an image of another size to the configured square (builders.fit_image)."""
    image = np.asarray(image, np.uint8)
    if image.ndim == 2:
      image = image[..., None]
    if self._size is None or image.shape[:2] == (self._size, self._size):
      return image
    pil = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)
    out = np.asarray(builders.fit_image(pil, self._size, self._resize), np.uint8)
    return out[..., None] if out.ndim == 2 else out

  def get(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    indices = np.asarray(indices)
    if self._arrays is not None:
      return {k: v[indices] for k, v in self._arrays.items()}
    return self._read(indices)


def _data_dir(cfg) -> str | None:
  return os.path.expanduser(cfg.data_dir) if cfg.get("data_dir") else None


def _resize(cfg) -> int:
  """config.dataset.resize (optional): the shorter side before the centre crop, 0 = off."""
  resize = int(cfg.get("resize", 0) or 0)
  if resize and (not cfg.image_size or resize < cfg.image_size):
    raise UserError(f"config.dataset.resize = {resize} needs config.dataset.image_size set "
                    f"and at most resize (got {cfg.image_size})")
  return resize


def _builder(cfg):
  """The TFDS builder of `cfg.name`, prepared and ready to read."""
  name = cfg.name
  if name == "concept_shapes":
    builder = builders.ConceptShapes(
        config=builders.concept_shapes_config(
            size=cfg.image_size, seed=cfg.seed, num_train=cfg.num_train, num_test=cfg.num_test,
            num_validation=cfg.get("num_validation", 0)),
        data_dir=_data_dir(cfg), file_format="array_record")
    if not builder.is_prepared():
      builder.download_and_prepare()
    return builder
  if name == "image_folder":
    if not cfg.get("data_dir"):
      raise UserError("dataset image_folder needs --config.dataset.data_dir=ROOT "
                      "holding ROOT/<split>/<class>/*.png|*.jpg")
    prepared = cfg.get("prepared_dir") or None
    builder = builders.ImageFolder(
        config=builders.ImageFolderConfig(root=cfg.data_dir, size=cfg.image_size,
                                          resize=_resize(cfg), classes=cfg.get("classes", "")),
        data_dir=os.path.expanduser(prepared) if prepared else None,
        file_format="array_record")
    if not builder.is_prepared():
      builder.download_and_prepare()
    return builder
  return _catalog_builder(cfg)


def _catalog_builder(cfg):
  where = _data_dir(cfg) or tfds.core.constants.DATA_DIR
  hint = ("or use the built-in data with --config.dataset.name=concept_shapes, "
          "or your own images with --config.dataset.name=image_folder")
  try:
    builder = tfds.builder(cfg.name, data_dir=_data_dir(cfg))
  except tfds.core.DatasetNotFoundError:  # only a wrong name; any other error is TFDS's own
    raise UserError(f"unknown data set {cfg.name!r}; use a TFDS "
                    f"catalog name, concept_shapes or image_folder") from None
  if not builder.is_prepared():
    raise UserError(
        f"data set {cfg.name!r} is not prepared under {where} and cannot be downloaded here; "
        f"prepare it in array_record format (pip install 'interp_jax[tf]', then "
        f"tfds build {cfg.name} --file_format=array_record --data_dir={where}) {hint}")
  formats = {str(getattr(f, "value", f)) for f in [builder.info.file_format] if f}
  if formats and "array_record" not in formats:
    raise UserError(
        f"data set {cfg.name!r} under {where} is stored as {formats.pop()}, but random access "
        f"needs array_record; re-prepare it with tfds build {cfg.name} "
        f"--file_format=array_record --data_dir={where}")
  return builder


def _stored(names, split: str) -> str | None:
  """The stored name of `split` among `names`: validation may be stored as `val`."""
  if split in names:
    return split
  if split == "validation" and "val" in names:
    return "val"
  return None


def _holds_out(names, cfg) -> bool:
  """True when the validation split is a hold-out of train (none is stored)."""
  return (_stored(names, "validation") is None and "train" in names
          and cfg.get("holdout_fraction", 0.0) > 0)


def _with_holdout(meta: Meta, cfg) -> Meta:
  """Meta whose splits count a validation hold-out of train, when there is one."""
  splits = dict(meta.splits)
  if "val" in splits and "validation" not in splits:
    splits["validation"] = splits.pop("val")
  if _holds_out(meta.splits, cfg):
    splits["validation"] = holdout_size(splits["train"], cfg.holdout_fraction)
    splits["train"] -= splits["validation"]
  return dataclasses.replace(meta, splits=splits)


def _tfds_meta(cfg) -> Meta:
  info = _builder(cfg).info
  image_key, label_key = info.supervised_keys or ("image", "label")
  shape = info.features[image_key].shape
  channels = shape[-1] if len(shape) == 3 else 1
  size = cfg.image_size or shape[0]
  if size is None:
    raise UserError(f"data set {cfg.name!r} has images of varying size; "
                    "set --config.dataset.image_size")
  metadata = dict(info.metadata or {})
  return Meta(
      name=cfg.name,
      class_names=tuple(info.features[label_key].names),
      image_shape=(size, size, channels),
      splits={k: v.num_examples for k, v in info.splits.items()},
      class_tree=metadata.get("class_tree"),
      concepts=tuple(metadata.get("concepts", ())),
  )


def _idx_meta(cfg) -> Meta:
  folder = idx.IdxFolder(cfg.get("data_dir"))
  height, width = folder.image_dims
  if not cfg.image_size and height != width:
    raise UserError(f"the IDX images are {height}x{width}; set --config.dataset.image_size "
                    "to crop them to a square")
  size = cfg.image_size or height
  return Meta(name=cfg.name, class_names=folder.class_names, image_shape=(size, size, 1),
              splits=folder.splits)


def describe(cfg) -> Meta:
  """Prepares the data set if it is ours, checks it exists, and returns its Meta.

  Meta.splits names `validation` whether it is stored (`validation`, `val`) or
  held out of train (then `train` counts what training reads).
  """
  return _with_holdout(_idx_meta(cfg) if cfg.name == "idx" else _tfds_meta(cfg), cfg)


_KEPT: collections.OrderedDict = collections.OrderedDict()  # key -> Source, oldest first


def _kept(key: tuple, make) -> Source:
  """make(), or the Source it made before under `key` when that one is held in memory:
  reading a split decodes every record. The most recently used are kept, up to
  _KEPT_SPLITS and _KEPT_BYTES in all; their arrays are read-only, and `get` returns
  copies."""
  if key in _KEPT:
    _KEPT.move_to_end(key)
    return _KEPT[key]
  src = make()
  if src.nbytes is not None and src.nbytes <= _KEPT_BYTES:
    _KEPT[key] = src
    while (len(_KEPT) > _KEPT_SPLITS
           or sum(s.nbytes for s in _KEPT.values()) > _KEPT_BYTES):
      _KEPT.popitem(last=False)
  return src


def _tfds_splits(cfg, with_segmentation: bool):
  """(stored split names, stored split -> Source) of a TFDS builder."""
  builder = _builder(cfg)
  image_key, label_key = builder.info.supervised_keys or ("image", "label")
  keys = [image_key, label_key] + (["segmentation"] if with_segmentation else [])
  # The prepared files, by path and the file written last (its inode and times): data
  # prepared again is read again.
  info = os.path.join(builder.data_dir, "dataset_info.json")
  written = None
  if os.path.exists(info):
    st = os.stat(info)
    written = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)

  def open_stored(stored):
    src = _kept((str(builder.data_dir), written, stored, tuple(keys), cfg.image_size,
                 _resize(cfg)),
                lambda: Source(builder.as_data_source(split=stored), cfg.image_size,
                               keys=keys, resize=_resize(cfg)))
    if (image_key, label_key) != ("image", "label"):
      src = _Renamed(src, {image_key: "image", label_key: "label"})
    return src
  return set(builder.info.splits), open_stored


def _idx_splits(cfg, with_segmentation: bool):
  """(stored split names, stored split -> source) of an IDX folder, held in memory."""
  if with_segmentation:
    raise UserError("dataset idx has no segmentation masks; dissect its models with a "
                    "Broden-format probe set (python -m interp_jax.dissect --config.broden=DIR)")
  folder = idx.IdxFolder(cfg.get("data_dir"))

  def open_stored(stored):
    images, labels = folder.load(stored)
    if not cfg.image_size or images.shape[1:3] == (cfg.image_size, cfg.image_size):
      return ArraySource(images, labels)
    # Another size: cropped and resized image by image, as every other source is.
    return Source(_ArrayItems(images, labels), cfg.image_size, resize=_resize(cfg))
  return set(folder.splits), open_stored


def open_split(cfg, split: str, with_segmentation: bool = False):
  """A source over one split; `with_segmentation` adds concept_shapes' masks.

  Without a stored validation split, `validation` is a hold-out of train
  chosen by image content (`holdout`, config.dataset.holdout_fraction and
  holdout_seed) and `train` is the rest: training never reads a validation
  image.
  """
  opener = _idx_splits if cfg.name == "idx" else _tfds_splits
  names, open_stored = opener(cfg, with_segmentation)
  held_out = _holds_out(names, cfg) and split in ("train", "validation")
  stored = "train" if held_out else _stored(names, split)
  if stored is None:
    raise UserError(f"data set {cfg.name!r} has no split {split!r}; it has "
                    f"{sorted(names)}" + (
                        " (set config.dataset.holdout_fraction > 0 to hold out a validation "
                        "split of train)" if split == "validation" else ""))
  src = open_stored(stored)
  if held_out:
    train, val = holdout(src, cfg.holdout_fraction, cfg.get("holdout_seed", 0))
    src = Subset(src, train if split == "train" else val)
  return src


class _ArrayItems:
  """Arrays as a TFDS-like data source (`__getitems__`), for Source to fit them."""

  def __init__(self, images, labels):
    self._images, self._labels = images, labels

  def __len__(self):
    return len(self._labels)

  def __getitems__(self, indices):
    return [{"image": self._images[i], "label": self._labels[i]} for i in indices]


class _Renamed:
  """A Source whose feature names follow ours (image, label)."""

  def __init__(self, src, names):
    self._src, self._names = src, names

  def __len__(self):
    return len(self._src)

  def get(self, indices):
    return {self._names.get(k, k): v for k, v in self._src.get(indices).items()}


class Subset:
  """The examples `indices` of a source, in that order (a source itself)."""

  def __init__(self, source, indices):
    self._source, self.indices = source, np.asarray(indices)

  def __len__(self):
    return len(self.indices)

  def get(self, indices):
    return self._source.get(self.indices[np.asarray(indices)])


class FirstN:
  """The first n examples of a source (a source itself)."""

  def __init__(self, source, n: int):
    self._source, self._n = source, min(n, len(source))

  def __len__(self):
    return self._n

  def get(self, indices):
    return self._source.get(indices)
