"""findings.evaluate on hand-picked numbers: every branch of every statement.

The summaries are built from per-seed analyses through the same
`differences` the reproduction uses, so a statement is decided by intervals
worked out here by hand (three seeds: mean +/- t(0.975, 2) sd / sqrt 3).
"""

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import stats

from interp_jax.analysis import results as R
from interp_jax.reproduction import findings
from interp_jax.reproduction.differences import differences
from interp_jax.reproduction.over_seeds import RunOutcome, model_summary
from interp_jax.reproduction.summary import Protocol, Summary
from conftest import replaced, stub_layer, stub_results, stub_set

CRITERIA = findings.default_criteria()
CRITERIA.min_seeds = 3     # these summaries have three seeds
T2 = 4.302652729749464   # Student t, 97.5% quantile, 2 degrees of freedom


def _results(real, adv, clean, pgd, chance=0.49, spread=0.01):
  """One seed's analysis of one model at fc1 (the fields the summary reads)."""
  one = lambda mean: stub_set(mean, 80, (chance, spread), mean, (0.11, 0.01))
  sets = {"real": one(real), "adversarial": one(adv), "adversarial_by_prediction": one(adv),
          "successful": one(adv - 0.05), "shared": one(adv), "mixed": one(real)}
  pairs = {s: (80, real, sets[s].mean) for s in ("adversarial", "successful", "shared")}
  return stub_results({"fc1": stub_layer(128, sets, pairs, overlap=0.7)}, clean, pgd,
                      shared=pgd, success_rate=1 - pgd)


# How each variant's numbers move over the three seeds (every triple sums to zero, so
# the means over seeds are the values _summary is given). Each variant moves its own
# way, and its adversarial set not quite with its real set, so a difference between two
# variants, or between two sets of one variant, varies from seed to seed: every
# interval the findings read has a width.
_REAL = {"standard": (-0.004, 0.0, 0.004), "adv": (0.002, 0.002, -0.004),
         "adv_consistent": (-0.001, 0.003, -0.002)}
JITTER = {v: {"real": r, "adv": tuple(a + b for a, b in zip(r, (-0.0005, 0.001, -0.0005))),
              "clean": c, "pgd": p}
          for (v, r), c, p in zip(_REAL.items(),
                                  [(0.002, 0.001, -0.003), (-0.001, 0.003, -0.002),
                                   (0.003, -0.002, -0.001)],
                                  [(0.002, -0.004, 0.002), (0.001, 0.001, -0.002),
                                   (-0.003, 0.001, 0.002)])}


def _per_seed(std_real=0.74, std_adv=0.66, adv_adv=0.68, cons_adv=0.70, std_clean=0.92,
              cons_clean=0.85, std_pgd=0.06, cons_pgd=0.42, seeds=3, scale=None):
  """Each variant's analyses: three seeds moved by JITTER (one seed: the values
  themselves); scale multiplies the jitter of a (variant, number), to widen the
  intervals that read it."""
  scale = scale or {}

  def runs(variant, real, adv, clean, pgd):
    j = lambda what, s: 0.0 if seeds == 1 else JITTER[variant][what][s] * scale.get(
        (variant, what), 1.0)
    return [_results(real + j("real", s), adv + j("adv", s), clean + j("clean", s),
                     pgd + j("pgd", s)) for s in range(seeds)]

  return {"standard": runs("standard", std_real, std_adv, std_clean, std_pgd),
          "adv": runs("adv", 0.71, adv_adv, 0.85, 0.38),
          "adv_consistent": runs("adv_consistent", 0.73, cons_adv, cons_clean, cons_pgd)}


def _summary_of(models, diffs, seeds: int, robust_evaluation=None) -> Summary:
  """A Summary holding what the statements read; the record-keeping fields stand in."""
  return Summary(layer="fc1", eps=4 / 255, seeds=tuple(range(seeds)), variants=tuple(models),
                 protocol=Protocol(1, None, None, None, True, {}), environment={},
                 criteria={}, analysis={}, config={}, models=models, differences=diffs,
                 test_shares=(), robust_evaluation=robust_evaluation)


