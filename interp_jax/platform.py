"""One XLA CPU device per core, so data parallelism uses every core of a CPU host.

XLA's CPU backend runs one device's program largely on one thread: a train
step of the demo's small_cnn (batch 128) took 45 ms on one CPU device and
27 ms split over two on a 2-core machine. Importing interp_jax therefore
asks XLA for one host device per core (a power of two, at most 8) before JAX
starts, unless XLA_FLAGS already names a count. It only shapes the host
platform: on a GPU or TPU, jax.devices() is unchanged. Set
INTERP_JAX_CPU_DEVICES=N to choose N (1 turns it off).
"""

import os
import sys

_FLAG = "--xla_force_host_platform_device_count"


def default_cpu_devices() -> int:
  wanted = os.environ.get("INTERP_JAX_CPU_DEVICES")
  if wanted:
    return max(1, int(wanted))
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  n = 1
  while n * 2 <= min(cores or 1, 8):
    n *= 2
  return n


def split_cpu_into_cores() -> None:
  """Sets the XLA flag, if JAX has not started and the user has not set it."""
  flags = os.environ.get("XLA_FLAGS", "")
  if _FLAG in flags or "jax" in sys.modules:
    return
  os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={default_cpu_devices()}".strip()
