"""The paper's three findings as statements computed from measured numbers.

    statements = evaluate(summary, criteria)
    # [{"finding", "holds": True | False | None, "verdict", "evidence", "failed": [..]}]

Every criterion is fixed before the numbers are seen (`default_criteria`).
A statement holds only when each paired difference over seeds that decides
it has its 95% interval on the right side of zero (reproduction/
differences.py) and its thresholds are met by the means, over at least
`min_seeds` seeds. Fewer seeds decide nothing: the verdict is "undecided"
(holds None) and the evidence says which checks these seeds do not meet; so
is a statement whose numbers are missing (no neuron included).
Consistency is read at the decisive layer: the first layer of the
consistent loss, where classes live (METHOD.md, "Where to look").
"""

import ml_collections

from interp_jax.reproduction import intervals


def default_criteria() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  # (1) measurable: real-image consistency of the standard model above chance by
  #     this many standard deviations of the chance baseline (and real - chance > 0
  #     over seeds).
  c.measurable_sigmas = 3.0
  # (2) exposed: adversarial images remove at least this share of the standard
  #     model's above-chance consistency on real images (and real - adversarial
  #     > 0 over seeds).
  c.exposed_share = 0.25
  # (3) repaired: adv_consistent beats the standard model and the adv model on
  #     `repair_measure` over seeds: "adversarial" = consistency on each model's own
  #     adversarial images (the paper's claim, declared before the protocol's first
  #     run), or "exposure" = the share of above-chance consistency the attack
  #     removes (lower is better). Its clean accuracy is at most `max_clean_drop`
  #     below the standard model's, and its accuracy under PGD at least
  #     `min_robust_gain` above (with the gain's interval above zero).
  c.repair_measure = "adversarial"
  c.max_clean_drop = 0.10
  c.min_robust_gain = 0.20
  c.confidence = 0.95         # of every interval over seeds
  c.min_seeds = 5             # fewer seeds decide nothing (METHOD.md: >= 5)
  return c


NAMES = ("1. Neuron consistency can be measured",
         "2. Adversarial images expose ambiguous neurons",
         "3. Adversarial training with the consistent loss repairs consistency")


def _f(v) -> str:
  return "n/a" if v is None else f"{v:.3f}"


def _side(interval, want: str):
  """(ok, text): whether the interval lies on the `want` side of zero ("above" or
  "below"); never with one seed, which has no interval."""
  if interval is None:
    return False, "n/a (a seed has no included neuron there)"
  where = intervals.side(interval)
  ok = where == f"{want} zero"
  return ok, intervals.describe(interval)


def _verdict(finding: str, checks: list, evidence: str, seeds: int, min_seeds: int) -> dict:
  """checks: [(name, ok)]. Fewer than min_seeds seeds decide nothing, whatever the checks."""
  failed = [name for name, ok in checks if not ok]
  if seeds < min_seeds:
    holds = None
    verdict = ("undecided: one seed decides nothing" if seeds == 1 else
               f"undecided: {seeds} seeds, and the protocol decides with at least {min_seeds}")
    if failed:
      evidence += f" (not met on these seeds: {', '.join(failed)})"
    failed = []
  elif failed:
    holds, verdict = False, "does not hold"
  else:
    holds, verdict = True, "holds"
  return {"finding": finding, "holds": holds, "verdict": verdict, "failed": failed,
          "evidence": evidence}


def _gaps(summary: dict, layer: str) -> list[str]:
  """Per finding, which number it needs is missing (a mean over no included neuron)."""
  def set_of(v, name):
    return summary["models"][v]["layers"][layer]["sets"][name]

  std = summary["models"]["standard"]["layers"][layer]
  needs = [[("standard's real set", set_of("standard", "real")),
            ("standard's real chance", std["chance"]["real"])],
           [("standard's real set", set_of("standard", "real")),
            ("standard's real and adversarial sets",
             std["comparisons"]["real_vs_adversarial"]["adversarial"])],
           [(f"{v}'s adversarial set", set_of(v, "adversarial"))
            for v in ("standard", "adv", "adv_consistent")]]
  return ["; ".join(what for what, value in need if value is None) for need in needs]


def evaluate(summary: dict, criteria) -> list[dict]:
  """summary: reproduce's summary.json ("layer", "models", "differences").

  Finding 2 compares real and adversarial consistency of the standard model
  over the neurons included in both sets; finding 3 compares each model's
  mean over its own included neurons (neurons of two networks do not pair).
  The controls (successful-attack subset, shared adversarial set, the
  paper's symmetric loss) are reported beside the statement that they
  qualify; they decide nothing.
  """
  layer = summary["layer"]
  seeds = len(summary["seeds"])
  gaps = _gaps(summary, layer)
  out = []
  for i, make in enumerate((_measurable, _exposed, _repaired)):
    if gaps[i]:
      out.append({"finding": NAMES[i], "holds": None, "failed": [],
                  "verdict": "undecided: a number it needs is missing",
                  "evidence": f"cannot be decided at {layer}: no neuron is included in "
                              f"{gaps[i]} (each fires on fewer than k images there)"})
    else:
      checks, evidence = make(summary, criteria, layer)
      out.append(_verdict(NAMES[i], checks, evidence, seeds, criteria.min_seeds))
  return out


