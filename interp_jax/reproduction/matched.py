"""Consistency at matched attack success: each model read off its eps sweep at one rate.

    at_rate([p.to_json() for p in results.eps_curve.points], rate=0.5, measure="mean")
    -> {"value", "eps", "factor", "between": [i, j], "reached", "max_rate", "derived"}

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
- no point reaches the rate: "value" None and "reached" False (that seed's
  comparison is missing, and the check it feeds is undecided); a bracketing
  point with no value of the measure (no neuron included there): "value" None.
"""


def _rates(points: list[dict]) -> tuple[list, bool]:
  """Each point's success rate, and whether they were derived from accuracies."""
  if all(p.get("turned_wrong") is not None for p in points):
    return [float(p["turned_wrong"]) for p in points], False
  clean = next(p["accuracy"] for p in points if p["factor"] == 0)
  return [0.0 if clean <= 0 else 1.0 - p["accuracy"] / clean for p in points], True


def at_rate(points: list[dict], rate: float, measure: str = "mean") -> dict:
  """The model's `measure` at success rate `rate` on its sweep; see the module docstring."""
  points = sorted(points, key=lambda p: p["eps"])
  if not points or points[0]["factor"] != 0:
    raise ValueError("the eps sweep must start at eps x 0 (the real images)")
  rates, derived = _rates(points)
  out = {"value": None, "eps": None, "factor": None, "between": None, "reached": False,
         "max_rate": max(rates), "derived": derived, "rate": rate}
  j = next((j for j, r in enumerate(rates) if j > 0 and r >= rate), None)
  if j is None:
    return out
  i = j - 1
  lo, hi = points[i], points[j]
  t = (rate - rates[i]) / (rates[j] - rates[i])   # in (0, 1]: every point before j is below
  out.update(reached=True, between=[i, j],
             eps=lo["eps"] + t * (hi["eps"] - lo["eps"]),
             factor=lo["factor"] + t * (hi["factor"] - lo["factor"]))
  if lo.get(measure) is not None and hi.get(measure) is not None:
    out["value"] = lo[measure] + t * (hi[measure] - lo[measure])
  return out


def series(results_per_seed: list, rate: float, measure: str) -> list[dict]:
  """at_rate of each seed's AnalysisResults; a seed analysed without a sweep has no value."""
  return [at_rate([p.to_json() for p in r.eps_curve.points], rate, measure)
          if r.eps_curve is not None else
          {"value": None, "eps": None, "factor": None, "between": None, "reached": False,
           "max_rate": None, "derived": False, "rate": rate}
          for r in results_per_seed]


def missing(name: str, seeds: list, per_seed: list[dict]) -> list[str]:
  """Why a model has no value on some seeds, one phrase each."""
  out = []
  for seed, m in zip(seeds, per_seed):
    if m["value"] is not None:
      continue
    if m["max_rate"] is None:
      out.append(f"{name} seed {seed} has no eps sweep")
    elif not m["reached"]:
      out.append(f"{name} seed {seed} never reaches {m['rate']:.0%} within the sweep (at most "
                 f"{m['max_rate']:.0%})")
    else:
      out.append(f"{name} seed {seed} has no included neuron at a bracketing eps")
  return out
