"""findings.evaluate on hand-picked numbers: every branch of every statement."""

import copy

import pytest

from interp_jax.reproduction import findings


def _summary(std_real=0.74, std_adv=0.66, adv_adv=0.68, cons_adv=0.70, chance=0.49,
             spread=0.01, std_clean=0.92, cons_clean=0.85, std_pgd=0.06, cons_pgd=0.42):
  def model(real, adv, clean, pgd):
    sets = {"real": real, "adversarial": adv, "adversarial_by_prediction": adv,
            "successful": adv - 0.05, "shared": adv}
    return {"clean": clean, "pgd": pgd, "layers": {"fc1": {
        "num_neurons": 128, "sets": sets, "included": {s: 80 for s in sets},
        "chance": {s: chance for s in sets}, "chance_spread": {s: spread for s in sets},
        "comparisons": {"real_vs_adversarial": {"num_neurons": 80, "real": real,
                                                "adversarial": adv},
                        "real_vs_successful": {"num_neurons": 80, "real": real,
                                               "successful": adv - 0.05}},
        "topk_overlap": 0.7}}}
  return {"layer": "fc1", "models": {
      "standard": model(std_real, std_adv, std_clean, std_pgd),
      "adv": model(0.71, adv_adv, 0.85, 0.38),
      "adv_consistent": model(0.73, cons_adv, cons_clean, cons_pgd)}}


CRITERIA = findings.default_criteria()


def _holds(summary):
  return [s["holds"] for s in findings.evaluate(summary, CRITERIA)]


def test_all_three_hold_on_the_demo_like_numbers():
  assert _holds(_summary()) == [True, True, True]
  text = findings.evaluate(_summary(), CRITERIA)[1]["evidence"]
  # (0.74 - 0.66) / (0.74 - 0.49) = 32% of the above-chance consistency removed
  assert "removes 32%" in text and "over the 80 neurons" in text


@pytest.mark.parametrize("changes, which", [
    ({"std_real": 0.515, "std_adv": 0.50}, 0),   # 2.5 sd above chance < 3: not measurable
    ({"std_adv": 0.69}, 1),                      # removes 20% < 25%: not exposed
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


def test_the_controls_are_reported_but_decide_nothing():
  summary = _summary()
  worse = copy.deepcopy(summary)
  worse["models"]["adv_consistent"]["layers"]["fc1"]["sets"]["successful"] = 0.1
  assert _holds(worse) == _holds(summary)
  assert "adv_consistent 0.100" in findings.evaluate(worse, CRITERIA)[2]["evidence"]


def test_a_layer_without_included_neurons_decides_nothing_and_says_why():
  summary = _summary()
  layer = summary["models"]["adv"]["layers"]["fc1"]
  layer["sets"]["adversarial"] = None
  statements = findings.evaluate(summary, CRITERIA)
  assert [s["holds"] for s in statements] == [False] * 3
  assert "adv's adversarial set" in statements[2]["evidence"]