def _summary(**changes) -> Summary:
  """_per_seed's analyses summarised as the reproduction does (protocol 1)."""
  per_seed = _per_seed(**changes)
  models = {v: model_summary([RunOutcome(r, 0.5, "w") for r in rs])
            for v, rs in per_seed.items()}
  return _summary_of(models, differences(per_seed, "fc1"), len(per_seed["standard"]))


def _holds(summary, criteria=CRITERIA):
  return [s.holds for s in findings.evaluate(summary, criteria)]


def test_all_three_hold_on_the_demo_like_numbers():
  statements = findings.evaluate(_summary(), CRITERIA)
  assert [s.holds for s in statements] == [True, True, True]
  assert [s.verdict for s in statements] == ["holds"] * 3
  text = statements[1].evidence
  # (0.74 - 0.66) / (0.74 - 0.49) = 32% of the above-chance consistency removed
  assert "removes 32%" in text and "over the 80 neurons" in text


def test_the_interval_is_a_t_interval_worked_by_hand():
  d = _summary(scale={("adv_consistent", "adv"): 10}).differences.decisive
  # adv_consistent - adv per seed: 0.70 + 10 x (-0.0015, 0.004, -0.0025)
  # - 0.68 - (0.0015, 0.003, -0.0045)
  diffs = [0.0035, 0.057, -0.0005]
  sd = math.sqrt(sum((x - 0.02) ** 2 for x in diffs) / 2)
  got = d["adv_consistent_minus_adv"]
  assert got.per_seed == pytest.approx(diffs)
  assert got.mean == pytest.approx(0.02) and got.sd == pytest.approx(sd)
  assert got.low == pytest.approx(0.02 - T2 * sd / math.sqrt(3))
  assert got.high == pytest.approx(0.02 + T2 * sd / math.sqrt(3))
  # The other intervals are paired by seed too: standard's real - adversarial per seed
  # is 0.08 + (-0.004, 0, 0.004) - (-0.0045, 0.001, 0.0035); clean drop 0.07 + (0.002,
  # 0.001, -0.003) - (0.003, -0.002, -0.001); robust gain 0.36 + (-0.003, 0.001, 0.002)
  # - (0.002, -0.004, 0.002).
  assert d["standard_real_minus_adversarial"].per_seed == pytest.approx(
      [0.0805, 0.079, 0.0805])
  assert d["clean_drop"].per_seed == pytest.approx([0.069, 0.073, 0.068])
  assert d["robust_gain"].per_seed == pytest.approx([0.355, 0.365, 0.36])
  # adv_consistent - standard on adversarial images: 0.04 + 10 x (-0.0015, 0.004,
  # -0.0025) - (-0.0045, 0.001, 0.0035); standard's real - chance: 0.25 + (-0.004, 0,
  # 0.004).
  assert d["adv_consistent_minus_standard"].per_seed == pytest.approx(
      [0.0295, 0.079, 0.0115])
  assert d["standard_real_minus_chance"].per_seed == pytest.approx([0.246, 0.25, 0.254])


def test_every_interval_the_findings_read_has_a_width_and_is_scipys():
  """With each variant's own jitter no difference is the same on every seed, so each
  interval has a width, and it is scipy's Student-t interval of its per-seed values
  (an interval of zero width would pass for any quantile or degrees of freedom)."""
  d = _summary().differences.decisive
  read = ("standard_real_minus_chance", "standard_real_minus_adversarial",
          "adv_consistent_minus_adv", "adv_consistent_minus_standard", "clean_drop",
          "robust_gain")
  assert set(read) <= set(d)
  for name in read:
    values = np.asarray(d[name].per_seed)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(),
                                 scale=stats.sem(values))
    assert d[name].high - d[name].low > 1e-3, name
    assert (d[name].low, d[name].high) == pytest.approx((low, high), abs=1e-12), name


