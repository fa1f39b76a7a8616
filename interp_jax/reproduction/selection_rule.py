"""The selection's rules on measured validation numbers (selection.py states them).

    best = apply_rule(standard, adv, rows, max_clean_drop)             # one seed
    best = apply_seeded_rule(standards, advs, rows, max_clean_drop)    # seeds per candidate

Each run is {"clean", "attacked", "adversarial_consistency"} on validation
images; the rules mark each row eligible or not (with the reasons) and return
the chosen row, or None.
"""

import math

import numpy as np


def apply_rule(standard: dict, adv: dict, measured: list[dict], max_clean_drop: float):
  """One run per candidate: eligible when its clean accuracy is at most max_clean_drop
  below standard's and its accuracy under attack not below adv's; the highest
  adversarial consistency wins."""
  best = None
  for m in measured:
    reasons = []
    if m["clean"] < standard["clean"] - max_clean_drop:
      reasons.append(f"clean accuracy {m['clean']:.3f} is more than {max_clean_drop:g} below "
                     f"standard's {standard['clean']:.3f}")
    if m["attacked"] < adv["attacked"]:
      reasons.append(f"accuracy under attack {m['attacked']:.3f} is below adv's "
                     f"{adv['attacked']:.3f}")
    if m["adversarial_consistency"] is None:
      reasons.append("no neuron is included in its adversarial set")
    m["eligible"], m["reasons"] = not reasons, reasons
    if not reasons and (best is None
                        or m["adversarial_consistency"] > best["adversarial_consistency"]):
      best = m
  return best


def mean_se(values) -> dict:
  """Mean and standard error (sample sd / sqrt(n)) of per-seed values."""
  x = np.asarray(values, np.float64)
  se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
  return {"mean": float(x.mean()), "se": se}


def apply_seeded_rule(standards: list[dict], advs: list[dict], rows: list[dict],
                      max_clean_drop: float):
  """Seeds per candidate (rows[i]["runs"], in the seeds' order of standards and advs):
  the rule of selection.py's docstring. Fills each row's means ("clean", "attacked",
  "adversarial_consistency"), "clean_drop", "attack_deficit" and "gap" ({"mean", "se"}
  of the per-seed differences), "eligible", "reasons" and "tied"."""
  for row in rows:
    runs = row["runs"]
    row["clean_drop"] = mean_se([s["clean"] - r["clean"] for s, r in zip(standards, runs)])
    row["attack_deficit"] = mean_se([a["attacked"] - r["attacked"] for a, r in zip(advs, runs)])
    row["clean"] = mean_se([r["clean"] for r in runs])["mean"]
    row["attacked"] = mean_se([r["attacked"] for r in runs])["mean"]
    cons = [r["adversarial_consistency"] for r in runs]
    row["adversarial_consistency"] = None if None in cons else mean_se(cons)["mean"]
    reasons = []
    drop, deficit = row["clean_drop"], row["attack_deficit"]
    if drop["mean"] - drop["se"] > max_clean_drop:
      reasons.append(f"clean accuracy {drop['mean']:.3f} +/- {drop['se']:.3f} (SE) below "
                     f"standard's: more than {max_clean_drop:g} by over one SE")
    if deficit["mean"] - deficit["se"] > 0:
      reasons.append(f"accuracy under attack {deficit['mean']:.3f} +/- {deficit['se']:.3f} "
                     "(SE) below adv's: by over one SE")
    if None in cons:
      reasons.append("no neuron is included in its adversarial set on a seed")
    row["eligible"], row["reasons"], row["tied"], row["gap"] = not reasons, reasons, False, None
  eligible = [r for r in rows if r["eligible"]]
  if not eligible:
    return None
  top = max(eligible, key=lambda r: r["adversarial_consistency"])
  for row in eligible:
    row["gap"] = mean_se([t["adversarial_consistency"] - r["adversarial_consistency"]
                          for t, r in zip(top["runs"], row["runs"])])
    row["tied"] = row["gap"]["mean"] <= row["gap"]["se"]
  tied = [r for r in eligible if r["tied"]]
  return min(tied, key=lambda r: (r["weight"], -r["adversarial_consistency"]))
