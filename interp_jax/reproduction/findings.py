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


NAMES = ("1. Neuron consistency can be measured",
         "2. Adversarial images expose ambiguous neurons",
         "3. Adversarial training with the consistent loss repairs consistency")


def _missing(summary: dict, layer: str) -> str:
  """Which number a statement needs is missing (a mean over no included neuron)."""
  std = summary["models"]["standard"]["layers"][layer]
  needed = [("standard", "real", std["sets"]["real"]), ("standard", "chance", std["chance"]["real"]),
            ("standard", "real and adversarial",
             std["comparisons"]["real_vs_adversarial"]["adversarial"])]
  needed += [(v, "adversarial", summary["models"][v]["layers"][layer]["sets"]["adversarial"])
             for v in ("standard", "adv", "adv_consistent")]
  gaps = [f"{v}'s {what} set" for v, what, value in needed if value is None]
  return ("no neuron is included in " + ", ".join(gaps)
          + " (each fires on fewer than k images there)") if gaps else ""


def _f(v) -> str:
  return "n/a" if v is None else f"{v:.3f}"


def evaluate(summary: dict, criteria) -> list[dict]:
  """summary: {"layer": str, "models": {variant: {"clean", "pgd", "layers": {...}}}}.

  Finding 2 compares real and adversarial consistency of the standard model
  over the neurons included in both sets; finding 3 compares each model's
  mean over its own included neurons (neurons of two networks do not pair).
  The controls (successful-attack subset, shared adversarial set) are
  reported beside the statement that they qualify; they decide nothing.
  """
  layer = summary["layer"]
  std, adv, cons = (summary["models"][v] for v in ("standard", "adv", "adv_consistent"))
  info = std["layers"][layer]
  chance, spread = info["chance"]["real"], info["chance_spread"]["real"]
  real = info["sets"]["real"]
  missing = _missing(summary, layer)
  if missing:
    return [{"finding": name, "holds": False,
             "evidence": f"cannot be decided at {layer}: {missing}"} for name in NAMES]
  out = []

  margin = (real - chance) / max(spread, 1e-9)
  out.append({
      "finding": NAMES[0],
      "holds": bool(margin >= criteria.measurable_sigmas),
      "evidence": (f"standard model, {layer}: mean consistency on real images {real:.3f} "
                   f"({info['included']['real']:.0f} of {info['num_neurons']} neurons "
                   f"fire on at least k images) against a chance baseline of {chance:.3f} "
                   f"+/- {spread:.3f} ({margin:.1f} standard deviations; criterion >= "
                   f"{criteria.measurable_sigmas:g})")})

  pair = info["comparisons"]["real_vs_adversarial"]
  p_real, p_adv = pair["real"], pair["adversarial"]
  above = p_real - chance if p_real is not None else 0.0
  removed = (p_real - p_adv) / above if above > 0 else 0.0
  succ = info["comparisons"].get("real_vs_successful", {})
  out.append({
      "finding": NAMES[1],
      "holds": bool(above > 0 and removed >= criteria.exposed_share),
      "evidence": (f"standard model, {layer}, over the {pair['num_neurons']:.0f} neurons "
                   f"included in both sets: consistency {_f(p_real)} on real and {_f(p_adv)} "
                   f"on adversarial images (chance {chance:.3f}): the attack removes "
                   f"{removed:.0%} of the above-chance consistency (criterion >= "
                   f"{criteria.exposed_share:.0%}); top-k overlap {_f(info['topk_overlap'])}, "
                   f"consistency by predicted class "
                   f"{_f(info['sets']['adversarial_by_prediction'])} (its chance "
                   f"{_f(info['chance']['adversarial_by_prediction'])}); on the successful "
                   f"attacks only {_f(succ.get('successful'))} against {_f(succ.get('real'))} "
                   f"over {succ.get('num_neurons', 0):.0f} neurons")})

  sets = {v: m["layers"][layer]["sets"] for v, m in summary["models"].items()}
  c_adv, a_adv, s_adv = (sets[v]["adversarial"] for v in ("adv_consistent", "adv", "standard"))
  drop = std["clean"] - cons["clean"]
  gain = cons["pgd"] - std["pgd"]
  holds = (c_adv > s_adv and c_adv > a_adv and drop <= criteria.max_clean_drop
           and gain >= criteria.min_robust_gain)
  controls = "; ".join(
      f"{v} {_f(sets[v].get('successful'))} / {_f(sets[v].get('shared'))}"
      for v in ("adv_consistent", "adv", "standard"))
  out.append({
      "finding": NAMES[2],
      "holds": bool(holds),
      "evidence": (f"{layer}, consistency on each model's own adversarial images: "
                   f"adv_consistent {c_adv:.3f}, adv {a_adv:.3f}, standard {s_adv:.3f}; clean "
                   f"accuracy {cons['clean']:.3f} vs standard {std['clean']:.3f} (drop "
                   f"{drop:+.3f}, criterion <= {criteria.max_clean_drop:g}); accuracy under "
                   f"PGD {cons['pgd']:.3f} vs standard {std['pgd']:.3f} (gain {gain:+.3f}, "
                   f"criterion >= {criteria.min_robust_gain:g}). Controls, not criteria "
                   f"(successful attacks only / the shared set made against the standard "
                   f"model): {controls}")})
  return out
