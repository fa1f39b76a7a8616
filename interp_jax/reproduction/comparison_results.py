"""The comparison of models, typed: what `read_comparison` returns and comparison.json holds.

    comparison = read_comparison(["runs/demo/standard", "runs/demo/adv"])   # a Comparison
    comparison.runs[0].robustness.autoattack.accuracy
    comparison.rows[0].models["adv"].removed["adversarial"]
    Comparison.load("runs/compare/comparison.json")

One record (interp_jax/records.py) per JSON object of comparison.json with
fixed fields (those keyed by set, layer or category names are dicts); the
JSON is also checked against report/comparison_page.py's SCHEMA (shares
within [0, 1], the reasons and sources named below) before it is written:

    {"runs": [ComparedRun...], "sets": [SET],   # real, adversarial, successful, shared
     "rows": [Row...], "figure": null | Figure,
     "notes": [str]}                            # where the runs were measured unalike

A row's models, a cell's sets and a run's attacks are keyed by their names,
which vary by comparison.
Each run's numbers are read from its files, never recomputed: the analysis
(DIR/analysis/results.json), robustness.json, the dissection, the tracing and
import.json, each null where the run has none. A cell's `removed[SET]` is
(real - SET) / (real - chance) over the neurons included in both sets
(reproduction/differences.py's exposure); it is null, and `removed_na[SET]`
says why, where real - chance is at most the real set's chance_std ("near
chance": the ratio would divide by noise), where no neuron is in both sets,
or where the real set has no chance level. A run's `robust` is AutoAttack's
robust accuracy when robustness.json has it, else the analysis attack's.
"""

from __future__ import annotations

from typing import Optional

from interp_jax.analysis.results import Accuracy
from interp_jax.attacks.masking import Verdict
from interp_jax.records import Record, record
from interp_jax.reproduction.summary import DetectionSummary
from interp_jax.training.imported import Imported


@record
class RunAnalysis(Record):
  """What the run's analysis measured, and how."""
  num_images: int
  attack: str
  eps: float
  norm: str
  steps: int
  k: int
  accuracy: Accuracy                 # clean, under the analysis attack, on the shared set
  success_rate: float


@record
class AttackResult(Record):
  """One attack of robustness.json: its accuracy and the options it ran with."""
  accuracy: float
  eps: float
  norm: str
  steps: Optional[int]               # None for a one-step attack


@record
class AutoAttackResult(Record):
  """robustness.json's AutoAttack: robust accuracy and the checks against masking."""
  version: str
  eps: float
  norm: str
  accuracy: float
  flagged: tuple[str, ...]           # the checks that flagged gradient masking
  checks: dict[str, Verdict]


@record
class RunRobustness(Record):
  """The attack command's robustness.json, as compared."""
  num_images: Optional[int]
  split: str
  clean: float
  attacks: dict[str, AttackResult]
  autoattack: Optional[AutoAttackResult]


@record
class Robust(Record):
  """The robust accuracy the figure plots, and where it comes from."""
  accuracy: float
  source: str                        # "autoattack" | "analysis"


@record
class Detectors(Record):
  """The dissection's detectors per concept category, on real and adversarial images."""
  iou_threshold: float
  categories: tuple[str, ...]
  layers: dict[str, dict[str, dict[str, int]]]  # {LAYER: {"real" | "adversarial": {CAT: n}}}


@record
class ComparedRun(Record):
  """One run, as its files hold it; a note for each file it lacks."""
  name: str                          # the run folder's name (its path where two share one)
  workdir: str
  model: Optional[str]
  dataset: Optional[str]
  checkpoint_step: Optional[int]
  imported: Optional[Imported]       # DIR/import.json, when the weights were imported
  notes: tuple[str, ...]             # e.g. "not analysed: run ..."
  analysis: Optional[RunAnalysis]
  robustness: Optional[RunRobustness]
  robust: Optional[Robust]
  detectors: Optional[Detectors]
  detection: Optional[DetectionSummary]  # the tracing's detector AUCs


@record
class SetCell(Record):
  """One set of one model at one layer."""
  mean: Optional[float]
  chance: Optional[float]
  chance_std: Optional[float]        # over random k-subsets of the set
  num_included: int


@record
class NotApplicable(Record):
  """Why a removed share is null."""
  reason: str                        # "near chance" | "no paired neurons" | "no chance level"
  detail: str


@record
class Cell(Record):
  """One model at one layer."""
  layer: str
  depth: float                       # i / (n - 1) for the i-th of n analysed layers
  num_neurons: int
  sets: dict[str, SetCell]
  removed: dict[str, Optional[float]]
  removed_na: dict[str, NotApplicable]


@record
class Row(Record):
  """Matched layers: one per name (one architecture) or relative depth (several)."""
  label: str                         # LAYER, or "depth 0.33"
  matched_by: str                    # "name" | "relative depth"
  depth: Optional[float]
  models: dict[str, Optional[Cell]]  # null where the run was not analysed


@record
class Point(Record):
  """One model in the figure, at its last analysed layer."""
  name: str
  layer: str
  consistency: float                 # on its own adversarial images
  chance: Optional[float]
  robust_accuracy: float
  source: str                        # "autoattack" | "analysis"


@record
class Figure(Record):
  file: str
  points: tuple[Point, ...]


@record
class Comparison(Record):
  """Models side by side, from what each run already holds."""
  runs: tuple[ComparedRun, ...]
  sets: tuple[str, ...]
  rows: tuple[Row, ...]
  figure: Optional[Figure]
  notes: tuple[str, ...]
