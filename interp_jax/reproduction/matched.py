"""Consistency at matched attack success: each model read off its eps sweep at one rate.

    at_rate(results.eps_curve.points, rate=0.5, measure="mean")
    -> Matched(value, eps, factor, between=(i, j), reached, max_rate, derived, rate)

A robust model turns most attacks away at the analysis eps, so its own
adversarial set stays close to its real images and scores like them: robustness
alone would raise it. Read at the eps where each model's attack is equally
successful, the comparison holds the attack's strength fixed (protocol 2,
finding 3b; METHOD.md "How a finding is decided").

The rule, declared with protocol 2 (findings.default_criteria):
- a point's success rate is its `turned_wrong`: of the images the model
  classifies correctly, the share the attack at that eps makes wrong. A sweep
  saved without it gets 1 - accuracy(eps) / accuracy(0), exact when the attack
  turns no wrong image right ("derived": True);
- points in order of eps, the first at eps 0 (the real images, rate 0): the
  bracket is the first point j whose rate is at least `rate` and the point
  i = j - 1 before it; t = (rate - r_i) / (r_j - r_i), and the model's value is
  its `measure` interpolated linearly in eps: m_i + t (m_j - m_i), at
  eps_i + t (eps_j - eps_i);
- no point reaches the rate: `value` None and `reached` False (that seed's
  comparison is missing, and the check it feeds is undecided); a bracketing
  point with no value of the measure (no neuron included there): `value` None.
"""

from __future__ import annotations

from typing import Optional

from interp_jax.records import Record, record


@record
class Matched(Record):
  """One seed of one model at the matched rate (None values: see the module docstring)."""
  value: Optional[float]          # the measure, interpolated
  eps: Optional[float]
  factor: Optional[float]         # eps in multiples of the analysis eps
  between: Optional[tuple[int, ...]]   # the bracketing points (i, j), in order of eps
  reached: bool
  max_rate: Optional[float]       # the sweep's highest success rate; None: no sweep
  derived: bool                   # rates derived from accuracies
  rate: float


def _rates(points) -> tuple[list, bool]:
  """Each point's success rate, and whether they were derived from accuracies."""
  if all(p.turned_wrong is not None for p in points):
    return [float(p.turned_wrong) for p in points], False
  clean = next(p.accuracy for p in points if p.factor == 0)
  return [0.0 if clean <= 0 else 1.0 - p.accuracy / clean for p in points], True


def at_rate(points, rate: float, measure: str = "mean") -> Matched:
  """The model's `measure` ("mean" or "paired_mean") at success rate `rate` on its sweep
  (CurvePoints, results.json's eps_curve); see the module docstring."""
  points = sorted(points, key=lambda p: p.eps)
  if not points or points[0].factor != 0:
    raise ValueError("the eps sweep must start at eps x 0 (the real images)")
  rates, derived = _rates(points)
  j = next((j for j, r in enumerate(rates) if j > 0 and r >= rate), None)
  if j is None:
    return Matched(None, None, None, None, False, max(rates), derived, rate)
  i = j - 1
  lo, hi = points[i], points[j]
  t = (rate - rates[i]) / (rates[j] - rates[i])   # in (0, 1]: every point before j is below
  m_lo, m_hi = getattr(lo, measure), getattr(hi, measure)
  return Matched(None if m_lo is None or m_hi is None else m_lo + t * (m_hi - m_lo),
                 lo.eps + t * (hi.eps - lo.eps), lo.factor + t * (hi.factor - lo.factor),
                 (i, j), True, max(rates), derived, rate)


def series(results_per_seed: list, rate: float, measure: str) -> list[Matched]:
  """at_rate of each seed's AnalysisResults; a seed analysed without a sweep has no value."""
  return [at_rate(r.eps_curve.points, rate, measure) if r.eps_curve is not None else
          Matched(None, None, None, None, False, None, False, rate)
          for r in results_per_seed]


def missing(name: str, seeds, per_seed) -> list[str]:
  """Why a model has no value on some seeds (Matched, one a seed), one phrase each."""
  out = []
  for seed, m in zip(seeds, per_seed):
    if m.value is not None:
      continue
    if m.max_rate is None:
      out.append(f"{name} seed {seed} has no eps sweep")
    elif not m.reached:
      out.append(f"{name} seed {seed} never reaches {m.rate:.0%} within the sweep (at most "
                 f"{m.max_rate:.0%})")
    else:
      out.append(f"{name} seed {seed} has no included neuron at a bracketing eps")
  return out
