"""Typed results: what the analysis, the dissection and the tracing return and save.

    results = AnalysisResults.load("runs/x/analysis/results.json")
    results.layers["conv2"].sets["adversarial"].mean
    results.accuracy.clean, results.attack.turned_wrong, results.eps_curve.points[0].eps
    DissectionResults.load("runs/x/dissection/results.json").layers["conv1"].changed
    TracingResults.load("runs/x/explain/results.json").detection.attacks["pgd"].auc

One frozen dataclass per JSON object of the saved files (report/schema.py,
report/dissection_page.py and report/tracing_page.py say what each field
means; a test holds the analysis's types and schema.py to the same fields). A
misspelt field is an AttributeError where it is read, not a None three
modules later.
Sets, layers and comparisons are dicts keyed by their names, since those
vary by run; `settings` is the analysis config as it ran (a dict). Lists
are tuples. `from_json` refuses a dict with a missing or an unknown field
(ValueError naming where); `to_json` gives back the dict json.dump writes,
leaving out the fields marked absent-if-None (`shared`, `topk_overlap`,
`eps_curve`, `run`, `requested`) while they are None; other Nones are null.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, Optional

Score = Optional[float]  # a consistency in [0, 1], None where no neuron is included


def _object(value, where: str) -> Mapping:
  """value, when it is a JSON object; else a ValueError naming where it is."""
  if not isinstance(value, Mapping):
    raise ValueError(f"{where} must be an object, got {type(value).__name__}")
  return value


def _decode(tp, value, where: str):
  if typing.get_origin(tp) in (typing.Union, types.UnionType):  # Optional[X], X | None
    if value is None:
      return None
    (tp,) = [a for a in typing.get_args(tp) if a is not type(None)]
  if isinstance(tp, type) and issubclass(tp, Record):
    return tp.from_json(value, where)
  origin, args = typing.get_origin(tp), typing.get_args(tp)
  if origin is tuple:
    if not isinstance(value, (list, tuple)):
      raise ValueError(f"{where} must be a list, got {type(value).__name__}")
    return tuple(_decode(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
  if origin in (dict, Mapping):
    return {k: _decode(args[1], v, f"{where}.{k}") for k, v in _object(value, where).items()}
  return value


def _encode(value):
  if isinstance(value, Record):
    return value.to_json()
  if isinstance(value, (tuple, list)):
    return [_encode(v) for v in value]
  if isinstance(value, Mapping):
    return {k: _encode(v) for k, v in value.items()}
  return value


class Record:
  """A frozen dataclass read from, and written to, one JSON object."""

  @classmethod
  @functools.cache
  def _hints(cls) -> dict:
    return typing.get_type_hints(cls)

  @classmethod
  def from_json(cls, obj: Mapping, where: str = "results"):
    _object(obj, where)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - set(fields))
    missing = [n for n, f in fields.items()
               if n not in obj and f.default is dataclasses.MISSING]
    if unknown or missing:
      raise ValueError(f"{where} is not a {cls.__name__}: "
                       + "; ".join(([f"unknown {', '.join(unknown)}"] if unknown else [])
                                   + ([f"missing {', '.join(missing)}"] if missing else [])))
    hints = cls._hints()
    return cls(**{n: _decode(hints[n], obj[n], f"{where}.{n}") for n in fields if n in obj})

  def to_json(self) -> dict:
    return {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(self)
            if not (f.metadata.get("absent_if_none") and getattr(self, f.name) is None)}

  @classmethod
  def load(cls, path: str):
    """The results saved at path (ValueError when they do not follow cls's fields; the
    pages' writers, report/, save them)."""
    with open(path) as f:
      return cls.from_json(json.load(f), path)

  @classmethod
  def saved(cls, path: str):
    """The results saved at path; None when there are none, or when they were written
    under another schema (a stage then makes them again)."""
    if not os.path.exists(path):
      return None
    try:
      return cls.load(path)
    except ValueError:
      return None


_record = dataclasses.dataclass(frozen=True)


def _absent_if_none():
  """A field that is None by default and left out of the JSON while None (a field
  whose None means "not measured" is written as null instead)."""
  return dataclasses.field(default=None, metadata={"absent_if_none": True})


@_record
class Chance(Record):
  """The expected score of k images drawn at random from the set (None: fewer than k)."""
  mean: Score
  std: Optional[float]


@_record
class Histogram(Record):
  edges: tuple[float, ...]
  counts: tuple[int, ...]


@_record
class Excluded(Record):
  """Neurons left out of a set: firing on fewer than k of its images, or tied at the k-th."""
  fewer_than_k: int
  tied: int


@_record
class Purity(Record):
  """The set's scores under the identity similarity (the share of top images in one class)."""
  mean: Score
  median: Score
  per_neuron: tuple[Score, ...]
  chance: Chance


@_record
class SetScore(Record):
  """One set of one layer: consistency per neuron (None where not included) and summaries."""
  included: tuple[bool, ...]
  num_included: int
  excluded: Excluded
  mean: Score
  median: Score
  histogram: Histogram
  per_neuron: tuple[Score, ...]
  topk_indices: tuple[tuple[int, ...], ...]
  chance: Chance
  purity: Purity


@_record
class Comparison(Record):
  """Two sets' mean scores over the neurons included in both ("real_vs_" + other_set)."""
  num_neurons: int
  real: Score
  other: Score
  other_set: str

  @classmethod
  def from_json(cls, obj, where="results"):
    others = sorted(set(_object(obj, where)) - {"num_neurons", "real"})
    if "num_neurons" not in obj or "real" not in obj or len(others) != 1:
      raise ValueError(f"{where} must hold num_neurons, real and one other set's mean, "
                       f"got {', '.join(sorted(obj))}")
    return cls(obj["num_neurons"], obj["real"], obj[others[0]], others[0])

  def to_json(self) -> dict:
    return {"num_neurons": self.num_neurons, "real": self.real, self.other_set: self.other}


@_record
class TopkOverlap(Record):
  """|T_k(real) & sources(T_k(adversarial))| / k per neuron included in both sets."""
  mean: Score
  num_neurons: int
  per_neuron: tuple[Score, ...]


@_record
class LayerResult(Record):
  num_neurons: int
  sets: dict[str, SetScore]
  comparisons: dict[str, Comparison]
  feature_cosine: float
  topk_overlap: Optional[TopkOverlap] = _absent_if_none()  # real or adversarial not scored


@_record
class Accuracy(Record):
  clean: float
  adversarial: float
  shared: Optional[float] = _absent_if_none()  # on the shared set, when one is given


@_record
class Attack(Record):
  success_rate: float
  num_successful: int
  turned_wrong: Score = None  # of the images classified right, the share made wrong


@_record
class RunInfo(Record):
  workdir: str
  checkpoint_step: int
  model: str
  dataset: str
  class_names: tuple[str, ...]


@_record
class CurvePoint(Record):
  factor: float
  eps: float
  mean: Score
  purity: Score
  num_included: int
  accuracy: float
  paired_mean: Score  # over the neurons included at every eps
  turned_wrong: Score = None  # of the images classified right, the share made wrong


@_record
class EpsCurve(Record):
  layer: str
  num_paired: int
  points: tuple[CurvePoint, ...]


@_record
class Scored(Record):
  """What scoring.score measures: the part of the results that comes from the images."""
  layers: dict[str, LayerResult]
  accuracy: Accuracy
  attack: Attack


@_record
class AnalysisResults(Record):
  """DIR/analysis/results.json."""
  run: RunInfo
  settings: dict[str, Any]
  accuracy: Accuracy
  attack: Attack
  layers: dict[str, LayerResult]
  eps_curve: Optional[EpsCurve] = _absent_if_none()

  def set_names(self) -> tuple[str, ...]:
    """The sets scored (the same in every layer)."""
    return tuple(next(iter(self.layers.values())).sets)


@_record
class Checkpoint(Record):
  """Which run and checkpoint a dissection's or a tracing's results describe."""
  workdir: str
  model: str
  checkpoint_step: int


# DIR/dissection/results.json (report/dissection_page.py says what each field means).


@_record
class Detectors(Record):
  """One set of one dissected layer: each unit's best concept (None: no concept) and IoU."""
  concept: tuple[Optional[str], ...]
  iou: tuple[float, ...]
  detector: tuple[bool, ...]        # IoU above the threshold
  num_detectors: int
  detectors_per_category: dict[str, int]
  detectors_per_concept: dict[str, int]
  mean_best_iou: Optional[float]


@_record
class ChangedUnit(Record):
  """A unit detecting a concept on real or adversarial images, not the same on both."""
  unit: int
  real: Optional[str]
  adversarial: Optional[str]
  iou_real: float
  iou_adversarial: float


@_record
class DissectedLayer(Record):
  units: int
  threshold: tuple[float, ...]
  threshold_error: tuple[float, ...]
  sets: dict[str, Detectors]
  changed: tuple[ChangedUnit, ...]
  top_images: tuple[tuple[int, ...], ...]   # probe indices per unit


@_record
class Concepts(Record):
  names: tuple[str, ...]
  categories: tuple[str, ...]
  pixel_share: tuple[float, ...]   # share of the probe's pixels each concept covers


@_record
class DissectionResults(Record):
  probe: str
  settings: dict[str, Any]
  concepts: Concepts
  layers: dict[str, DissectedLayer]
  run: Optional[Checkpoint] = _absent_if_none()  # set by the stage that saves them
  requested: Optional[dict[str, Any]] = _absent_if_none()


# DIR/explain/results.json (report/tracing_page.py says what each field means).


@_record
class Profile(Record):
  split: str
  num_images: int
  k: int
  num_included: int
  num_neurons: int


@_record
class Roc(Record):
  fpr: tuple[float, ...]
  tpr: tuple[float, ...]


@_record
class DetectionEntry(Record):
  auc: float
  num_clean: int
  num_adversarial: int
  success_rate: float
  adversarial_mean: float
  roc: Roc
  auc_successful: Optional[float]   # None when no image is right or none is fooled
  num_successful: int


@_record
class Detection(Record):
  score: str
  clean_mean: float
  attacks: dict[str, DetectionEntry]


@_record
class NeuronRow(Record):
  """One influential neuron of an explained image."""
  neuron: int
  pd: float
  consistency: Score
  concept: Optional[str]
  profile_agreement: float
  profile_class: str


@_record
class ExampleRecord(Record):
  kind: str
  test_index: int
  label: int
  predicted: int
  score: float
  neurons: tuple[NeuronRow, ...]


@_record
class TracingResults(Record):
  layer: str
  ablation: str
  settings: dict[str, Any]
  profile: Profile
  accuracy: dict[str, float]
  detection: Detection
  examples: tuple[ExampleRecord, ...]
  run: Optional[Checkpoint] = _absent_if_none()  # set by the stage that saves them
  requested: Optional[dict[str, Any]] = _absent_if_none()


__all__ = ["Accuracy", "AnalysisResults", "Attack", "Chance", "ChangedUnit", "Checkpoint",
           "Comparison", "Concepts", "CurvePoint", "DissectedLayer", "DissectionResults",
           "Detection", "DetectionEntry", "Detectors", "EpsCurve", "ExampleRecord", "Excluded",
           "Histogram", "LayerResult", "NeuronRow", "Profile", "Purity", "Record", "Roc",
           "RunInfo", "Scored", "SetScore", "TopkOverlap", "TracingResults"]
