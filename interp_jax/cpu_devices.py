"""One XLA CPU device per core, and compiled programs kept on disk: the command line's
settings (both explicit calls, never made on import).

    from interp_jax import cpu_devices
    cpu_devices.split_cpu_into_cores()   # before the first JAX computation

XLA's CPU backend runs one device's program largely on one thread, so a
train step split over one CPU device per core runs faster: data
parallelism then uses every core. The split is an explicit call, never an import-time side
effect: `interp_jax.cli` makes it when a command line starts (train,
analyze, attack, reproduce), `interp_jax.bench` in its main, and the tests in
conftest.py. A library user calls it, or not, before JAX computes anything.

It sets JAX's `jax_num_cpu_devices` option, and lengthens XLA's timeout for a
collective between the CPU devices (XLA_FLAGS, which child processes then
inherit): the devices' threads share the cores with everything else on the
machine, and on a loaded machine one of them reached an all-to-all more than
XLA's default 40 s after the other, which made XLA abort the whole process
mid-training. It only shapes the host platform: on a GPU or
TPU, jax.devices() is unchanged. A count already named in XLA_FLAGS
(--xla_force_host_platform_device_count) wins; INTERP_JAX_CPU_DEVICES=N
chooses N (1 turns the split off).
"""

import os

_FLAG = "--xla_force_host_platform_device_count"
# A deadlock detector on XLA's CPU collectives; one process cannot deadlock itself here.
_COLLECTIVE_TIMEOUT = "--xla_cpu_collective_call_terminate_timeout_seconds"


def default_cpu_devices() -> int:
  """INTERP_JAX_CPU_DEVICES, else the cores this process may use: a power of two, at most 8."""
  wanted = os.environ.get("INTERP_JAX_CPU_DEVICES")
  if wanted:
    return max(1, int(wanted))
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  n = 1
  while n * 2 <= min(cores or 1, 8):
    n *= 2
  return n


def split_cpu_into_cores(count: int | None = None) -> bool:
  """Asks JAX for `count` (default: default_cpu_devices()) host devices.

  Returns whether the setting was made: not when XLA_FLAGS already names a
  count, nor when JAX has already computed something (its backends are then
  fixed and the existing devices stay).
  """
  import jax
  if _FLAG in os.environ.get("XLA_FLAGS", ""):
    return False
  try:
    jax.config.update("jax_num_cpu_devices", count or default_cpu_devices())
  except RuntimeError:  # raised once the backends are initialized
    return False
  flags = os.environ.get("XLA_FLAGS", "")
  if _COLLECTIVE_TIMEOUT not in flags:  # read by XLA when the CPU backend starts
    os.environ["XLA_FLAGS"] = f"{flags} {_COLLECTIVE_TIMEOUT}=3600".strip()
  return True


def cache_compilations(directory: str | None = None) -> str | None:
  """Keeps XLA's compiled programs on disk, so a program compiled once is not compiled
  again: by the next model of a reproduction (same shapes, other weights), the next
  seed, or the next run of a command.

  The directory: `directory`, else $JAX_COMPILATION_CACHE_DIR when set (JAX reads it
  itself), else ~/.cache/interp_jax/jax. Returns the directory used.
  """
  import jax
  if directory is None and os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return os.environ["JAX_COMPILATION_CACHE_DIR"]
  directory = directory or os.path.join(os.path.expanduser("~"), ".cache", "interp_jax", "jax")
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  return directory
