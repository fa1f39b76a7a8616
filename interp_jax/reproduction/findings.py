"""The paper's three findings as statements computed from measured numbers.

    statements = evaluate(summary, criteria)   # a Summary (reproduction/summary.py)
    # [Statement(finding, holds: True | False | None, verdict, failed, undecided, evidence)]

Every criterion is fixed before the numbers are seen (`default_criteria`: the
config's `criteria` section, default_config.criteria_config);
`criteria.protocol` says which protocol decides. Consistency is read at the
decisive layer: the first layer of the consistent loss, where classes live
(METHOD.md, "Where to look"). Fewer than `min_seeds` seeds decide nothing: the
verdict is "undecided" (holds None) and the evidence says which checks these
seeds do not meet; so is a statement whose numbers are missing.

Protocol 1 (the default; declared in protocol.DECLARED_IN[1]): a statement holds
when each paired difference over seeds that decides it has its 95% interval on
the right side of zero (reproduction/differences.py) and its thresholds are met
by the means. Finding 3 is decided on each model's own adversarial images.

Protocol 2 (findings_v2.py): every threshold is compared with the bound of its
interval over seeds, never the mean, and each seed is scored on its own share
of the test split (criteria.test_share, the same share for every model of the
seed). A check is met, failed, or undecided (a number it needs is missing);
a statement holds when every check is met, does not hold when one fails, and
is otherwise undecided, naming the undecided checks.
  1. real - chance of the standard model: its lower bound, divided by the chance
     baseline's spread (the sd of random k-subsets, mean over seeds), is at least
     measurable_sigmas, and above zero.
  2. the share of the standard model's above-chance real consistency its
     adversarial images remove, (real - adv) / (real - chance) over the paired
     neurons, per seed: its lower bound is at least exposed_share; real -
     adversarial has its lower bound above zero.
  3. adv_consistent's consistency is compared with adv's and with standard's on
     two sets that hold the attack's strength fixed, each difference's lower
     bound above zero (four checks):
     (a) the successful attacks: adversarial images the attack turned from right
         to wrong (analysis.successful = "right_to_wrong"), each model's mean
         over its own included neurons;
     (b) matched attack success: each model's `match_measure` on its eps sweep
         (analysis.eps_curve = match_factors x the analysis eps) at the eps where
         its attack turns `match_rate` of its correctly classified images wrong,
         interpolated linearly in eps between the two sweep points that bracket
         that rate (reproduction/matched.py); a model whose sweep never reaches
         the rate has no value on that seed, and the check is undecided;
     and the accuracy criteria: clean accuracy standard - adv_consistent with its
     upper bound at most max_clean_drop; accuracy under the declared evaluation
     (robust_attack: "autoattack" or "pgd20", on robust_images images of each
     seed's test share) adv_consistent - standard with its lower bound at least
     min_robust_gain. The paper's measure, each model's own adversarial images,
     is reported beside them as such and decides nothing.
"""

from interp_jax.default_config import criteria_config
from interp_jax.reproduction import intervals
from interp_jax.reproduction.statements import NAMES, fmt as _f, gaps as _gaps
from interp_jax.reproduction.statements import missing_number, verdict

default_criteria = criteria_config  # the config's `criteria` section (default_config.py)


def _side(interval, want: str):
  """(ok, text): whether the interval lies on the `want` side of zero ("above" or
  "below"); None with one seed, which has no interval to judge."""
  if interval is None:
    return False, "n/a (a seed has no included neuron there)"
  ok = None if interval.side == "one seed" else interval.side == f"{want} zero"
  return ok, intervals.describe(interval)


def _verdict(finding: str, checks: list, evidence: str, seeds: int, min_seeds: int):
  """checks: [(name, ok)], ok None where one seed gives no interval to judge."""
  return verdict(finding, checks, evidence, seeds, min_seeds,
                 why_open="needs an interval over seeds")


def evaluate(summary, criteria) -> list:
  """The three Statements, from a Summary's layer, seeds, models and differences;
  protocol 2's come from findings_v2.evaluate.

  Finding 2 compares real and adversarial consistency of the standard model
  over the neurons included in both sets; finding 3 compares each model's
  mean over its own included neurons (neurons of two networks do not pair).
  The controls (successful-attack subset, shared adversarial set, the
  paper's symmetric loss) are reported beside the statement that they
  qualify; they decide nothing.
  """
  if criteria.get("protocol", 1) == 2:
    from interp_jax.reproduction import findings_v2
    return findings_v2.evaluate(summary, criteria)
  if criteria.get("protocol", 1) != 1:
    raise ValueError(f"criteria.protocol must be 1 or 2, got {criteria.protocol!r}")
  layer = summary.layer
  seeds = len(summary.seeds)
  gaps = _gaps(summary, layer)
  out = []
  for i, make in enumerate((_measurable, _exposed, _repaired)):
    if gaps[i]:
      out.append(missing_number(NAMES[i], layer, gaps[i]))
    else:
      checks, evidence = make(summary, criteria, layer)
      out.append(_verdict(NAMES[i], checks, evidence, seeds, criteria.min_seeds))
  return out


