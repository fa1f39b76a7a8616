"""Protocol 2's statements: every threshold on the bound of its interval (findings.py
states the rules). A check is (name, ok, text), ok True, False or None (undecided)."""

from interp_jax.reproduction import intervals, matched
from interp_jax.reproduction.statements import NAMES, fmt as _f, gaps as _gaps
from interp_jax.reproduction.statements import missing_number, verdict as _verdict

PAPER = "the paper's measure (each model's own adversarial images; decides nothing here)"


def _describe(interval) -> str:
  return "n/a (a seed lacks the number)" if interval is None else intervals.describe(interval)


def _bound(interval, which: str, what: str = ""):
  """(the interval's `which` bound, "low" or "high"; text quoting the interval and saying
  which bound is compared with what)."""
  text = _describe(interval)
  value = None if interval is None else getattr(interval, which)
  if value is None:
    return None, text
  bound = f"{'lower' if which == 'low' else 'upper'} bound {value:+.3f}"
  return value, f"{text}: {bound}" + (f" {what}" if what else "")


def _above_zero(name, interval):
  """A check that the interval's lower bound is above zero."""
  low, text = _bound(interval, "low", "compared with > 0")
  return (name, None if low is None else low > 0, text)


def evaluate(summary, criteria) -> list:
  """The three Statements under protocol 2 (findings.evaluate dispatches here)."""
  layer, seeds = summary.layer, len(summary.seeds)
  gaps = _gaps(summary, layer)[:2] + [""]   # finding 3's checks name what they miss
  out = []
  for name, gap, make in zip(NAMES, gaps, (_measurable, _exposed, _repaired)):
    if gap:
      out.append(missing_number(name, layer, gap))
      continue
    checks, evidence = make(summary, criteria, layer)
    out.append(_verdict(name, checks, evidence, seeds, criteria.min_seeds))
  return out


def _measurable(summary, criteria, layer):
  """Finding 1: the lower bound of real - chance, in standard deviations of chance."""
  info = summary.models["standard"].layers[layer]
  d = summary.differences.decisive["standard_real_minus_chance"]
  spread = info.chance_spread["real"]
  low, text = _bound(d, "low")
  margin = None if low is None or not spread else low / spread
  sigmas = ("sigmas (lower bound)",
            None if margin is None else margin >= criteria.measurable_sigmas, "")
  above = _above_zero("real above chance", d)
  return [sigmas, above], (
      f"standard model, {layer}: real - chance {text}: "
      f"{'n/a' if margin is None else f'{margin:.1f}'} standard deviations of the chance "
      f"baseline ({_f(spread)}, mean over seeds; criterion: lower bound >= "
      f"{criteria.measurable_sigmas:g} sd). Mean consistency on real images "
      f"{_f(info.sets['real'])} ({info.included['real'] or 0:.0f} of {info.num_neurons} "
      f"neurons fire on at least k images), chance {_f(info.chance['real'])}")


def _exposed(summary, criteria, layer):
  """Finding 2: the lower bound of the per-seed share of above-chance consistency removed."""
  info = summary.models["standard"].layers[layer]
  diffs = summary.differences.decisive
  share = diffs.get("exposure_standard")
  low, text = _bound(share, "low", f"compared with >= {criteria.exposed_share:g}")
  if share is None:
    text = "undefined on a seed (its real consistency is not above chance, or no neuron pairs)"
  removed = ("share removed (lower bound)",
             False if share is None else None if low is None else low >= criteria.exposed_share,
             text)
  real_adv = _above_zero("real above adversarial", diffs["standard_real_minus_adversarial"])
  pair = info.comparisons["real_vs_adversarial"]
  succ = info.comparisons.get("real_vs_successful")
  return [removed, real_adv], (
      f"standard model, {layer}: share of the above-chance consistency the attack removes, "
      f"(real - adversarial) / (real - chance) per seed over the neurons included in both "
      f"sets: {text}; real - adversarial {real_adv[2]}. Means over seeds: "
      f"{_f(pair.real)} on real and {_f(pair.other)} on adversarial images "
      f"(chance {_f(info.chance['real'])}); top-k overlap {_f(info.topk_overlap)}; on "
      f"the successful attacks only {_f(succ and succ.other)} against "
      f"{_f(succ and succ.real)}")


def _repaired(summary, criteria, layer):
  """Finding 3: (a) successful attacks, (b) matched success, the accuracy criteria."""
  diffs = summary.differences.decisive
  models = summary.models
  checks = []
  for a_b in ("adv_consistent_minus_adv", "adv_consistent_minus_standard"):
    label = a_b.replace("_minus_", " - ")
    checks.append(_above_zero(f"(a) successful: {label}", diffs.get(f"successful_{a_b}")))
    checks.append(_above_zero(f"(b) matched: {label}", diffs.get(f"matched_{a_b}")))
  drop = diffs.get("clean_drop")
  high, drop_text = _bound(drop, "high", f"compared with <= {criteria.max_clean_drop:g}")
  checks.append(("clean drop (upper bound)",
                 None if high is None else high <= criteria.max_clean_drop, drop_text))
  gain = diffs.get("robust_gain")
  low, gain_text = _bound(gain, "low", f"compared with >= {criteria.min_robust_gain:g}")
  checks.append(("robust gain (lower bound)",
                 None if low is None else low >= criteria.min_robust_gain, gain_text))
  texts = {name: text for name, _, text in checks}
  why = [w for v in ("standard", "adv", "adv_consistent") if v in models
         for w in matched.missing(v, summary.seeds, models[v].matched.per_seed
                                  if models[v].matched else ())]
  at = "; ".join(f"{v} {_f(m.matched.mean)} at {_f(m.matched.mean_factor)} x eps"
                 for v, m in models.items() if m.matched)
  sets = {v: m.layers[layer].sets for v, m in models.items()}
  rate = f"{criteria.match_rate:.0%}"
  robust = (summary.robust_evaluation.text if summary.robust_evaluation else
            "the declared evaluation")
  paper = "; ".join(f"{v.replace('_minus_', ' - ')} {_describe(diffs.get(v))}"
                    for v in ("adv_consistent_minus_adv", "adv_consistent_minus_standard"))
  evidence = (
      f"{layer}, protocol 2. (a) On the successful attacks (images the attack turned from "
      f"right to wrong), each model's mean over its own included neurons: adv_consistent - "
      f"adv {texts['(a) successful: adv_consistent - adv']}; adv_consistent - standard "
      f"{texts['(a) successful: adv_consistent - standard']}. (b) At matched attack success "
      f"(each model's {criteria.match_measure} consistency where its attack turns {rate} of "
      f"its correct images wrong, linear in eps on its sweep): adv_consistent - adv "
      f"{texts['(b) matched: adv_consistent - adv']}; adv_consistent - standard "
      f"{texts['(b) matched: adv_consistent - standard']}"
      + (f" ({'; '.join(why)})" if why else "") + (f"; means over seeds: {at}" if at else "")
      + f". Clean accuracy standard - adv_consistent {drop_text}. Accuracy under {robust}, "
      f"adv_consistent - standard {gain_text}. Beside them, {PAPER}: {paper}; consistency on "
      "own adversarial images " + ", ".join(f"{v} {_f(s['adversarial'])}"
                                             for v, s in sets.items()) + ".")
  if "adv_symmetric" in models:
    evidence += (" The paper's symmetric form at the same lambda, on the successful attacks: "
                 "adv_symmetric - adv "
                 + _describe(diffs.get("successful_adv_symmetric_minus_adv")) + ".")
  return checks, evidence