@pytest.mark.parametrize("changes, which", [
    ({"std_real": 0.515, "std_adv": 0.50}, 0),   # 2.5 sd above chance < 3: not measurable
    ({"std_adv": 0.68}, 1),                      # removes 24% < 25%: not exposed
    ({"std_real": 0.45, "std_adv": 0.40}, 1),    # below chance: nothing to expose
    ({"cons_adv": 0.675}, 2),                    # adv_consistent below adv
    ({"cons_adv": 0.65, "adv_adv": 0.60}, 2),    # adv_consistent below standard
    ({"cons_clean": 0.80}, 2),                   # clean drop 0.12 > 0.10
    ({"cons_pgd": 0.20}, 2),                     # robustness gain 0.14 < 0.20
])
def test_each_criterion_can_fail_alone(changes, which):
  holds = _holds(_summary(**changes))
  assert holds[which] is False
  assert all(h for i, h in enumerate(holds) if i != which and not (
      which == 1 and i == 0 and changes.get("std_real", 1) < 0.5))


STRADDLES = {"real above chance": "standard_real_minus_chance",
             "real above adversarial": "standard_real_minus_adversarial",
             "adv_consistent - adv": "adv_consistent_minus_adv",
             "adv_consistent - standard": "adv_consistent_minus_standard",
             "robust gain above zero": "robust_gain"}


@pytest.mark.parametrize("changes, scale, which, check", [
    # standard real - chance: 0.04 on the mean (4 sd of chance), seeds spread +-0.02
    ({"std_real": 0.53, "std_adv": 0.50}, {("standard", "real"): 5}, 0, "real above chance"),
    # standard real - adversarial: 0.08 on the mean, seeds spread +-0.04
    ({}, {("standard", "adv"): 10}, 1, "real above adversarial"),
    # adv_consistent - adv: 0.02 on the mean, seeds spread up to 0.04
    ({}, {("adv_consistent", "adv"): 10}, 2, "adv_consistent - adv"),
    # adv_consistent - standard: 0.04 on the mean, standard's seeds spread +-0.06
    ({}, {("standard", "adv"): 15}, 2, "adv_consistent - standard"),
    # robust gain: 0.36 on the mean (above 0.20), seeds spread +-0.2
    ({}, {("adv_consistent", "pgd"): 60}, 2, "robust gain above zero"),
])
def test_an_interval_that_straddles_zero_decides_against_the_finding(changes, scale, which,
                                                                     check):
  """Each interval a finding reads: its mean is on the finding's side, but the seeds
  spread so much that it straddles zero, so the finding does not hold."""
  summary = _summary(**changes, scale=scale)
  d = summary.differences.decisive[STRADDLES[check]]
  assert d.mean > 0 and d.low < 0 < d.high
  statement = findings.evaluate(summary, CRITERIA)[which]
  assert statement.holds is False and check in statement.failed
  assert "95%, 3 seeds" in statement.evidence
  # The same means with the seeds close together pass that check.
  assert check not in findings.evaluate(_summary(**changes), CRITERIA)[which].failed
  if check == "adv_consistent - adv":  # and nothing else is to blame
    assert [s.holds for s in findings.evaluate(summary, CRITERIA)] == [True, True, False]
    assert "clean drop" not in statement.failed


def test_fewer_seeds_than_declared_decide_nothing():
  statements = findings.evaluate(_summary(seeds=1), CRITERIA)
  assert [s.holds for s in statements] == [None] * 3
  assert all(s.verdict == "undecided: one seed decides nothing" for s in statements)
  # ... even where a threshold fails on that seed; the evidence says which.
  third = findings.evaluate(_summary(seeds=1, cons_clean=0.80), CRITERIA)[2]
  assert third.holds is None and "not met on these seeds: clean drop)" in third.evidence
  # A check one seed cannot judge (it needs an interval) is not called unmet: the first
  # statement's real - chance is positive, and its evidence must not contradict that.
  first = statements[0].evidence
  assert "not met" not in first
  assert "not judged: real above chance needs an interval over seeds" in first
  # Three seeds where five are declared: undecided too.
  five = copy.deepcopy(CRITERIA)
  five.min_seeds = 5
  statements = findings.evaluate(_summary(), five)
  assert [s.holds for s in statements] == [None] * 3
  assert "3 seeds, and the protocol decides with at least 5" in statements[0].verdict


