"""Paired differences over seeds and their t-intervals: how a finding is decided.

    d = paired_difference(cons_adv_per_seed, adv_adv_per_seed)   # a - b, seed by seed
    d.mean, d.low, d.high, d.n, d.per_seed
    d.side -> "above zero" | "below zero" | "straddles zero" | "one seed"

Seeds pair the runs: run s of every variant shares seed s (data order,
initialisation, attack keys), so the difference of two variants is taken
within each seed and its mean gets a Student-t interval over the seeds.
Reference: METHOD.md, "How a finding is decided".
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from scipy import stats

from interp_jax.records import Record, record


@record
class Interval(Record):
  """A mean over seeds, its sample sd and two-sided Student-t interval (sd and bounds
  None for one seed), where the interval lies with respect to zero, and the values."""
  mean: float
  sd: Optional[float]
  n: int
  low: Optional[float]
  high: Optional[float]
  confidence: float
  side: str        # "above zero", "below zero", "straddles zero" or "one seed"
  per_seed: tuple[float, ...]

  def __post_init__(self):  # the side is stored for the file's reader, never trusted alone
    if self.side != _side(self.low, self.high):
      raise ValueError(f"the side of an interval [{self.low}, {self.high}] is "
                       f"{_side(self.low, self.high)!r}, not {self.side!r}")


def _side(low, high) -> str:
  if low is None:
    return "one seed"
  if low > 0:
    return "above zero"
  if high < 0:
    return "below zero"
  return "straddles zero"


def t_interval(values, confidence: float = 0.95) -> Interval:
  """Mean of `values` with its two-sided Student-t interval (None bounds for n < 2)."""
  x = np.asarray(values, np.float64)
  if x.ndim != 1 or x.size == 0:
    raise ValueError(f"need a 1-d list of at least one value, got shape {x.shape}")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}")
  n, mean, sd, low, high = x.size, float(x.mean()), None, None, None
  if n > 1:
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
  return Interval(mean, sd, n, low, high, confidence, _side(low, high),
                  tuple(float(v) for v in x))


def paired_difference(a, b, confidence: float = 0.95) -> Interval:
  """The interval of mean(a - b) over paired seeds."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"paired values need equal lengths, got {a.shape} and {b.shape}")
  return t_interval(a - b, confidence)


def describe(interval: Interval, digits: int = 3) -> str:
  """'+0.021 [+0.008, +0.034] (95%, 5 seeds)', or '+0.021 (one seed: no interval)'."""
  mean = f"{interval.mean:+.{digits}f}"
  if interval.low is None:
    return f"{mean} (one seed: no interval)"
  return (f"{mean} [{interval.low:+.{digits}f}, {interval.high:+.{digits}f}] "
          f"({interval.confidence:.0%}, {interval.n} seeds)")
