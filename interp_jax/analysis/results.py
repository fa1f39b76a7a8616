"""Typed results: what the analysis, the attack command, the dissection and the tracing
return and save.

    results = AnalysisResults.load("runs/x/analysis/results.json")
    results.layers["conv2"].sets["adversarial"].mean
    results.accuracy.clean, results.attack.turned_wrong, results.eps_curve.points[0].eps
    DissectionResults.load("runs/x/dissection/results.json").layers["conv1"].changed
    TracingResults.load("runs/x/explain/results.json").detection.attacks["pgd"].auc
    RobustnessReport.load("runs/x/robustness.json").autoattack.checks["transfer"].flagged

One record (interp_jax/records.py) per JSON object of the saved files
(report/schema.py, report/robustness.py, report/dissection_page.py and
report/tracing_page.py say what each field means; a test holds the analysis's
types and schema.py to the same fields). A misspelt field is an AttributeError
where it is read, not a None three modules later. Sets, layers and comparisons
are dicts keyed by their names, since those vary by run; `settings` is the
analysis config as it ran (a dict). Lists are tuples. Left out of the JSON while None: `shared`,
`topk_overlap`, `eps_curve`, `run`, `requested`, `autoattack`, `split`; other
Nones are null.
"""

from __future__ import annotations

from typing import Any, Optional

from interp_jax.attacks.masking import Verdict
from interp_jax.records import Record, absent_if_none, json_object, record

Score = Optional[float]  # a consistency in [0, 1], None where no neuron is included


@record
class Chance(Record):
  """The expected score of k images drawn at random from the set (None: fewer than k)."""
  mean: Score
  std: Optional[float]


@record
class Histogram(Record):
  edges: tuple[float, ...]
  counts: tuple[int, ...]


@record
class Excluded(Record):
  """Neurons left out of a set: firing on fewer than k of its images, or tied at the k-th."""
  fewer_than_k: int
  tied: int


@record
class Purity(Record):
  """The set's scores under the identity similarity (the share of top images in one class)."""
  mean: Score
  median: Score
  per_neuron: tuple[Score, ...]
  chance: Chance


@record
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


@record
class Comparison(Record):
  """Two sets' mean scores over the neurons included in both ("real_vs_" + other_set)."""
  num_neurons: int
  real: Score
  other: Score
  other_set: str

  @classmethod
  def from_json(cls, obj, where="results"):
    others = sorted(set(json_object(obj, where)) - {"num_neurons", "real"})
    if "num_neurons" not in obj or "real" not in obj or len(others) != 1:
      raise ValueError(f"{where} must hold num_neurons, real and one other set's mean, "
                       f"got {', '.join(sorted(obj))}")
    return cls(obj["num_neurons"], obj["real"], obj[others[0]], others[0])

  def to_json(self) -> dict:
    return {"num_neurons": self.num_neurons, "real": self.real, self.other_set: self.other}


@record
class TopkOverlap(Record):
  """|T_k(real) & sources(T_k(adversarial))| / k per neuron included in both sets."""
  mean: Score
  num_neurons: int
  per_neuron: tuple[Score, ...]


@record
class LayerResult(Record):
  num_neurons: int
  sets: dict[str, SetScore]
  comparisons: dict[str, Comparison]
  feature_cosine: float
  topk_overlap: Optional[TopkOverlap] = absent_if_none()  # real or adversarial not scored


@record
class Accuracy(Record):
  clean: float
  adversarial: float
  shared: Optional[float] = absent_if_none()  # on the shared set, when one is given


@record
class Attack(Record):
  success_rate: float
  num_successful: int
  turned_wrong: Score = None  # of the images classified right, the share made wrong


@record
class RunInfo(Record):
  workdir: str
  checkpoint_step: int
  model: str
  dataset: str
  class_names: tuple[str, ...]


@record
class CurvePoint(Record):
  factor: float
  eps: float
  mean: Score
  purity: Score
  num_included: int
  accuracy: float
  paired_mean: Score  # over the neurons included at every eps
  turned_wrong: Score = None  # of the images classified right, the share made wrong


@record
class EpsCurve(Record):
  layer: str
  num_paired: int
  points: tuple[CurvePoint, ...]


@record
class Scored(Record):
  """What scoring.score measures: the part of the results that comes from the images."""
  layers: dict[str, LayerResult]
  accuracy: Accuracy
  attack: Attack


@record
class AnalysisResults(Record):
  """DIR/analysis/results.json."""
  run: RunInfo
  settings: dict[str, Any]
  accuracy: Accuracy
  attack: Attack
  layers: dict[str, LayerResult]
  eps_curve: Optional[EpsCurve] = absent_if_none()

  def set_names(self) -> tuple[str, ...]:
    """The sets scored (the same in every layer)."""
    return tuple(next(iter(self.layers.values())).sets)


@record
class Checkpoint(Record):
  """Which run and checkpoint a dissection's or a tracing's results describe."""
  workdir: str
  model: str
  checkpoint_step: int


# DIR/dissection/results.json (report/dissection_page.py says what each field means).


