"""Broden, the probe set of network dissection (Bau et al. 2017), as a source.

    src = open_broden("~/broden1_224", image_size=224, split="val")
    batch = src.get(np.arange(8))
    batch["image"]     # uint8 [8, 224, 224, 3]
    batch["labels"]    # int32 [8, L, 112, 112]: concept id per pixel and layer, -1 = none
    src.concepts.names[batch["labels"][0, 0, 5, 7]]    # e.g. "sky"
    src.get(np.arange(8), labels=False)  # the images alone, no mask decoded

The format, as NetDissect's own readers take it (CSAILVision/NetDissect
loadseg.py, the README written by its src/joinseg.py, and NetDissect-Lite
loader/data_loader.py):

- index.csv: `image,split,ih,iw,sh,sw` (file under images/, "train" or "val",
  image and mask sizes), then one column per category (broden1_224: color,
  object, part, material, scene, texture). A cell holds zero or more entries
  split by ";", dominant first: a decimal number is an image-level label of the
  whole image (scene, texture), anything else a PNG under images/ whose pixels
  hold label numbers as red + 256 * green (0 = unlabelled).
- label.csv: `number,name,category,frequency,coverage,syns`, the category field
  like "material(36);object(3)": each category the label occurs in with its
  count of images, most first. Number 0 ("-") means none and is not a concept.
- category.csv and the dense per-category codes in c_*.csv are not needed here.

Concepts are renumbered densely: id k is the k-th label of label.csv by number,
so broden's label n has id n - 1 where the numbers run 1..K without gaps. A
batch's labels have L layers for the whole source: for each category, in
index.csv's column order, as many layers as the most entries any row has in it
(one per mask file, or per image-level label, which fills its layer). Entries a
row lacks are -1. Rows keep index.csv's order; reading is deterministic.
"""

import csv
import dataclasses
import os
import re

import numpy as np
from PIL import Image

from interp_jax.errors import UserError

_META = ("image", "split", "ih", "iw", "sh", "sw")
_CATEGORY = re.compile(r"^([^(]+)\((\d+)\)$")


@dataclasses.dataclass(frozen=True)
class ProbeConcepts:
  """The concepts of a probe set: names, and each one's (main) category."""
  names: tuple[str, ...]        # index = concept id in the label maps
  categories: tuple[str, ...]   # the category the label occurs in most often


def _read_csv(path: str) -> tuple[list[str], list[dict]]:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} does not exist: a Broden directory (NetDissect's "
                            "broden1_224) holds index.csv and label.csv")
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    return list(reader.fieldnames or ()), list(reader)


def _read_labels(path: str) -> tuple[ProbeConcepts, dict[int, int]]:
  """label.csv -> the concepts and {broden label number: dense concept id}."""
  fields, rows = _read_csv(path)
  if not {"number", "name", "category"} <= set(fields):
    raise UserError(f"{path} needs the columns number, name and category, has {fields}")
  labels = {}
  for row in rows:
    if not row["number"].strip().isdigit():
      raise UserError(f"{path}: label number {row['number']!r} is not a whole number")
    number = int(row["number"])
    if number == 0:
      continue  # "-": no label
    if number in labels:
      raise UserError(f"{path} lists label number {number} twice")
    counts = [_CATEGORY.match(c.strip()) for c in row["category"].split(";") if c.strip()]
    if not counts or not all(counts):
      raise UserError(f"{path}: label {number} has category {row['category']!r}, not "
                      "like 'object(12);part(3)'")
    main = max(counts, key=lambda m: int(m.group(2))).group(1)  # ties: the first listed
    labels[number] = (row["name"], main)
  numbers = sorted(labels)
  concepts = ProbeConcepts(tuple(labels[n][0] for n in numbers),
                           tuple(labels[n][1] for n in numbers))
  return concepts, {n: i for i, n in enumerate(numbers)}


