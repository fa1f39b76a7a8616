"""findings.evaluate on hand-picked numbers: every branch of every statement.

The summaries are built from per-seed analyses through the same
`differences` the reproduction uses, so a statement is decided by intervals
worked out here by hand (three seeds: mean +/- t(0.975, 2) sd / sqrt 3).
"""

import copy
import math

import pytest

from interp_jax.reproduction import findings
from interp_jax.reproduction.differences import differences
from interp_jax.reproduction.experiment import _model_summary

CRITERIA = findings.default_criteria()
CRITERIA.min_seeds = 3     # these summaries have three seeds
T2 = 4.302652729749464   # Student t, 97.5% quantile, 2 degrees of freedom


def _results(real, adv, clean, pgd, chance=0.49, spread=0.01):
  """One seed's analysis of one model at fc1 (the fields the summary reads)."""
  def one(mean):
    return {"mean": mean, "num_included": 80, "chance": {"mean": chance, "std": spread},
            "purity": {"mean": mean, "chance": {"mean": 0.11, "std": 0.01}}}
  sets = {"real": one(real), "adversarial": one(adv), "adversarial_by_prediction": one(adv),
          "successful": one(adv - 0.05), "shared": one(adv), "mixed": one(real)}
  pairs = {f"real_vs_{s}": {"num_neurons": 80, "real": real, s: sets[s]["mean"]}
           for s in ("adversarial", "successful", "shared")}
  return {"accuracy": {"clean": clean, "adversarial": pgd, "shared": pgd},
          "attack": {"success_rate": 1 - pgd},
          "layers": {"fc1": {"num_neurons": 128, "sets": sets, "comparisons": pairs,
                             "topk_overlap": {"mean": 0.7}, "feature_cosine": 0.9}}}


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


def _summary(std_real=0.74, std_adv=0.66, adv_adv=0.68, cons_adv=0.70, std_clean=0.92,
             cons_clean=0.85, std_pgd=0.06, cons_pgd=0.42, seeds=3, scale=None):
  """Three seeds moved by JITTER (one seed: the values themselves); scale multiplies
  the jitter of a (variant, number), to widen the intervals that read it."""
  scale = scale or {}

  def runs(variant, real, adv, clean, pgd):
    j = lambda what, s: 0.0 if seeds == 1 else JITTER[variant][what][s] * scale.get(
        (variant, what), 1.0)
    return [_results(real + j("real", s), adv + j("adv", s), clean + j("clean", s),
                     pgd + j("pgd", s)) for s in range(seeds)]

  per_seed = {"standard": runs("standard", std_real, std_adv, std_clean, std_pgd),
              "adv": runs("adv", 0.71, adv_adv, 0.85, 0.38),
              "adv_consistent": runs("adv_consistent", 0.73, cons_adv, cons_clean, cons_pgd)}
  models = {v: _model_summary([{"results": r, "fgsm": 0.5} for r in rs], ["w"] * len(rs))
            for v, rs in per_seed.items()}
  return {"layer": "fc1", "seeds": list(range(seeds)), "models": models,
          "differences": differences(per_seed, "fc1")}


def _holds(summary, criteria=CRITERIA):
  return [s["holds"] for s in findings.evaluate(summary, criteria)]


def test_all_three_hold_on_the_demo_like_numbers():
  statements = findings.evaluate(_summary(), CRITERIA)
  assert [s["holds"] for s in statements] == [True, True, True]
  assert [s["verdict"] for s in statements] == ["holds"] * 3
  text = statements[1]["evidence"]
  # (0.74 - 0.66) / (0.74 - 0.49) = 32% of the above-chance consistency removed
  assert "removes 32%" in text and "over the 80 neurons" in text


def test_the_interval_is_a_t_interval_worked_by_hand():
  d = _summary(scale={("adv_consistent", "adv"): 10})["differences"]["decisive"]
  # adv_consistent - adv per seed: 0.70 + 10 x (-0.0015, 0.004, -0.0025)
  # - 0.68 - (0.0015, 0.003, -0.0045)
  diffs = [0.0035, 0.057, -0.0005]
  sd = math.sqrt(sum((x - 0.02) ** 2 for x in diffs) / 2)
  got = d["adv_consistent_minus_adv"]
  assert got["per_seed"] == pytest.approx(diffs)
  assert got["mean"] == pytest.approx(0.02) and got["sd"] == pytest.approx(sd)
  assert got["low"] == pytest.approx(0.02 - T2 * sd / math.sqrt(3))
  assert got["high"] == pytest.approx(0.02 + T2 * sd / math.sqrt(3))
  # The other intervals are paired by seed too: standard's real - adversarial per seed
  # is 0.08 + (-0.004, 0, 0.004) - (-0.0045, 0.001, 0.0035); clean drop 0.07 + (0.002,
  # 0.001, -0.003) - (0.003, -0.002, -0.001); robust gain 0.36 + (-0.003, 0.001, 0.002)
  # - (0.002, -0.004, 0.002).
  assert d["standard_real_minus_adversarial"]["per_seed"] == pytest.approx(
      [0.0805, 0.079, 0.0805])
  assert d["clean_drop"]["per_seed"] == pytest.approx([0.069, 0.073, 0.068])
  assert d["robust_gain"]["per_seed"] == pytest.approx([0.355, 0.365, 0.36])


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
  d = summary["differences"]["decisive"][STRADDLES[check]]
  assert d["mean"] > 0 and d["low"] < 0 < d["high"]
  statement = findings.evaluate(summary, CRITERIA)[which]
  assert statement["holds"] is False and check in statement["failed"]
  assert "95%, 3 seeds" in statement["evidence"]
  # The same means with the seeds close together pass that check.
  assert check not in findings.evaluate(_summary(**changes), CRITERIA)[which]["failed"]
  if check == "adv_consistent - adv":  # and nothing else is to blame
    assert [s["holds"] for s in findings.evaluate(summary, CRITERIA)] == [True, True, False]
    assert "clean drop" not in statement["failed"]


def test_fewer_seeds_than_declared_decide_nothing():
  statements = findings.evaluate(_summary(seeds=1), CRITERIA)
  assert [s["holds"] for s in statements] == [None] * 3
  assert all(s["verdict"] == "undecided: one seed decides nothing" for s in statements)
  # ... even where a threshold fails on that seed; the evidence says which.
  third = findings.evaluate(_summary(seeds=1, cons_clean=0.80), CRITERIA)[2]
  assert third["holds"] is None and "not met on these seeds: " in third["evidence"]
  assert "clean drop" in third["evidence"]
  # Three seeds where five are declared: undecided too.
  five = copy.deepcopy(CRITERIA)
  five.min_seeds = 5
  statements = findings.evaluate(_summary(), five)
  assert [s["holds"] for s in statements] == [None] * 3
  assert "3 seeds, and the protocol decides with at least 5" in statements[0]["verdict"]


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
  worse = copy.deepcopy(summary)
  worse["models"]["adv_consistent"]["layers"]["fc1"]["sets"]["successful"] = 0.1
  assert _holds(worse) == _holds(summary)
  assert "adv_consistent 0.100" in findings.evaluate(worse, CRITERIA)[2]["evidence"]


def test_a_missing_number_leaves_only_the_findings_that_need_it_undecided():
  summary = _summary()
  layer = summary["models"]["adv"]["layers"]["fc1"]
  layer["sets"]["adversarial"] = None
  statements = findings.evaluate(summary, CRITERIA)
  assert [s["holds"] for s in statements] == [True, True, None]
  assert statements[2]["verdict"] == "undecided: a number it needs is missing"
  assert "adv's adversarial set" in statements[2]["evidence"]