@record
class Detectors(Record):
  """One set of one dissected layer: each unit's best concept (None: no concept) and IoU."""
  concept: tuple[Optional[str], ...]
  iou: tuple[float, ...]
  detector: tuple[bool, ...]        # IoU above the threshold
  num_detectors: int
  detectors_per_category: dict[str, int]
  detectors_per_concept: dict[str, int]
  mean_best_iou: Optional[float]


@record
class ChangedUnit(Record):
  """A unit detecting a concept on real or adversarial images, not the same on both."""
  unit: int
  real: Optional[str]
  adversarial: Optional[str]
  iou_real: float
  iou_adversarial: float


@record
class DissectedLayer(Record):
  units: int
  threshold: tuple[float, ...]
  threshold_error: tuple[float, ...]
  sets: dict[str, Detectors]
  changed: tuple[ChangedUnit, ...]
  top_images: tuple[tuple[int, ...], ...]   # probe indices per unit


@record
class Concepts(Record):
  names: tuple[str, ...]
  categories: tuple[str, ...]
  pixel_share: tuple[float, ...]   # share of the probe's pixels each concept covers


@record
class DissectionResults(Record):
  probe: str
  settings: dict[str, Any]
  concepts: Concepts
  layers: dict[str, DissectedLayer]
  run: Optional[Checkpoint] = absent_if_none()  # set by the stage that saves them
  requested: Optional[dict[str, Any]] = absent_if_none()


# DIR/robustness.json (report/robustness.py says what each field means).


@record
class AttackAccuracy(Record):
  """One attack over the split: its accuracy, its time and the options it ran with
  (AttackSpec.options(): eps, norm and the attack's own, such as steps), which the
  JSON holds beside the two."""
  accuracy: float
  seconds: float
  options: dict[str, Any]

  @classmethod
  def from_json(cls, obj, where="results"):
    options = dict(json_object(obj, where))
    if "accuracy" not in options or "seconds" not in options:
      raise ValueError(f"{where} must hold accuracy, seconds and the attack's options, "
                       f"got {', '.join(sorted(options))}")
    return cls(options.pop("accuracy"), options.pop("seconds"), options)

  def to_json(self) -> dict:
    return {**self.options, "accuracy": self.accuracy, "seconds": self.seconds}


@record
class AutoAttackReport(Record):
  """AutoAttack over the split, with the checks against gradient masking."""
  version: str
  eps: float
  norm: str
  stages: tuple[str, ...]
  options: dict[str, dict[str, Any]]
  accuracy: float                      # robust: no stage broke the image
  accuracy_after: dict[str, float]     # "clean", then each stage
  broken: dict[str, int]               # images each stage broke first
  seconds: dict[str, float]
  transfer_accuracy: Optional[float]   # on a transfer model's PGD-10 images
  checks: dict[str, Verdict]


@record
class RobustnessReport(Record):
  """DIR/robustness.json: accuracy under attack over a split (the attack command)."""
  checkpoint_step: int
  model: str
  dataset: str
  num_images: int
  clean_accuracy: float
  attacks: dict[str, AttackAccuracy]
  autoattack: Optional[AutoAttackReport] = absent_if_none()   # when it was asked
  split: Optional[str] = absent_if_none()                     # set by the attack command


# DIR/explain/results.json (report/tracing_page.py says what each field means).


@record
class Profile(Record):
  split: str
  num_images: int
  k: int
  num_included: int
  num_neurons: int


@record
class Roc(Record):
  fpr: tuple[float, ...]
  tpr: tuple[float, ...]


@record
class DetectionEntry(Record):
  auc: float
  num_clean: int
  num_adversarial: int
  success_rate: float
  adversarial_mean: float
  roc: Roc
  auc_successful: Optional[float]   # None when no image is right or none is fooled
  num_successful: int


@record
class Detection(Record):
  score: str
  clean_mean: float
  attacks: dict[str, DetectionEntry]


@record
class NeuronRow(Record):
  """One influential neuron of an explained image."""
  neuron: int
  pd: float
  consistency: Score
  concept: Optional[str]
  profile_agreement: float
  profile_class: str


@record
class ExampleRecord(Record):
  kind: str
  test_index: int
  label: int
  predicted: int
  score: float
  neurons: tuple[NeuronRow, ...]


@record
class TracingResults(Record):
  layer: str
  ablation: str
  settings: dict[str, Any]
  profile: Profile
  accuracy: dict[str, float]
  detection: Detection
  examples: tuple[ExampleRecord, ...]
  run: Optional[Checkpoint] = absent_if_none()  # set by the stage that saves them
  requested: Optional[dict[str, Any]] = absent_if_none()


__all__ = ["Accuracy", "AnalysisResults", "Attack", "AttackAccuracy", "AutoAttackReport",
           "Chance", "ChangedUnit", "Checkpoint", "Comparison", "Concepts", "CurvePoint",
           "DissectedLayer", "DissectionResults", "Detection", "DetectionEntry", "Detectors",
           "EpsCurve", "ExampleRecord", "Excluded", "Histogram", "LayerResult", "NeuronRow",
           "Profile", "Purity", "Record", "Roc", "RobustnessReport", "RunInfo", "Scored",
           "SetScore", "TopkOverlap", "TracingResults"]
