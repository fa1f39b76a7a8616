"""The analysis and the robustness evaluation on two processes (jax.distributed over
gloo, one CPU device each) equal the same computations in one process."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from interp_jax import analysis
from interp_jax.analysis.robustness import evaluate_robustness
from interp_jax.attacks import AttackSpec
from interp_jax.training.restore import load_trained

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = """
import json, sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_num_cpu_devices", 1)
jax.distributed.initialize(coordinator_address=sys.argv[1], num_processes=2,
                           process_id=int(sys.argv[2]))
from interp_jax import analysis
from interp_jax.analysis.robustness import evaluate_robustness
from interp_jax.attacks import AttackSpec
from interp_jax.training.restore import load_trained
assert jax.process_count() == 2 and jax.device_count() == 2
run = load_trained(sys.argv[3])
cfg = analysis.default_config()
for key, value in json.loads(sys.argv[4]).items():
  cfg[key] = tuple(value) if isinstance(value, list) else value
results, _ = analysis.analyze(run, cfg, progress=False)
report = evaluate_robustness(run, [AttackSpec("pgd", 8 / 255, steps=2)],
                             analysis.evaluation_source(run, cfg), cfg.batch_size,
                             jax.random.key(0), progress=False)
with open(sys.argv[5], "w") as f:
  json.dump({"results": results.to_json(), "robustness": report.to_json()}, f)
"""
SETTINGS = {"num_images": 200, "k": 10, "steps": 2, "batch_size": 100,
            "layers": ("conv3", "fc1"), "eps_curve": (0.0, 0.5, 1.0)}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one(trained_workdir, tmp_path):
  address = f"localhost:{_free_port()}"
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  procs = [subprocess.Popen(
      [sys.executable, "-c", WORKER, address, str(i), trained_workdir,
       json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in SETTINGS.items()}),
       str(tmp_path / f"p{i}.json")], cwd=REPO, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  try:
    errors = [p.communicate(timeout=600)[1] for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, err in zip(procs, errors):
    assert p.returncode == 0, err[-3000:]
  outputs = [json.loads((tmp_path / f"p{i}.json").read_text()) for i in range(2)]

  run = load_trained(trained_workdir)
  cfg = analysis.default_config()
  for key, value in SETTINGS.items():
    cfg[key] = value
  results, _ = analysis.analyze(run, cfg, progress=False)
  report = evaluate_robustness(run, [AttackSpec("pgd", 8 / 255, steps=2)],
                               analysis.evaluation_source(run, cfg), cfg.batch_size,
                               jax.random.key(0), progress=False)
  for out in outputs:  # every process holds the whole result
    assert out["results"]["accuracy"] == results.accuracy.to_json()
    assert out["results"]["attack"] == results.attack.to_json()
    assert out["robustness"]["attacks"]["pgd"]["accuracy"] == report.attacks["pgd"].accuracy
    assert out["robustness"]["clean_accuracy"] == report.clean_accuracy
    for layer, info in results.layers.items():
      for name, s in info.sets.items():
        other = analysis.SetScore.from_json(out["results"]["layers"][layer]["sets"][name])
        assert other.included == s.included
        assert other.topk_indices == s.topk_indices
        np.testing.assert_allclose(np.asarray(other.per_neuron, float),
                                   np.asarray(s.per_neuron, float), atol=1e-6)
    assert [p["mean"] for p in out["results"]["eps_curve"]["points"]] == pytest.approx(
        [p.mean for p in results.eps_curve.points], abs=1e-6)
