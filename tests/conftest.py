"""Shared fixtures: a tiny concept_shapes and a trained tiny model, each made once per
session (by whichever xdist worker asks first; the others wait and reuse it), and tiny
configs."""

import fcntl
import os
import shutil
import sys
import tempfile

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The checkout under test comes first: a bare `pytest` (no `python -m`) would
# otherwise import whichever copy is installed in editable mode, another
# worktree's for one sharing the venv.
sys.path.insert(0, REPO)

from interp_jax import cpu_devices  # noqa: E402
from interp_jax.default_config import base_config  # noqa: E402

# Two XLA CPU devices on any machine, before any test computes: the in-process
# trainer tests then shard every batch as a command line on a 2-core host does
# (importing interp_jax sets nothing; tests/test_data_parallel.py and
# test_train.py start their own processes with other counts).
cpu_devices.split_cpu_into_cores(2)


_CACHE = pytest.StashKey[str]()


def pytest_configure(config):
  """XLA's persistent compilation cache, in a directory of this session: a program is
  compiled once per session, whichever process compiles it first (an xdist worker, or a
  command a test starts: both read JAX_COMPILATION_CACHE_DIR), as the commands share
  ~/.cache/interp_jax/jax (cpu_devices.cache_compilations). The trainer and the analysis
  jit new functions on every call, so without it each call compiles its steps again."""
  if hasattr(config, "workerinput"):  # an xdist worker: it inherited the controller's
    return
  cache = tempfile.mkdtemp(prefix="interp_jax_tests_xla_")
  config.stash[_CACHE] = cache
  os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
  # Every program, however quick to compile: the tests compile the same small programs
  # many times over.
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  import jax  # already imported: it read the environment before this ran
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def pytest_collection_modifyitems(items):
  """The tests marked slow first, the rest in file order: xdist hands out the first
  tests in turn, so the two workers share the slow ones and finish together, rather
  than one running a long test while the other waits at the end."""
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_unconfigure(config):
  if _CACHE in config.stash:
    shutil.rmtree(config.stash[_CACHE], ignore_errors=True)


def full_topk(acts, k, ids=None):
  """Naive reference of the streaming top-k: per neuron (column of [n, N] acts), the ids
  (default: row numbers) of its k largest activations, equal ones by smaller id."""
  ids = np.arange(len(acts)) if ids is None else np.asarray(ids)
  return np.array([[ids[i] for i in sorted(range(len(acts)), key=lambda i: (-col[i], ids[i]))[:k]]
                   for col in np.asarray(acts).T])


def stub_set(mean, num_included, chance=(None, None), purity=None, purity_chance=(None, None)):
  """A SetScore holding only the numbers a summary reads (no per-neuron lists)."""
  from interp_jax.analysis import results as R
  return R.SetScore(included=(), num_included=num_included, excluded=R.Excluded(0, 0),
                    mean=mean, median=mean, histogram=R.Histogram((), ()), per_neuron=(),
                    topk_indices=(), chance=R.Chance(*chance),
                    purity=R.Purity(purity, purity, (), R.Chance(*purity_chance)))


def stub_results(layers: dict, clean: float, adversarial: float, shared=None,
                 success_rate: float = 0.0, eps_curve=None):
  """An AnalysisResults of these LayerResults and accuracies, the rest left empty."""
  from interp_jax.analysis import results as R
  return R.AnalysisResults(
      run=R.RunInfo("(stub)", 0, "small_cnn", "concept_shapes", ()), settings={},
      accuracy=R.Accuracy(clean, adversarial, shared),
      attack=R.Attack(success_rate, 0, None), layers=layers, eps_curve=eps_curve)


def replaced(obj, path: tuple, value):
  """obj with the field, key or index at `path` set to value: frozen records are replaced
  and dicts and tuples copied on the way, so obj itself is left as it was."""
  import dataclasses
  if not path:
    return value
  head, rest = path[0], path[1:]
  if isinstance(obj, dict):
    return {**obj, head: replaced(obj[head], rest, value)}
  if isinstance(obj, tuple):
    return obj[:head] + (replaced(obj[head], rest, value),) + obj[head + 1:]
  return dataclasses.replace(obj, **{head: replaced(getattr(obj, head), rest, value)})


def stub_layer(num_neurons: int, sets: dict, pairs: dict, overlap=None, cosine=0.9):
  """A LayerResult; pairs: {set: (num_neurons, real mean, set mean)} as real_vs_SET."""
  from interp_jax.analysis import results as R
  return R.LayerResult(
      num_neurons=num_neurons, sets=sets,
      comparisons={f"real_vs_{s}": R.Comparison(n, real, other, s)
                   for s, (n, real, other) in pairs.items()},
      feature_cosine=cosine, topk_overlap=R.TopkOverlap(overlap, num_neurons, ()))


def once(tmp_path_factory, name: str, make) -> str:
  """DIR/name, made by make(path) in one process of the session: DIR is the xdist
  workers' common base directory (this process's own without xdist), and the others
  wait on DIR/name.lock, then reuse what it made."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent
  path, done = root / name, root / f"{name}.done"
  with open(root / f"{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not done.exists():
      shutil.rmtree(path, ignore_errors=True)
      path.mkdir()
      make(str(path))
      done.touch()
  return str(path)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """Holds tiny_config's concept_shapes, built (the commands' tests use it too)."""
  from interp_jax import data
  return once(tmp_path_factory, "tfds", lambda path: data.describe(tiny_config(path).dataset))


def tiny_config(data_dir: str, **overrides):
  """small_cnn on 16x16 concept_shapes (8,000 / 400 images): seconds to train."""
  c = base_config()
  c.dataset.data_dir = data_dir
  c.dataset.image_size = 16
  c.dataset.num_train = 8_000
  c.dataset.num_test = 400
  c.dataset.num_validation = 400
  c.model.options = {"widths": (16, 32, 32), "hidden": 64}
  c.batch_size = 64
  c.eval_batch_size = 200
  c.num_train_steps = 120
  c.log_every_steps = 20
  c.eval_every_steps = 40
  c.checkpoint_every_steps = 40
  c.optimizer.warmup_steps = 10
  c.optimizer.learning_rate = 5e-3
  for key, value in overrides.items():
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


@pytest.fixture
def tiny(data_dir):
  return lambda **kw: tiny_config(data_dir, **kw)


TRAINED = {"num_train_steps": 600, "eval_every_steps": 200, "checkpoint_every_steps": 200}


@pytest.fixture(scope="session")
def trained_workdir(data_dir, tmp_path_factory):
  """A tiny small_cnn trained to ~55% (chance: 11%) with tiny_config(**TRAINED), once per
  session; read only: a test that writes into a run copies it first."""
  from interp_jax.training import trainer
  return once(tmp_path_factory, "trained", lambda path: trainer.train_and_evaluate(
      tiny_config(data_dir, **TRAINED), path))
