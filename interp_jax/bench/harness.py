"""What every benchmark shares: the timers, the torch peer and the standard inputs.

    ms = timed(fn, repeats)                                   # median, after a compile call
    ref_ms, ms, ratio, q1, q3 = paired(reference, fn, repeats)   # interleaved pairs
    print(ratio_text(ratio, q1, q3))                          # "0.65x [0.62-0.74]"
    peer = torch_peer()                                       # bench/torch_peer.py, or None
"""

import os
import statistics
import time

import jax
import jax.numpy as jnp

from interp_jax import models

EPS = 8 / 255


def timed(fn, repeats: int) -> float:
  """Median wall time of fn() in ms, after one untimed call (compilation)."""
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append((time.perf_counter() - start) * 1e3)
  return statistics.median(times)


def paired(reference, fn, repeats: int) -> tuple[float, float, float, float, float]:
  """Interleaved timings of reference() and fn(), after one untimed call of each.

  Returns (median reference ms, median fn ms, median of the per-pair ratios, and
  that ratio's lower and upper quartile). On a shared or throttling machine the
  speed drifts by more than the few percent a goal like 1.05x asks to resolve;
  pairs taken back to back see the same drift, so their ratios are steadier
  than a ratio of two separate medians.
  """
  jax.block_until_ready(reference())
  jax.block_until_ready(fn())
  refs, times = [], []
  for i in range(repeats):
    order = ((refs, reference), (times, fn))
    for out, call in order if i % 2 == 0 else order[::-1]:  # neither always goes first
      start = time.perf_counter()
      jax.block_until_ready(call())
      out.append((time.perf_counter() - start) * 1e3)
  ratios = sorted(t / r for t, r in zip(times, refs))
  # "inclusive": quartiles within the observed ratios, however few.
  q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else ratios * 3
  return (statistics.median(refs), statistics.median(times), statistics.median(ratios),
          q[0], q[2])


def ratio_text(median, low, high) -> str:
  return f"{median:.2f}x [{low:.2f}-{high:.2f}]"


def torch_peer():
  """bench/torch_peer.py when torch and torchattacks are installed, else None."""
  # Idle OpenMP threads sleep instead of spinning: spinning, they take the cores from the
  # JAX half of an interleaved pair (and from anything else running). Read when torch
  # loads, so it must be set before.
  os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
  try:
    import torch
    from interp_jax.bench import torch_peer
  except ImportError:
    return None
  torch.set_num_threads(len(os.sched_getaffinity(0)))  # as many cores as XLA uses
  return torch_peer


def small_cnn_inputs(batch, size):
  """small_cnn (9 classes) with random weights, a uniform batch and cyclic labels."""
  model = models.create("small_cnn", num_classes=9)
  x = jax.random.uniform(jax.random.key(0), (batch, size, size, 3))
  y = jnp.arange(batch, dtype=jnp.int32) % 9
  variables = model.init(jax.random.key(1), x)
  return model, variables, x, y
