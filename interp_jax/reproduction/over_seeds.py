"""A variant's numbers over seeds: means, sample sds and t-intervals, and the differences.

    models, differences = summarise_numbers({"standard": [RunOutcome, ...], ...}, "fc1",
                                            criteria)

Each seed's run is a RunOutcome (its saved analysis, FGSM accuracy and, under
protocol 2, the declared robust evaluation); a ModelSummary holds their means
with each spread, a Differences the paired differences that the statements
read (differences.py).
"""

from __future__ import annotations

import dataclasses

from interp_jax.analysis.results import AnalysisResults, Comparison, CurvePoint, EpsCurve
from interp_jax.reproduction import intervals, matched
from interp_jax.reproduction.summary import (Differences, LayerSummary, MatchedSummary,
                                             ModelSummary)


@dataclasses.dataclass(frozen=True)
class RunOutcome:
  """One run's numbers, as the summary reads them (in memory; each is in a saved file)."""
  results: AnalysisResults
  fgsm: float                       # accuracy under FGSM at the analysis eps
  workdir: str | None = None
  robust: float | None = None       # the declared robust evaluation's accuracy (protocol 2)
  robust_flagged: tuple[str, ...] = ()  # its checks that flagged gradient masking


def _stat(values, confidence: float = 0.95) -> tuple:
  """Mean, sample sd and t-interval (low, high) over seeds; Nones where a seed has no value."""
  if any(v is None for v in values):
    return None, None, None
  ci = intervals.t_interval(values, confidence)
  return ci.mean, ci.sd if ci.sd is not None else 0.0, (
      None if ci.low is None else (ci.low, ci.high))


def _mean(values):
  return _stat(values)[0]


def _layer_summary(layers: list) -> LayerSummary:
  """Means over seeds of one layer's numbers (each seed's LayerResult in `layers`)."""
  out = {"num_neurons": layers[0].num_neurons}
  for key, get in (("sets", lambda s: s.mean), ("chance", lambda s: s.chance.mean),
                   ("chance_spread", lambda s: s.chance.std),
                   ("included", lambda s: s.num_included),
                   ("purity", lambda s: s.purity.mean),
                   ("purity_chance", lambda s: s.purity.chance.mean)):
    stats = {name: _stat([get(l.sets[name]) for l in layers]) for name in layers[0].sets}
    out[key] = {name: m for name, (m, _, _) in stats.items()}
    if key in ("sets", "purity"):
      out[f"{key}_std"] = {name: sd for name, (_, sd, _) in stats.items()}
      out[f"{key}_ci"] = {name: ci for name, (_, _, ci) in stats.items()}
  out["comparisons"] = {  # the paired means, their neuron counts averaged too
      name: Comparison(*(_mean([getattr(l.comparisons[name], f) for l in layers])
                         for f in ("num_neurons", "real", "other")), first.other_set)
      for name, first in layers[0].comparisons.items()}
  overlaps = [l.topk_overlap for l in layers]
  out["topk_overlap"] = None if None in overlaps else _mean([o.mean for o in overlaps])
  out["feature_cosine"] = _mean([l.feature_cosine for l in layers])
  return LayerSummary(**out)


def _eps_curve(curves: list) -> EpsCurve:
  """Each point's numbers averaged over seeds (the seeds' EpsCurves, same factors)."""
  fields = ("mean", "paired_mean", "purity", "num_included", "accuracy", "turned_wrong")
  return EpsCurve(curves[0].layer, _mean([c.num_paired for c in curves]), tuple(
      CurvePoint(factor=p.factor, eps=p.eps,
                 **{f: _mean([getattr(c.points[i], f) for c in curves]) for f in fields})
      for i, p in enumerate(curves[0].points)))


def model_summary(per_seed: list[RunOutcome], criteria=None) -> ModelSummary:
  """Means (and spreads) over seeds of one variant's numbers; under protocol 2
  (`criteria`), also `matched` and, where evaluated, `robust`."""
  results = [r.results for r in per_seed]
  out = {"workdirs": tuple(r.workdir for r in per_seed)}
  for key, get in (("clean", lambda r: r.results.accuracy.clean),
                   ("pgd", lambda r: r.results.accuracy.adversarial),
                   ("shared", lambda r: r.results.accuracy.shared),
                   ("success_rate", lambda r: r.results.attack.success_rate),
                   ("fgsm", lambda r: r.fgsm)):
    out[key], out[f"{key}_std"], out[f"{key}_ci"] = _stat([get(r) for r in per_seed])
  out["layers"] = {layer: _layer_summary([r.layers[layer] for r in results])
                   for layer in results[0].layers}
  if results[0].eps_curve is not None:
    out["eps_curve"] = _eps_curve([r.eps_curve for r in results])
  if criteria is not None and criteria.get("protocol", 1) == 2:
    at = tuple(matched.series(results, criteria.match_rate, criteria.match_measure))
    out["matched"] = MatchedSummary(criteria.match_rate, criteria.match_measure, at,
                                    _mean([m.value for m in at]), _mean([m.factor for m in at]))
    if all(r.robust is not None for r in per_seed):
      out["robust"], out["robust_std"], out["robust_ci"] = _stat([r.robust for r in per_seed])
      # AutoAttack's checks against gradient masking that flagged a seed's model.
      out["robust_flagged"] = tuple(sorted({c for r in per_seed for c in r.robust_flagged}))
  return ModelSummary(**out)


def summarise_numbers(runs: dict, layer: str, criteria) -> tuple[dict, Differences]:
  """(Summary.models, Summary.differences) from runs = {variant: [RunOutcome per seed]}:
  what the statements are computed from."""
  from interp_jax.reproduction.differences import differences
  models = {v: model_summary(rs, criteria) for v, rs in runs.items()}
  per_seed = {v: [r.results for r in rs] for v, rs in runs.items()}
  robust = values = None
  if criteria.get("protocol", 1) == 2:
    values = {v: [m.value for m in models[v].matched.per_seed] for v in runs}
    robust = {v: [r.robust for r in runs[v]]
              for v in ("standard", "adv_consistent")
              if v in models and models[v].robust is not None}
    robust = robust if len(robust) == 2 else None
  return models, differences(per_seed, layer, criteria.confidence, robust=robust,
                             matched=values)