def test_exposure_can_be_declared_the_measure_of_finding_3():
  criteria = copy.deepcopy(CRITERIA)
  criteria.repair_measure = "exposure"
  # adv_consistent: real 0.73, adversarial 0.70 -> exposure 0.03 / 0.24 = 0.125;
  # adv: 0.71, 0.68 -> 0.136; standard: 0.74, 0.66 -> 0.32. Less exposed than both.
  assert _holds(_summary(), criteria) == [True, True, True]
  # adv 0.71 -> 0.70 (exposure 0.045) is less exposed than adv_consistent: fails.
  assert _holds(_summary(adv_adv=0.70), criteria)[2] is False
  criteria.repair_measure = "sideways"
  with pytest.raises(ValueError, match="repair_measure"):
    findings.evaluate(_summary(), criteria)


def test_the_controls_are_reported_but_decide_nothing():
  summary = _summary()
  worse = replaced(summary, ("models", "adv_consistent", "layers", "fc1", "sets", "successful"),
                   0.1)
  assert _holds(worse) == _holds(summary)
  assert "adv_consistent 0.100" in findings.evaluate(worse, CRITERIA)[2].evidence


def test_a_missing_number_leaves_only_the_findings_that_need_it_undecided():
  summary = replaced(_summary(), ("models", "adv", "layers", "fc1", "sets", "adversarial"),
                     None)
  statements = findings.evaluate(summary, CRITERIA)
  assert [s.holds for s in statements] == [True, True, None]
  assert statements[2].verdict == "undecided: a number it needs is missing"
  assert "adv's adversarial set" in statements[2].evidence


# Protocol 2: every threshold on the bound of its interval.

V2 = findings.default_criteria()
V2.protocol, V2.min_seeds = 2, 3
# Each model's eps sweep (factors 0, 0.5, 1, 2): the share of its correct images its
# attack turns wrong, and its consistency there: real, halfway, its adversarial set, and
# 0.02 below that. At 50%, standard is read between 1 and 2 x eps (t = 0.2), adv between
# 0.5 and 1 x (t = 0.8), adv_consistent between 1 and 2 x (t = 0.2).
RATES = {"standard": (0.0, 0.2, 0.4, 0.9), "adv": (0.0, 0.3, 0.55, 0.8),
         "adv_consistent": (0.0, 0.25, 0.45, 0.7)}


def _with_curve(results, variant, rates=None):
  real = results.layers["fc1"].sets["real"].mean
  adv = results.layers["fc1"].sets["adversarial"].mean
  means = (real, (real + adv) / 2, adv, adv - 0.02)
  return dataclasses.replace(results, eps_curve=R.EpsCurve("fc1", 80, tuple(
      R.CurvePoint(factor=f, eps=f * 4 / 255, mean=m, purity=None, num_included=80,
                   accuracy=0.5, paired_mean=m, turned_wrong=r)
      for f, m, r in zip((0.0, 0.5, 1.0, 2.0), means, rates or RATES[variant]))))


def _summary_v2(rates=None, criteria=V2, **changes):
  """_summary's numbers, each seed with an eps sweep and the declared robust evaluation
  (here: the analysis attack's accuracy), summarised as the reproduction does."""
  from interp_jax.reproduction import robust
  from interp_jax.reproduction.over_seeds import RunOutcome, summarise_numbers
  runs = {}
  for v, per_seed in _per_seed(**changes).items():
    runs[v] = []
    for s, results in enumerate(per_seed):
      r = (rates or {}).get((v, s))
      runs[v].append(RunOutcome(_with_curve(results, v, r), 0.5, "w",
                                results.accuracy.adversarial if v != "adv" else None))
  models, diffs = summarise_numbers(runs, "fc1", criteria)
  return _summary_of(models, diffs, len(runs["standard"]), robust.describe(criteria))