def _measurable(summary, criteria, layer):
  """Finding 1: (checks, evidence)."""
  info = summary.models["standard"].layers[layer]
  diffs = summary.differences.decisive
  chance, spread = info.chance["real"], info.chance_spread["real"]
  real = info.sets["real"]

  margin = (real - chance) / max(spread, 1e-9)
  ok, text = _side(diffs["standard_real_minus_chance"], "above")
  return [("sigmas", margin >= criteria.measurable_sigmas), ("real above chance", ok)], (
      f"standard model, {layer}: mean consistency on real images {real:.3f} "
      f"({info.included['real']:.0f} of {info.num_neurons} neurons fire on at least k "
      f"images) against a chance baseline of {chance:.3f} +/- {spread:.3f} ({margin:.1f} "
      f"standard deviations; criterion >= {criteria.measurable_sigmas:g}); real - chance "
      f"{text}")


def _exposed(summary, criteria, layer):
  """Finding 2: (checks, evidence)."""
  info = summary.models["standard"].layers[layer]
  diffs = summary.differences.decisive
  chance = info.chance["real"]
  pair = info.comparisons["real_vs_adversarial"]
  p_real, p_adv = pair.real, pair.other
  above = p_real - chance if p_real is not None else 0.0
  removed = (p_real - p_adv) / above if above > 0 else 0.0
  succ = info.comparisons.get("real_vs_successful")
  ok, text = _side(diffs["standard_real_minus_adversarial"], "above")
  return [("share removed", above > 0 and removed >= criteria.exposed_share),
          ("real above adversarial", ok)], (
      f"standard model, {layer}, over the {pair.num_neurons:.0f} neurons included in both "
      f"sets: consistency {_f(p_real)} on real and {_f(p_adv)} on adversarial images (chance "
      f"{chance:.3f}): the attack removes {removed:.0%} of the above-chance consistency "
      f"(criterion >= {criteria.exposed_share:.0%}); real - adversarial {text}; top-k overlap "
      f"{_f(info.topk_overlap)}, consistency by predicted class "
      f"{_f(info.sets['adversarial_by_prediction'])} (its chance "
      f"{_f(info.chance['adversarial_by_prediction'])}); on the successful attacks only "
      f"{_f(succ and succ.other)} against {_f(succ and succ.real)} over "
      f"{succ.num_neurons if succ else 0:.0f} neurons")


def _repaired(summary, criteria, layer):
  """Finding 3, on the declared measure, with the accuracy criteria: (checks, evidence)."""
  diffs = summary.differences.decisive
  std, cons = summary.models["standard"], summary.models["adv_consistent"]
  sets = {v: m.layers[layer].sets for v, m in summary.models.items()}
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
  drop, gain = diffs["clean_drop"].mean, diffs["robust_gain"].mean
  gain_ok, gain_text = _side(diffs["robust_gain"], "above")
  exposure = lambda v: diffs.get(f"exposure_{v}")
  exposures = ", ".join(f"{v} {_f(exposure(v) and exposure(v).mean)}" for v in summary.models)
  controls = "; ".join(f"{v} {_f(s.get('successful'))} / {_f(s.get('shared'))}"
                       for v, s in sets.items() if v != "standard")
  paper = ""
  if "adv_symmetric" in summary.models:
    paper = (f" The paper's symmetric form at the same lambda: adv_symmetric - adv "
             f"{_side(diffs.get('adv_symmetric_minus_adv'), 'above')[1]}.")
  evidence = (
      f"{layer}, decided on {measure}: {names[0]} {over_adv[1]}; {names[1]} {over_std[1]}. "
      f"Consistency on adversarial images: " + ", ".join(
          f"{v} {_f(s['adversarial'])}" for v, s in sets.items())
      + f"; exposure: {exposures}. Clean accuracy {cons.clean:.3f} vs standard "
      f"{std.clean:.3f} (drop {drop:+.3f}, criterion <= {criteria.max_clean_drop:g}); "
      f"accuracy under the analysis attack {cons.pgd:.3f} vs standard {std.pgd:.3f} "
      f"(gain {gain_text}, "
      f"criterion >= {criteria.min_robust_gain:g}). Controls, not criteria (successful "
      f"attacks only / the shared set made against the standard model): {controls}.{paper}")
  return [(names[0], over_adv[0]), (names[1], over_std[0]),
          ("clean drop", drop <= criteria.max_clean_drop),
          ("robust gain", gain >= criteria.min_robust_gain),
          ("robust gain above zero", gain_ok)], evidence
