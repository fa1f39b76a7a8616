"""Paired differences over seeds and their t-intervals: how a finding is decided.

    d = paired_difference(cons_adv_per_seed, adv_adv_per_seed)   # a - b, seed by seed
    d -> {"mean", "sd", "n", "low", "high", "confidence"}
    side(d) -> "above zero" | "below zero" | "straddles zero" | "one seed"

Seeds pair the runs: run s of every variant shares seed s (data order,
initialisation, attack keys), so the difference of two variants is taken
within each seed and its mean gets a Student-t interval over the seeds.
Reference: METHOD.md, "How a finding is decided".
"""

import math

import numpy as np
from scipy import stats


def t_interval(values, confidence: float = 0.95) -> dict:
  """Mean of `values` with its two-sided Student-t interval (None bounds for n < 2)."""
  x = np.asarray(values, np.float64)
  if x.ndim != 1 or x.size == 0:
    raise ValueError(f"need a 1-d list of at least one value, got shape {x.shape}")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}")
  n, mean = x.size, float(x.mean())
  if n < 2:
    return {"mean": mean, "sd": None, "n": 1, "low": None, "high": None,
            "confidence": confidence}
  sd = float(x.std(ddof=1))
  half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
  return {"mean": mean, "sd": sd, "n": n, "low": mean - half, "high": mean + half,
          "confidence": confidence}


def paired_difference(a, b, confidence: float = 0.95) -> dict:
  """The interval of mean(a - b) over paired seeds."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"paired values need equal lengths, got {a.shape} and {b.shape}")
  return t_interval(a - b, confidence)


def side(interval: dict) -> str:
  """Where the interval lies with respect to zero."""
  if interval["low"] is None:
    return "one seed"
  if interval["low"] > 0:
    return "above zero"
  if interval["high"] < 0:
    return "below zero"
  return "straddles zero"


def describe(interval: dict, digits: int = 3) -> str:
  """'+0.021 [+0.008, +0.034] (95%, 5 seeds)', or '+0.021 (one seed)'."""
  mean = f"{interval['mean']:+.{digits}f}"
  if interval["low"] is None:
    return f"{mean} (one seed: no interval)"
  return (f"{mean} [{interval['low']:+.{digits}f}, {interval['high']:+.{digits}f}] "
          f"({interval['confidence']:.0%}, {interval['n']} seeds)")
