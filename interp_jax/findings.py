"""The paper's three findings as statements computed from measured numbers.

    statements = evaluate(summary, criteria)   # [{"finding", "holds", "evidence", ...}]

Each criterion is fixed before the numbers are seen (`default_criteria`), and
the statement says "holds" or "does not hold" with the values that decide it.
Consistency is read at the decisive layer: the first layer of the consistent
loss, where classes live (METHOD.md, "Where to look").
"""

import ml_collections


def default_criteria() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # (1) measurable: real-image consistency of the standard model above chance by
  #     this many standard deviations of the chance baseline.
  c.measurable_sigmas = 3.0
  # (2) exposed: adversarial images remove at least this share of the standard
  #     model's above-chance consistency on real images.
  c.exposed_share = 0.25
  # (3) repaired: adv_consistent's consistency on adversarial images exceeds the
  #     standard model's and the adv model's; its clean accuracy is at most
  #     `max_clean_drop` below the standard model's, and its accuracy under PGD
  #     at least `min_robust_gain` above.
  c.max_clean_drop = 0.10
  c.min_robust_gain = 0.20
  return c


def _mean(model: dict, layer: str, which: str) -> float:
  return model["layers"][layer]["sets"][which]


def evaluate(summary: dict, criteria) -> list[dict]:
  """summary: {"layer": str, "models": {variant: {"clean", "pgd", "layers": {...}}}}."""
  layer = summary["layer"]
  std, adv, cons = (summary["models"][v] for v in ("standard", "adv", "adv_consistent"))
  info = std["layers"][layer]
  chance, spread = info["chance_mean"], info["chance_std"]
  real, adv_set = info["sets"]["real"], info["sets"]["adversarial"]
  out = []

  margin = (real - chance) / max(spread, 1e-9)
  out.append({
      "finding": "1. Neuron consistency can be measured",
      "holds": bool(margin >= criteria.measurable_sigmas),
      "evidence": (f"standard model, {layer}: mean consistency on real images {real:.3f} "
                   f"against a chance baseline of {chance:.3f} +/- {spread:.3f} "
                   f"({margin:.1f} standard deviations; criterion >= "
                   f"{criteria.measurable_sigmas:g})")})

  above = real - chance
  removed = (real - adv_set) / above if above > 0 else 0.0
  out.append({
      "finding": "2. Adversarial images expose ambiguous neurons",
      "holds": bool(above > 0 and removed >= criteria.exposed_share),
      "evidence": (f"standard model, {layer}: consistency {real:.3f} on real and {adv_set:.3f} "
                   f"on adversarial images (chance {chance:.3f}): the attack removes "
                   f"{removed:.0%} of the above-chance consistency (criterion >= "
                   f"{criteria.exposed_share:.0%}); top-k overlap "
                   f"{info['topk_overlap']:.3f}, consistency by predicted class "
                   f"{info['sets']['adversarial_by_prediction']:.3f}")})

  c_adv = cons["layers"][layer]["sets"]["adversarial"]
  a_adv = adv["layers"][layer]["sets"]["adversarial"]
  drop = std["clean"] - cons["clean"]
  gain = cons["pgd"] - std["pgd"]
  holds = (c_adv > adv_set and c_adv > a_adv and drop <= criteria.max_clean_drop
           and gain >= criteria.min_robust_gain)
  out.append({
      "finding": "3. Adversarial training with the consistent loss repairs consistency",
      "holds": bool(holds),
      "evidence": (f"{layer}, consistency on adversarial images: adv_consistent {c_adv:.3f}, "
                   f"adv {a_adv:.3f}, standard {adv_set:.3f}; clean accuracy "
                   f"{cons['clean']:.3f} vs standard {std['clean']:.3f} (drop {drop:+.3f}, "
                   f"criterion <= {criteria.max_clean_drop:g}); accuracy under PGD "
                   f"{cons['pgd']:.3f} vs standard {std['pgd']:.3f} (gain {gain:+.3f}, "
                   f"criterion >= {criteria.min_robust_gain:g})")})
  return out
