"""MNIST-like data from its original IDX files, held in memory.

MNIST, Fashion-MNIST and KMNIST are distributed as four IDX files, gzipped or
not: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
`t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`. A folder holding them,
flat or in torchvision's `ROOT/MNIST/raw/` layout, is the data set `idx`:

    python -m interp_jax.train --config=configs/mnist.py --workdir=runs/mnist \
        --config.dataset.name=idx --config.dataset.data_dir=~/data/mnist

    folder = IdxFolder("~/data/mnist")       # finds the files; reads headers and labels
    folder.splits                            # {"train": 60000, "test": 10000}
    images, labels = folder.load("train")    # uint8 [N, 28, 28, 1], int64 [N]
    array = read_idx("t10k-labels-idx1-ubyte.gz")   # any IDX file, as numpy

Split `train` is the `train-*` pair and `test` the `t10k-*` pair; there is no
stored validation split, so sources.open_split holds one out of train by
content (config.dataset.holdout_fraction). Class i is named str(i), for every
i up to the largest label of either split ("0" to "9" for MNIST).

IDX: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C
int32, 0x0D float32, 0x0E float64), the number of dimensions, one big-endian
uint32 per dimension, then the values, big-endian, in C order. A file is
gzipped when it starts with gzip's magic bytes, whatever its name says.
"""

import gzip
import math
import os
import pathlib
import zlib

import numpy as np

from interp_jax.errors import UserError

_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read_bytes(path: pathlib.Path) -> bytes:
  raw = path.read_bytes()
  if not raw.startswith(_GZIP_MAGIC):
    return raw
  try:
    return gzip.decompress(raw)
  except (EOFError, OSError, zlib.error) as e:  # a cut or damaged download
    raise UserError(f"IDX file {path} is a damaged gzip file ({e}); download it again") from None