def test_protocol_2_holds_on_the_demo_like_numbers():
  summary = _summary_v2()
  statements = findings.evaluate(summary, V2)
  assert [s.holds for s in statements] == [True, True, True], statements
  third = statements[2].evidence
  assert "(a) On the successful attacks" in third and "(b) At matched attack success" in third
  assert "the paper's measure (each model's own adversarial images; decides nothing" in third
  assert "AutoAttack (standard) on 200 images of each seed's test share" in third
  # Matched values by hand, at the means over seeds: standard 0.66 - 0.2 x 0.02 = 0.656,
  # adv 0.695 - 0.8 x 0.015 = 0.683, adv_consistent 0.70 - 0.2 x 0.02 = 0.696.
  d = summary.differences.decisive
  assert d["matched_adv_consistent_minus_adv"].mean == pytest.approx(0.696 - 0.683)
  assert d["matched_adv_consistent_minus_standard"].mean == pytest.approx(0.696 - 0.656)
  assert summary.models["adv"].matched.mean_factor == pytest.approx(0.9)


def _low(values):
  """The lower bound of the 95% t-interval of three per-seed values, by hand."""
  mean = sum(values) / 3
  sd = math.sqrt(sum((x - mean) ** 2 for x in values) / 2)
  return mean - T2 * sd / math.sqrt(3), mean + T2 * sd / math.sqrt(3)


@pytest.mark.parametrize("changes, scale, which, check, per_seed, threshold", [
    # real - chance 0.04 + 2 x (-0.004, 0, 0.004): mean 4 sd of chance (0.01), lower
    # bound 0.0201 = 2.0 sd < 3.
    ({"std_real": 0.53, "std_adv": 0.50}, {("standard", "real"): 2}, 0,
     "sigmas (lower bound)", [0.032, 0.04, 0.048], 0.03),
    # share removed (0.065 + (-0.004, 0, 0.004) - (-0.0045, 0.001, 0.0035)) / (0.25 +
    # (-0.004, 0, 0.004)): mean 0.260 >= 0.25, lower bound 0.2465 < 0.25.
    ({"std_adv": 0.675}, {}, 1, "share removed (lower bound)",
     [0.0655 / 0.246, 0.064 / 0.25, 0.0655 / 0.254], 0.25),
    # clean drop 0.09 + (0.002, 0.001, -0.003) - 3 x (0.003, -0.002, -0.001): mean 0.09
    # <= 0.10, upper bound 0.1074 > 0.10.
    ({"cons_clean": 0.83}, {("adv_consistent", "clean"): 3}, 2, "clean drop (upper bound)",
     [0.083, 0.097, 0.09], 0.10),
    # robust gain 0.21 + (-0.003, 0.001, 0.002) - (0.002, -0.004, 0.002): mean 0.21 >=
    # 0.20, lower bound 0.1976 < 0.20.
    ({"cons_pgd": 0.27}, {}, 2, "robust gain (lower bound)", [0.205, 0.215, 0.21], 0.20),
])
def test_a_mean_past_its_threshold_with_its_bound_short_holds_under_1_not_under_2(
    changes, scale, which, check, per_seed, threshold):
  v1 = findings.evaluate(_summary(**changes, scale=scale), CRITERIA)
  assert [s.holds for s in v1] == [True, True, True]
  low, high = _low(per_seed)
  bound = high if "upper" in check else low
  mean = sum(per_seed) / 3
  if which == 0:  # in standard deviations of the chance baseline (0.01)
    assert mean / 0.01 >= 3 > bound / 0.01 > 0
  elif "upper" in check:
    assert mean <= threshold < bound
  else:
    assert mean >= threshold > bound
  statements = findings.evaluate(_summary_v2(**changes, scale=scale), V2)
  assert statements[which].holds is False and statements[which].failed == (check,)
  assert [s.holds for i, s in enumerate(statements) if i != which] == [True, True]
  evidence = statements[which].evidence
  word = "upper" if "upper" in check else "lower"
  assert f"{word} bound {bound if which else low:+.3f}" in evidence, evidence
  assert "95%, 3 seeds" in evidence