class BrodenSource:
  """Random access to a Broden directory: `len(src)`, `src.get(indices, labels=True) -> dict`."""

  def __init__(self, root: str, image_size: int, split: str | None = None, categories=None):
    self.root = os.path.expanduser(str(root))
    if (isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer))
        or image_size < 1):
      raise UserError(f"image_size must be a positive integer, got {image_size!r}")
    self.image_size = int(image_size)
    index = os.path.join(self.root, "index.csv")
    fields, rows = _read_csv(index)
    label_csv = os.path.join(self.root, "label.csv")
    self.concepts, ids = _read_labels(label_csv)
    if missing := [f for f in _META if f not in fields]:
      raise UserError(f"{index} lacks the columns {missing}; Broden's begin {_META}")
    present = tuple(f for f in fields if f not in _META)
    if isinstance(categories, str):
      categories = (categories,)
    if categories is None:
      categories = present
    elif unknown := [c for c in categories if c not in present]:
      raise UserError(f"unknown categories {unknown}: {index} has {list(present)}")
    self.categories = tuple(c for c in present if c in categories)  # index.csv's order
    if split is not None:
      rows = [r for r in rows if r["split"] == split]
      if not rows:
        raise UserError(f"no rows of split {split!r} in {index}")
    if not rows:
      raise UserError(f"{index} lists no images")
    shapes = {(r["sh"], r["sw"]) for r in rows}
    if len(shapes) > 1:
      raise UserError(f"{index} mixes mask sizes (sh, sw) {sorted(shapes)[:2]}; a source "
                      "needs one")
    (sh, sw), = shapes
    if not (sh.isdigit() and sw.isdigit()):
      raise UserError(f"{index}: mask size sh, sw = {sh!r}, {sw!r} are not whole numbers")
    self.mask_shape = (int(sh), int(sw))
    # Each row: its image file and, per category, its entries (file path or concept id).
    self._rows = []
    for r in rows:
      image = os.path.join(self.root, "images", r["image"])
      if not os.path.isfile(image):
        raise FileNotFoundError(f"{index} lists image {r['image']}, missing under images/")
      entries = []
      for cat in self.categories:
        cell = []
        for e in (e.strip() for e in (r[cat] or "").split(";")):
          if not e:
            continue
          if e.isdigit():  # an image-level label
            if int(e) not in ids:
              raise UserError(f"{index}: image {r['image']} has {cat} label {e}, which "
                              "label.csv does not list")
            cell.append(ids[int(e)])
          else:
            path = os.path.join(self.root, "images", e)
            if not os.path.isfile(path):
              raise FileNotFoundError(f"{index}: the {cat} mask {e} of image "
                                      f"{r['image']} is missing under images/")
            cell.append(path)
        entries.append(cell)
      self._rows.append((image, entries))
    self._depth = [max(len(e[c]) for _, e in self._rows) for c in range(len(self.categories))]
    self.num_layers = sum(self._depth)
    # Broden label number -> concept id: -1 for 0 (none), -2 for numbers label.csv lacks.
    self._lut = np.full(max(ids, default=0) + 1, -2, np.int32)
    self._lut[0] = -1
    self._lut[list(ids)] = list(ids.values())

  def __len__(self) -> int:
    return len(self._rows)

  def _decode(self, path: str) -> np.ndarray:
    """A mask PNG -> concept ids [sh, sw], from label number = red + 256 * green."""
    with Image.open(path) as im:
      rgb = np.asarray(im.convert("RGB"), np.int32)
    if rgb.shape[:2] != self.mask_shape:
      raise UserError(f"mask {path} is {rgb.shape[1]}x{rgb.shape[0]} (w x h), index.csv says "
                      f"{self.mask_shape[1]}x{self.mask_shape[0]}")
    number = rgb[..., 0] + 256 * rgb[..., 1]
    out = self._lut[np.minimum(number, len(self._lut) - 1)]
    if (number >= len(self._lut)).any() or (out == -2).any():
      bad = number[(number >= len(self._lut)) | (out == -2)][0]
      raise UserError(f"mask {path} holds label number {bad}, which label.csv does not list")
    return out

  def get(self, indices, labels: bool = True) -> dict:
    """Rows `indices` -> {"image": uint8 [n, S, S, 3], "labels": int32 [n, L, sh, sw],
    "index": int64 [n]}; S = image_size, L = num_layers. labels=False leaves the masks
    undecoded (the dissection's first two passes read the images alone)."""
    idx = np.asarray(indices, np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
      raise IndexError(f"rows {idx.min()}..{idx.max()} outside a source of {len(self)}")
    s = self.image_size
    images = np.empty((len(idx), s, s, 3), np.uint8)
    maps = np.full((len(idx), self.num_layers, *self.mask_shape), -1, np.int32)
    for j, i in enumerate(idx):
      image, entries = self._rows[i]
      with Image.open(image) as im:
        images[j] = np.asarray(im.convert("RGB").resize((s, s), Image.BILINEAR))
      layer = 0
      for cell, depth in zip(entries, self._depth if labels else ()):
        for k, e in enumerate(cell):
          maps[j, layer + k] = e if isinstance(e, int) else self._decode(e)
        layer += depth
    out = {"image": images, "index": idx}
    if labels:
      out["labels"] = maps
    return out


def open_broden(root: str, image_size: int, split: str | None = None,
                categories=None) -> BrodenSource:
  """The Broden directory `root` (holding index.csv, label.csv, images/) as a source."""
  return BrodenSource(root, image_size, split=split, categories=categories)