def _header(path: pathlib.Path, raw: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
  """(value type, dimensions, offset of the values) of an IDX file's bytes."""
  if len(raw) < 4:
    raise UserError(f"IDX file {path} is truncated: {len(raw)} bytes, shorter than a header")
  if raw[:2] != b"\0\0":
    raise UserError(f"{path} is not an IDX file: its magic number 0x{raw[:4].hex()} does not "
                    f"start with two zero bytes")
  if raw[2] not in _TYPES:
    raise UserError(f"IDX file {path} has the unknown type code 0x{raw[2]:02X}; known: "
                    + ", ".join(f"0x{c:02X} {t.name}" for c, t in _TYPES.items()))
  ndim, offset = raw[3], 4 + 4 * raw[3]
  if len(raw) < offset:
    raise UserError(f"IDX file {path} is truncated: its header names {ndim} dimensions "
                    f"but the file ends after {len(raw)} bytes")
  dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
  return _TYPES[raw[2]], dims, offset


def read_idx(path) -> np.ndarray:
  """The array an IDX file holds, in native byte order (a fresh, writable array).

  Args:
    path: an IDX file, gzipped or not (told apart by its first bytes).
  Returns:
    An array of the file's type and dimensions.
  Raises:
    UserError naming the file: a magic number that is not IDX's, an unknown
    type code, fewer bytes than the header promises, or bytes after them.
  """
  path = pathlib.Path(path).expanduser()
  raw = _read_bytes(path)
  dtype, dims, offset = _header(path, raw)
  # Python integers: a corrupt header's dimensions must not overflow the product.
  expected, held = math.prod(dims) * dtype.itemsize, len(raw) - offset
  if held != expected:
    what = "is truncated" if held < expected else f"has {held - expected:,} trailing bytes"
    raise UserError(f"IDX file {path} {what}: its header {'x'.join(map(str, dims))} of "
                    f"{dtype.name} needs {expected:,} bytes of values, it holds {held:,}")
  values = np.frombuffer(raw, dtype, math.prod(dims), offset).reshape(dims)
  return values.astype(dtype.newbyteorder("="))


def _find(path: pathlib.Path, name: str) -> pathlib.Path | None:
  """`name` or `name.gz` in a folder; the uncompressed one when both (torchvision keeps both)."""
  for candidate in (path / name, path / f"{name}.gz"):
    if candidate.is_file():
      return candidate
  return None


def _candidates(root: pathlib.Path) -> list[pathlib.Path]:
  """The folder itself, ROOT/raw and torchvision's ROOT/<MNIST|FashionMNIST|KMNIST>/raw."""
  subdirs = sorted(p / "raw" for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
  return [root, root / "raw"] + subdirs


class IdxFolder:
  """The four IDX files of an MNIST-like data set; splits train and test.

  Finding the files reads their headers and the labels (small); `load` reads
  a split's images.
  """

  def __init__(self, data_dir: str):
    if not data_dir:
      raise UserError("dataset idx needs --config.dataset.data_dir=FOLDER holding "
                      + ", ".join(f"{n}[.gz]" for pair in FILES.values() for n in pair))
    self.root = pathlib.Path(os.path.expanduser(data_dir))
    self.files = self._locate()
    self._labels = {split: self._read_labels(split) for split in FILES}
    self._image_dims = {}
    for split in FILES:  # train first: the test images are checked against its size
      self._image_dims[split] = self._read_image_dims(split)
    largest = max((int(v.max()) for v in self._labels.values() if v.size), default=0)
    self.class_names = tuple(str(i) for i in range(largest + 1))

  def _locate(self) -> dict[str, tuple[pathlib.Path, pathlib.Path]]:
    names = [n for pair in FILES.values() for n in pair]
    found = [folder for folder in _candidates(self.root)
             if all(_find(folder, n) for n in names)]
    if not found:
      where = "does not hold" if self.root.is_dir() else "does not exist; it should hold"
      raise UserError(f"IDX folder {self.root} {where} the MNIST-like files "
                      + ", ".join(f"{n}[.gz]" for n in names)
                      + " (directly, or in torchvision's ROOT/MNIST/raw/ layout)")
    if len(found) > 1:
      raise UserError(f"IDX folder {self.root} holds more than one data set ("
                      + ", ".join(str(f) for f in found)
                      + "); point --config.dataset.data_dir at one of them")
    return {split: (_find(found[0], i), _find(found[0], l)) for split, (i, l) in FILES.items()}

  def _read_labels(self, split: str) -> np.ndarray:
    path = self.files[split][1]
    labels = read_idx(path)
    if labels.ndim != 1:
      raise UserError(f"IDX file {path} should hold labels (1-D, N), but its values are "
                      f"{'x'.join(map(str, labels.shape))}")
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and labels.min() < 0):
      raise UserError(f"IDX file {path} should hold labels as non-negative integers, "
                      f"but holds {labels.dtype.name} values")
    return labels.astype(np.int64)

  def _read_image_dims(self, split: str) -> tuple[int, ...]:
    """The images' dimensions from the header (decompressing only its first bytes)."""
    path = self.files[split][0]
    with open(path, "rb") as f:
      gzipped = f.read(2) == _GZIP_MAGIC
    opener = gzip.open if gzipped else open
    try:
      with opener(path, "rb") as f:
        head = f.read(4 + 4 * 255)
    except (EOFError, OSError, zlib.error) as e:
      raise UserError(f"IDX file {path} is a damaged gzip file ({e}); download it again") \
          from None
    dtype, dims, _ = _header(path, head)
    labels = self.files[split][1]
    if len(dims) != 3 or dtype != np.uint8:
      raise UserError(f"IDX file {path} should hold images (3-D, N x H x W of uint8), but its "
                      f"header says {'x'.join(map(str, dims))} of {dtype.name}")
    if split != "train" and dims[1:] != self._image_dims["train"][1:]:
      raise UserError(f"IDX file {path} holds {dims[1]}x{dims[2]} images but the training "
                      f"images are {'x'.join(map(str, self._image_dims['train'][1:]))}")
    if dims[0] != len(self._labels[split]):
      raise UserError(f"IDX file {path} holds {dims[0]:,} images but {labels} holds "
                      f"{len(self._labels[split]):,} labels; they must be a pair")
    return dims

  @property
  def splits(self) -> dict[str, int]:
    return {split: len(labels) for split, labels in self._labels.items()}

  @property
  def image_dims(self) -> tuple[int, int]:
    """(H, W) of the training images."""
    return self._image_dims["train"][1:]

  def load(self, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images [N, H, W, 1], int64 labels [N]) of split train or test."""
    images = read_idx(self.files[split][0])
    if images.shape != self._image_dims[split]:  # the file changed since its header was read
      raise UserError(f"IDX file {self.files[split][0]} changed while it was being read; "
                      "run again")
    return images[..., None], self._labels[split]