def _measurable(summary, criteria, layer):
  """Finding 1: (checks, evidence)."""
  info = summary["models"]["standard"]["layers"][layer]
  diffs = summary["differences"]["decisive"]
  chance, spread = info["chance"]["real"], info["chance_spread"]["real"]
  real = info["sets"]["real"]

  margin = (real - chance) / max(spread, 1e-9)
  ok, text = _side(diffs["standard_real_minus_chance"], "above")
  return [("sigmas", margin >= criteria.measurable_sigmas), ("real above chance", ok)], (
      f"standard model, {layer}: mean consistency on real images {real:.3f} "
      f"({info['included']['real']:.0f} of {info['num_neurons']} neurons fire on at least k "
      f"images) against a chance baseline of {chance:.3f} +/- {spread:.3f} ({margin:.1f} "
      f"standard deviations; criterion >= {criteria.measurable_sigmas:g}); real - chance "
      f"{text}")


def _exposed(summary, criteria, layer):
  """Finding 2: (checks, evidence)."""
  info = summary["models"]["standard"]["layers"][layer]
  diffs = summary["differences"]["decisive"]
  chance = info["chance"]["real"]
  pair = info["comparisons"]["real_vs_adversarial"]
  p_real, p_adv = pair["real"], pair["adversarial"]
  above = p_real - chance if p_real is not None else 0.0
  removed = (p_real - p_adv) / above if above > 0 else 0.0
  succ = info["comparisons"].get("real_vs_successful", {})
  ok, text = _side(diffs["standard_real_minus_adversarial"], "above")
  return [("share removed", above > 0 and removed >= criteria.exposed_share),
          ("real above adversarial", ok)], (
      f"standard model, {layer}, over the {pair['num_neurons']:.0f} neurons included in both "
      f"sets: consistency {_f(p_real)} on real and {_f(p_adv)} on adversarial images (chance "
      f"{chance:.3f}): the attack removes {removed:.0%} of the above-chance consistency "
      f"(criterion >= {criteria.exposed_share:.0%}); real - adversarial {text}; top-k overlap "
      f"{_f(info['topk_overlap'])}, consistency by predicted class "
      f"{_f(info['sets']['adversarial_by_prediction'])} (its chance "
      f"{_f(info['chance']['adversarial_by_prediction'])}); on the successful attacks only "
      f"{_f(succ.get('successful'))} against {_f(succ.get('real'))} over "
      f"{succ.get('num_neurons', 0):.0f} neurons")


def _repaired(summary, criteria, layer):
  """Finding 3, on the declared measure, with the accuracy criteria: (checks, evidence)."""
  diffs = summary["differences"]["decisive"]
  std, cons = summary["models"]["standard"], summary["models"]["adv_consistent"]
  sets = {v: m["layers"][layer]["sets"] for v, m in summary["models"].items()}
  if criteria.repair_measure == "exposure":
    measure = "exposure (share of above-chance consistency the attack removes)"
    over_adv = _side(diffs.get("exposure_adv_minus_adv_consistent"), "above")
    over_std = _side(diffs.get("exposure_standard_minus_adv_consistent"), "above")
    names = ("adv - adv_consistent exposure", "standard - adv_consistent exposure")
  elif criteria.repair_measure == "adversarial":
    measure = "consistency on each model's own adversarial images"
    over_adv = _side(diffs.get("adv_consistent_minus_adv"), "above")
    over_std = _side(diffs.get("adv_consistent_minus_standard"), "above")
    names = ("adv_consistent - adv", "adv_consistent - standard")
  else:
    raise ValueError(f"criteria.repair_measure must be 'adversarial' or 'exposure', got "
                     f"{criteria.repair_measure!r}")
  drop, gain = diffs["clean_drop"]["mean"], diffs["robust_gain"]["mean"]
  gain_ok, gain_text = _side(diffs["robust_gain"], "above")
  exposures = ", ".join(f"{v} {_f((diffs.get(f'exposure_{v}') or {}).get('mean'))}"
                        for v in summary["models"])
  controls = "; ".join(f"{v} {_f(s.get('successful'))} / {_f(s.get('shared'))}"
                       for v, s in sets.items() if v != "standard")
  paper = ""
  if "adv_symmetric" in summary["models"]:
    paper = (f" The paper's symmetric form at the same lambda: adv_symmetric - adv "
             f"{_side(diffs.get('adv_symmetric_minus_adv'), 'above')[1]}.")
  evidence = (
      f"{layer}, decided on {measure}: {names[0]} {over_adv[1]}; {names[1]} {over_std[1]}. "
      f"Consistency on adversarial images: " + ", ".join(
          f"{v} {_f(s['adversarial'])}" for v, s in sets.items())
      + f"; exposure: {exposures}. Clean accuracy {cons['clean']:.3f} vs standard "
      f"{std['clean']:.3f} (drop {drop:+.3f}, criterion <= {criteria.max_clean_drop:g}); "
      f"accuracy under the analysis attack {cons['pgd']:.3f} vs standard {std['pgd']:.3f} "
      f"(gain {gain_text}, "
      f"criterion >= {criteria.min_robust_gain:g}). Controls, not criteria (successful "
      f"attacks only / the shared set made against the standard model): {controls}.{paper}")
  return [(names[0], over_adv[0]), (names[1], over_std[0]),
          ("clean drop", drop <= criteria.max_clean_drop),
          ("robust gain", gain >= criteria.min_robust_gain),
          ("robust gain above zero", gain_ok)], evidence
