"""Consistency at matched attack success, against hand-worked interpolations."""

import types

import pytest

from interp_jax.analysis.results import CurvePoint
from interp_jax.reproduction import matched


def _point(factor, rate, mean, paired=None, accuracy=0.9, eps0=0.1):
  return CurvePoint(factor=factor, eps=factor * eps0, turned_wrong=rate, mean=mean,
                    paired_mean=paired, accuracy=accuracy, purity=None, num_included=10)


def test_the_value_is_interpolated_linearly_in_eps_between_the_bracketing_points():
  # Rates 0, 0.2, 0.4, 0.7, 0.95 at 0, 0.25, 0.5, 1, 2 x eps (eps = 0.1). Rate 0.5 lies
  # between 0.5 x (0.4) and 1 x (0.7): t = (0.5 - 0.4) / (0.7 - 0.4) = 1/3, so
  # eps = 0.05 + (0.10 - 0.05) / 3 = 0.0666..., factor 0.5 + 0.5 / 3 = 0.6666...,
  # mean 0.62 + (0.50 - 0.62) / 3 = 0.58, paired 0.60 + (0.45 - 0.60) / 3 = 0.55.
  points = [_point(0.0, 0.0, 0.80, 0.78), _point(0.25, 0.2, 0.70, 0.69),
            _point(0.5, 0.4, 0.62, 0.60), _point(1.0, 0.7, 0.50, 0.45),
            _point(2.0, 0.95, 0.40, 0.35)]
  got = matched.at_rate(points[::-1], 0.5, "mean")   # any order: sorted by eps
  assert got.between == (2, 3) and got.reached and not got.derived
  assert got.eps == pytest.approx(0.05 + 0.05 / 3)
  assert got.factor == pytest.approx(0.5 + 0.5 / 3)
  assert got.value == pytest.approx(0.58)
  assert got.max_rate == 0.95
  assert matched.at_rate(points, 0.5, "paired_mean").value == pytest.approx(0.55)
  # A rate met exactly at a point takes that point's value (t = 1): 0.7 -> 1 x eps.
  exact = matched.at_rate(points, 0.7, "mean")
  assert exact.between == (2, 3) and exact.value == pytest.approx(0.50)
  # A low rate is read between the real images (rate 0) and the first attacked point:
  # t = 0.1 / 0.2, mean 0.80 - 0.05.
  assert matched.at_rate(points, 0.1, "mean").value == pytest.approx(0.75)


def test_the_first_crossing_decides_when_the_rate_is_not_monotone():
  # 0 -> 0.6 -> 0.4 -> 0.8: rate 0.5 is first crossed between 0 and 0.5 x eps
  # (t = 0.5 / 0.6), not between 1 and 2 x.
  points = [_point(0.0, 0.0, 0.9), _point(0.5, 0.6, 0.6), _point(1.0, 0.4, 0.5),
            _point(2.0, 0.8, 0.3)]
  got = matched.at_rate(points, 0.5, "mean")
  assert got.between == (0, 1)
  assert got.value == pytest.approx(0.9 - 0.3 * 0.5 / 0.6)


def test_a_model_that_never_reaches_the_rate_has_no_value():
  # A robust model: its attack turns at most 45% of its correct images wrong at 2 x eps.
  points = [_point(0.0, 0.0, 0.8), _point(1.0, 0.3, 0.7), _point(2.0, 0.45, 0.6)]
  got = matched.at_rate(points, 0.5, "mean")
  assert got.value is None and got.eps is None and got.reached is False
  assert got.max_rate == 0.45
  why = matched.missing("adv", [3], [got])
  assert why == ["adv seed 3 never reaches 50% within the sweep (at most 45%)"]
  # Reached, but no neuron included at a bracketing point: no value either, said so.
  holes = matched.at_rate([_point(0.0, 0.0, 0.8), _point(1.0, 0.6, None)], 0.5, "mean")
  assert holes.reached and holes.value is None
  assert "no included neuron" in matched.missing("adv", [3], [holes])[0]
  # A seed analysed without a sweep.
  none = matched.series([types.SimpleNamespace(eps_curve=None)], 0.5, "mean")
  assert none[0].value is None and "has no eps sweep" in matched.missing("adv", [0], none)[0]


def test_rates_are_derived_from_accuracies_when_the_sweep_has_none():
  # Clean accuracy 0.8; accuracy 0.6 at 1 x and 0.2 at 2 x: rates 1 - 0.6/0.8 = 0.25 and
  # 1 - 0.2/0.8 = 0.75. Rate 0.5: t = 0.5 between 1 and 2 x, mean 0.6 + 0.5 (0.4 - 0.6).
  points = [_point(f, None, m, accuracy=a) for f, m, a in ((0.0, 0.8, 0.8), (1.0, 0.6, 0.6),
                                                          (2.0, 0.4, 0.2))]
  got = matched.at_rate(points, 0.5, "mean")
  assert got.derived and got.value == pytest.approx(0.5)
  assert got.factor == pytest.approx(1.5)


def test_a_sweep_must_start_at_the_real_images():
  with pytest.raises(ValueError, match="must start at eps x 0"):
    matched.at_rate([_point(0.5, 0.2, 0.7), _point(1.0, 0.6, 0.6)], 0.5)