def test_a_model_that_never_reaches_the_rate_leaves_finding_3_undecided_not_dropped():
  # adv's seed 1 is turned wrong on at most 45% of its correct images within the sweep.
  rates = {("adv", 1): (0.0, 0.2, 0.3, 0.45)}
  summary = _summary_v2(rates=rates)
  assert summary.differences.decisive["matched_adv_consistent_minus_adv"] is None
  third = findings.evaluate(summary, V2)[2]
  assert third.holds is None and third.failed == ()
  assert third.undecided == ("(b) matched: adv_consistent - adv",)
  assert third.verdict == "undecided: (b) matched: adv_consistent - adv cannot be decided"
  assert "adv seed 1 never reaches 50% within the sweep (at most 45%)" in third.evidence
  # ... and a check that fails still decides against it, the undecided one named.
  failing = findings.evaluate(_summary_v2(rates=rates, cons_clean=0.80), V2)[2]
  assert failing.holds is False and failing.failed == ("clean drop (upper bound)",)
  assert "undecided besides: (b) matched: adv_consistent - adv" in failing.evidence


def test_finding_3_under_protocol_2_is_not_decided_by_the_models_own_adversarial_sets():
  """The confound: adv_consistent ahead on its own adversarial images (the paper's
  measure) but behind adv on the successful attacks: protocol 1 holds, 2 does not."""
  summary, summary2 = _summary(), _summary_v2()
  where = ("differences", "layers", "fc1", "successful", "adv_consistent_minus_adv")
  behind = dataclasses.replace(summary2.differences.layers["fc1"]["successful"][
      "adv_consistent_minus_adv"], mean=-0.012, low=-0.021, high=-0.004, side="below zero")
  summary = replaced(summary, where, behind)
  summary2 = replaced(replaced(summary2, where, behind), (
      "differences", "decisive", "successful_adv_consistent_minus_adv"), behind)
  assert _holds(summary) == [True, True, True]
  third = findings.evaluate(summary2, V2)[2]
  assert third.holds is False and third.failed == ("(a) successful: adv_consistent - adv",)


def test_protocol_2_leaves_a_finding_whose_numbers_are_missing_undecided():
  summary = replaced(_summary_v2(), ("models", "standard", "layers", "fc1", "comparisons",
                                     "real_vs_adversarial", "other"), None)
  statements = findings.evaluate(summary, V2)
  assert [s.holds for s in statements] == [True, None, True]
  assert statements[1].verdict == "undecided: a number it needs is missing"


def test_protocol_2_with_fewer_seeds_than_declared_decides_nothing():
  five = copy.deepcopy(V2)
  five.min_seeds = 5
  statements = findings.evaluate(_summary_v2(cons_clean=0.80), five)
  assert [s.holds for s in statements] == [None] * 3
  assert "3 seeds, and the protocol decides with at least 5" in statements[2].verdict
  assert "not met on these seeds: clean drop (upper bound)" in statements[2].evidence


def test_the_summary_reads_back_from_its_json_and_refuses_a_misspelt_field():
  summary = _summary_v2()
  summary = dataclasses.replace(summary, statements=tuple(findings.evaluate(summary, V2)))
  obj = json.loads(json.dumps(summary.to_json()))
  assert Summary.from_json(obj) == summary   # intervals, matched values, statements
  drop = obj["differences"]["decisive"]["clean_drop"]
  drop["hihg"] = drop.pop("high")
  with pytest.raises(ValueError, match=r"^summary\.differences\.decisive\.clean_drop is not "
                                       r"an Interval: unknown hihg; missing high$"):
    Summary.from_json(obj, "summary")
  with pytest.raises(AttributeError):
    summary.models["adv"].matched.mean_facter  # noqa: B018: fails where it is read
