"""Paired t-intervals against scipy's paired t-test and a hand-worked case."""

import numpy as np
import pytest
from scipy import stats

from interp_jax.reproduction import intervals


def test_a_hand_worked_interval():
  # differences 1, 2, 3: mean 2, sd 1, t_{0.975, 2} = 4.302653: 2 +/- 4.302653 / sqrt(3)
  d = intervals.paired_difference([3.0, 5.0, 7.0], [2.0, 3.0, 4.0])
  assert d.mean == pytest.approx(2.0) and d.sd == pytest.approx(1.0)
  assert d.low == pytest.approx(2 - 4.302653 / np.sqrt(3), abs=1e-6)
  assert d.high == pytest.approx(2 + 4.302653 / np.sqrt(3), abs=1e-6)
  assert d.side == "straddles zero"
  assert d.per_seed == (1.0, 2.0, 3.0) and d.n == 3
  assert "(95%, 3 seeds)" in intervals.describe(d)
  assert intervals.Interval.from_json(d.to_json()) == d   # summary.json's form, read back


@pytest.mark.parametrize("seed", range(5))
def test_equals_scipys_paired_t_test(seed):
  rng = np.random.default_rng(seed)
  a = rng.normal(0.7, 0.02, 5)
  b = a - rng.normal(0.01, 0.01, 5)
  d = intervals.paired_difference(a, b, confidence=0.9)
  ci = stats.ttest_rel(a, b).confidence_interval(confidence_level=0.9)
  assert (d.low, d.high) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_sides_and_bad_input():
  assert intervals.paired_difference([1.0, 1.1, 1.2], [0.0, 0.0, 0.1]).side == "above zero"
  assert intervals.paired_difference([0.0, 0.1], [1.0, 1.0]).side == "below zero"
  one = intervals.paired_difference([0.5], [0.4])
  assert one.side == "one seed" and one.low is None and one.sd is None
  assert one.per_seed == pytest.approx((0.1,)) and "(one seed: no interval)" in (
      intervals.describe(one))
  with pytest.raises(ValueError, match="equal lengths"):
    intervals.paired_difference([1.0, 2.0], [1.0])
  with pytest.raises(ValueError, match="confidence"):
    intervals.t_interval([1.0, 2.0], confidence=1.5)


def test_a_stored_side_must_be_the_side_of_the_bounds():
  import dataclasses
  d = intervals.paired_difference([1.0, 1.1, 1.2], [0.0, 0.0, 0.1])
  with pytest.raises(ValueError, match="is 'above zero', not 'straddles zero'"):
    dataclasses.replace(d, side="straddles zero")   # e.g. a hand-edited summary.json
  with pytest.raises(ValueError, match="is 'straddles zero', not 'above zero'"):
    dataclasses.replace(d, low=-0.1)                # bounds moved, side left behind
