"""Probe sets for network dissection: images with a concept label per pixel.

    probe = probes.open_probe(config.dataset, "test")          # concept_shapes' own masks
    probe = probes.open_probe(config.dataset, "", broden="/data/broden1_224")
    batch = probe.source.get(np.arange(8))
    batch["image"]    # uint8 [8, H, W, 3] at the model's image size
    batch["labels"]   # int32 [8, L, h, w]: a concept id per pixel and label layer, -1 = none
    probe.concepts.names[3], probe.concepts.categories[3]

concept_shapes has three label layers (shape, colour, texture) at image
resolution; every pixel has a colour and a texture, the object's pixels also a
shape. A Broden directory (data/broden.py) has one layer per mask file and
image-level label.
"""

import dataclasses

import numpy as np

from interp_jax.data import concept_shapes
from interp_jax.data.broden import ProbeConcepts, open_broden
from interp_jax.data.sources import open_split
from interp_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Probe:
  source: object   # len(), get(indices) -> {"image", "labels", "index"}; a get that
                   # takes labels=False may leave out "labels" (passes reading images alone)
  concepts: ProbeConcepts
  name: str


class _ConceptShapesProbe:
  """A concept_shapes split whose segmentation is read as three label layers."""

  def __init__(self, split_source):
    self._src = split_source
    groups = (len(concept_shapes.SHAPES), len(concept_shapes.COLOURS),
              len(concept_shapes.TEXTURES))
    self._offsets = np.cumsum((0,) + groups[:-1]).astype(np.int32)

  def __len__(self):
    return len(self._src)

  def get(self, indices, labels: bool = True):
    indices = np.asarray(indices)
    batch = self._src.get(indices)
    out = {"image": batch["image"], "label": batch["label"], "index": indices.astype(np.int64)}
    if labels:
      seg = batch["segmentation"].astype(np.int32)                    # [n, H, W, 3], id + 1
      out["labels"] = np.where(seg > 0, seg - 1 + self._offsets,
                               -1).transpose(0, 3, 1, 2).astype(np.int32)
    return out


def concept_shapes_concepts() -> ProbeConcepts:
  names = concept_shapes.CONCEPTS
  return ProbeConcepts(tuple(names), tuple(n.split("/")[0] for n in names))


def open_probe(dataset_cfg, split: str = "test", broden: str = "", broden_split=None) -> Probe:
  """The probe set: a Broden directory when `broden` is given, else the run's own data set,
  which must ship concept masks (concept_shapes)."""
  if broden:
    try:
      src = open_broden(broden, dataset_cfg.image_size, split=broden_split)
    except (ValueError, FileNotFoundError) as e:
      raise UserError(f"cannot read the Broden probe set: {e}") from None
    return Probe(src, src.concepts, f"broden:{broden}")
  if dataset_cfg.name != "concept_shapes":
    raise UserError(f"data set {dataset_cfg.name!r} has no concept masks; pass a Broden-format "
                    "probe directory (--broden=DIR) or dissect a concept_shapes run")
  src = open_split(dataset_cfg, split, with_segmentation=True)
  return Probe(_ConceptShapesProbe(src), concept_shapes_concepts(), f"concept_shapes:{split}")
