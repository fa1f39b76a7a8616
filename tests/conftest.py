"""Shared fixtures: a tiny concept_shapes built once per session, and tiny configs."""

import os
import sys

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


def full_topk(acts, k, ids=None):
  """Naive reference of the streaming top-k: per neuron (column of [n, N] acts), the ids
  (default: row numbers) of its k largest activations, equal ones by smaller id."""
  ids = np.arange(len(acts)) if ids is None else np.asarray(ids)
  return np.array([[ids[i] for i in sorted(range(len(acts)), key=lambda i: (-col[i], ids[i]))[:k]]
                   for col in np.asarray(acts).T])


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


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


@pytest.fixture(scope="session")
def trained_workdir(data_dir, tmp_path_factory):
  """A tiny small_cnn trained to ~55% (chance: 11%), shared by the tests after training."""
  from interp_jax.training import trainer
  workdir = str(tmp_path_factory.mktemp("trained"))
  trainer.train_and_evaluate(
      tiny_config(data_dir, num_train_steps=600, eval_every_steps=600,
                  checkpoint_every_steps=600), workdir)
  return workdir
