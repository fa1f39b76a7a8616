"""The reproduction's summary, typed: what `reproduce` returns and DIR/report/summary.json holds.

    summary = reproduce(config, "runs/reproduce")             # a Summary
    summary.models["adv_consistent"].layers["fc1"].sets["adversarial"]
    summary.differences.decisive["successful_adv_consistent_minus_adv"].low
    summary.statements[2].holds
    Summary.load("runs/reproduce/report/summary.json")

One record (interp_jax/records.py) per JSON object; report/reproduction.py
documents every field. Models, layers, sets and differences are dicts keyed by
their names, which vary by run (NAME as in the schema: "adv_consistent_minus_adv",
...); the config, criteria, analysis settings and environment stay dicts, as
they ran. A model's means over seeds reuse the analysis's own records where the
fields are the same (Comparison, EpsCurve), their counts then being means too.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from interp_jax.analysis.results import Comparison, EpsCurve
from interp_jax.records import Record, absent_if_none, record
from interp_jax.reproduction.intervals import Interval
from interp_jax.reproduction.matched import Matched
from interp_jax.reproduction.selection import Choice

Mean = Optional[float]       # a mean over seeds; None where a seed has no value
Bounds = Optional[tuple[float, ...]]   # a t-interval [low, high] over seeds; None: one seed


@record
class LayerSummary(Record):
  """One layer of one model: each set's numbers averaged over seeds."""
  num_neurons: int
  sets: dict[str, Mean]              # mean consistency over the included neurons
  sets_std: dict[str, Optional[float]]
  sets_ci: dict[str, Bounds]
  chance: dict[str, Mean]
  chance_spread: dict[str, Mean]     # sd of random k-subsets
  included: dict[str, Mean]          # neurons included
  purity: dict[str, Mean]
  purity_std: dict[str, Optional[float]]
  purity_ci: dict[str, Bounds]
  purity_chance: dict[str, Mean]
  comparisons: dict[str, Comparison]  # "real_vs_SET": paired means
  topk_overlap: Mean
  feature_cosine: Mean


@record
class MatchedSummary(Record):
  """Protocol 2: the model's consistency at the matched attack success rate."""
  rate: float
  measure: str
  per_seed: tuple[Matched, ...]
  mean: Mean
  mean_factor: Mean


@record
class ModelSummary(Record):
  """One variant over seeds: accuracies (with their sd and t-interval) and every layer."""
  workdirs: tuple[Optional[str], ...]
  clean: Mean
  clean_std: Optional[float]
  clean_ci: Bounds
  pgd: Mean                           # under the analysis attack
  pgd_std: Optional[float]
  pgd_ci: Bounds
  shared: Mean                        # on the shared adversarial set
  shared_std: Optional[float]
  shared_ci: Bounds
  success_rate: Mean
  success_rate_std: Optional[float]
  success_rate_ci: Bounds
  fgsm: Mean
  fgsm_std: Optional[float]
  fgsm_ci: Bounds
  layers: dict[str, LayerSummary]
  eps_curve: Optional[EpsCurve] = absent_if_none()
  matched: Optional[MatchedSummary] = absent_if_none()    # protocol 2
  # Protocol 2, standard and adv_consistent: accuracy under the declared evaluation, and
  # the checks against gradient masking that flagged a seed's model (null: not evaluated).
  robust: Mean = None
  robust_std: Optional[float] = None
  robust_ci: Bounds = None
  robust_flagged: Optional[tuple[str, ...]] = None


@record
class Differences(Record):
  """The paired differences over seeds (reproduction/differences.py); None where a seed
  lacks a number."""
  layer: str
  confidence: float
  decisive: dict[str, Optional[Interval]]
  layers: dict[str, dict[str, dict[str, Optional[Interval]]]]   # LAYER -> SET -> NAME


@record
class Statement(Record):
  finding: str
  holds: Optional[bool]    # None: undecided
  verdict: str
  failed: tuple[str, ...]
  undecided: tuple[str, ...]
  evidence: str


@record
class Selection(Record):
  workdir: str
  choice: Optional[Choice]   # the chosen loss (selection.json); None: none met the rule
  rule: str
  layer: str
  page: str
  num_candidates: int
  seed: int
  seeds: tuple[int, ...]


@record
class SeedShare(Record):
  """The test images one seed was analysed on."""
  seed: int
  num_images: int
  images_digest: Optional[str]   # the same for every model of the seed


@record
class RobustEvaluation(Record):
  attack: str
  version: Optional[str]
  stages: tuple[str, ...]
  steps: int
  images: int
  text: str
  variants: tuple[str, ...] = ()


@record
class Protocol(Record):
  version: int
  declared_in: Optional[str]
  head: Optional[str]
  head_has_changes: Optional[bool]
  as_declared: bool
  changed: dict[str, Any]        # FIELD: [declared, used]


@record
class InspectedLayer(Record):
  real: dict[str, int]           # detectors per concept category
  adversarial: dict[str, int]
  changed: int                   # units whose concept changed


@record
class Auc(Record):
  auc: float
  auc_successful: Optional[float]


@record
class DetectionSummary(Record):
  """The tracing's detector of adversarial inputs: its AUCs per attack."""
  layer: str
  attacks: dict[str, Auc]

  @classmethod
  def of(cls, tracing) -> DetectionSummary:
    """A tracing's (analysis.results.TracingResults) detection, its AUCs alone."""
    return cls(tracing.layer, {a: Auc(e.auc, e.auc_successful)
                               for a, e in tracing.detection.attacks.items()})


@record
class Inspection(Record):
  """The first reported seed's dissection and tracing of one model."""
  dissection: dict[str, InspectedLayer]
  iou_threshold: Optional[float]
  detection: DetectionSummary
  pages: dict[str, str]


@record
class Summary(Record):
  """DIR/report/summary.json."""
  layer: str
  eps: float
  seeds: tuple[int, ...]
  variants: tuple[str, ...]
  protocol: Protocol
  environment: dict[str, Any]
  criteria: dict[str, Any]
  analysis: dict[str, Any]
  config: dict[str, Any]
  models: dict[str, ModelSummary]
  differences: Differences
  test_shares: tuple[SeedShare, ...]
  statements: tuple[Statement, ...] = ()
  selection: Optional[Selection] = None
  notes: tuple[str, ...] = ()
  inspection: dict[str, Inspection] = dataclasses.field(default_factory=dict)
  robust_evaluation: Optional[RobustEvaluation] = absent_if_none()   # protocol 2
