"""The analysis end to end on a trained tiny model: results follow the schema, the page
references only files that exist, and the numbers agree with a naive recomputation."""

import json
import os
import re
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from interp_jax import analysis, consistency, data, models, report
from interp_jax.restore import load_trained

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def analysed(trained_workdir):
  cfg = analysis.default_config()
  cfg.num_images, cfg.k, cfg.steps, cfg.batch_size = 300, 20, 3, 128
  cfg.report_neurons, cfg.report_tiles = 2, 4
  run = load_trained(trained_workdir)
  results, images = analysis.analyze(run, cfg, progress=False)
  return run, cfg, results, images


def test_results_follow_the_schema(analysed):
  _, _, results, _ = analysed
  report.validate(results)
  assert set(results["layers"]) == {"conv1", "conv2", "conv3", "fc1"}
  bad = json.loads(json.dumps(results))
  bad["layers"]["fc1"]["sets"]["real"]["per_neuron"][0] = 1.5
  with pytest.raises(Exception):
    report.validate(bad)


def test_scores_match_a_naive_recomputation(analysed):
  """Top-k and consistency from all activations held in memory and sorted."""
  run, cfg, results, images = analysed
  source = data.open_split(run.config.dataset, "test")
  batch = data.to_model_input(source.get(np.arange(300)))
  _, feats = models.apply_with_features(run.model, run.variables, batch["image"], ["fc1"])
  acts = np.asarray(consistency.neuron_activations(feats["fc1"]))
  labels = batch["label"]
  sim = np.asarray(results["settings"]["similarity_matrix"])
  fc1 = results["layers"]["fc1"]
  for n in range(acts.shape[1]):
    top = sorted(range(300), key=lambda i: (-acts[i, n], i))[:cfg.k]
    assert fc1["sets"]["real"]["topk_indices"][n] == top
    p = np.bincount(labels[top], minlength=sim.shape[0]) / cfg.k
    assert fc1["sets"]["real"]["per_neuron"][n] == pytest.approx(p @ sim @ p, abs=1e-5)
  alive = np.asarray(fc1["alive"])
  np.testing.assert_array_equal(alive, acts.max(0) > 0)
  assert fc1["sets"]["real"]["mean"] == pytest.approx(
      np.mean(np.asarray(fc1["sets"]["real"]["per_neuron"])[alive]), abs=1e-5)
  # Clean accuracy agrees with the model's predictions.
  pred = np.asarray(jnp.argmax(run.model.apply(run.variables, batch["image"]), -1))
  assert results["accuracy"]["clean"] == pytest.approx(np.mean(pred == labels))
  assert results["accuracy"]["adversarial"] < results["accuracy"]["clean"]


def test_mixed_set_and_overlap_are_consistent(analysed):
  _, cfg, results, _ = analysed
  for info in results["layers"].values():
    for n in range(info["num_neurons"]):
      real = set(info["sets"]["real"]["topk_indices"][n])
      adv = set(info["sets"]["adversarial"]["topk_indices"][n])
      mixed = info["sets"]["mixed"]["topk_indices"][n]
      # The union's top-k is drawn from the two top-k lists (adv ids shifted by N).
      assert {i for i in mixed if i < 300} <= real
      assert {i - 300 for i in mixed if i >= 300} <= adv
      assert info["topk_overlap"]["per_neuron"][n] == pytest.approx(len(real & adv) / cfg.k)


@pytest.mark.parametrize("keep", [True, False])
def test_reported_adversarial_images_are_the_analysed_ones(analysed, keep, monkeypatch):
  """Kept (uint8) or recomputed, the report's adversarial images are the analysed ones."""
  run, cfg, results, images = analysed
  ids = np.array([0, 5, 130, 299])
  kept = images.adversarial(ids)
  if not keep:
    monkeypatch.setattr(analysis, "_KEEP_IMAGES_BYTES", 0)
    _, images = analysis.analyze(run, cfg, progress=False)
  x_adv = images.adversarial(ids)
  np.testing.assert_allclose(x_adv, kept, atol=0.5 / 255 + 1e-6)
  clean = images.source.get(ids)["image"] / 255.0
  slack = 0.5 / 255 if keep else 1e-6  # kept images are rounded to uint8 for display
  assert np.abs(x_adv - clean).max() <= results["settings"]["eps"] + slack
  if not keep:
    pred = np.asarray(jnp.argmax(run.model.apply(run.variables, jnp.asarray(x_adv)), -1))
    np.testing.assert_array_equal(pred, images.predicted_adv[ids])
  assert results["settings"]["eps"] == run.config.adv.eps  # eps < 0: the training eps


def test_report_references_only_files_that_exist(analysed, tmp_path):
  _, cfg, results, images = analysed
  page = report.write_report(results, images, str(tmp_path), cfg.report_tiles,
                             cfg.report_neurons)
  text = open(page).read()
  refs = re.findall(r"src=['\"]([^'\"]+)['\"]", text)
  assert len(refs) >= 1 + 4 * 4  # summary, and per layer a histogram and three grids
  for ref in refs:
    assert os.path.isfile(os.path.join(tmp_path, ref)), ref


def test_analyze_command_writes_results_and_refuses_bad_input(trained_workdir, tmp_path):
  workdir = tmp_path / "run"
  subprocess.run(["cp", "-r", trained_workdir, str(workdir)], check=True)
  base = [sys.executable, "-m", "interp_jax.analyze", f"--workdir={workdir}"]
  small = ["--config.num_images=200", "--config.k=10", "--config.steps=2",
           "--config.batch_size=100", "--config.layers=('conv2','fc1')",
           "--config.similarity=identity"]
  result = subprocess.run(base + small, cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-2000:]
  results = json.loads((workdir / "analysis" / "results.json").read_text())
  report.validate(results)
  assert list(results["layers"]) == ["conv2", "fc1"]
  assert results["settings"]["similarity"] == "identity"
  assert (workdir / "analysis" / "index.html").exists()
  for args, message in [(["--config.layers=('conv9',)"], "no layer"),
                        (["--config.similarity=cosmic"], "unknown similarity"),
                        (["--config.attack=deepfool"], "unknown attack"),
                        (["--config.kk=3"], "unknown config field")]:
    bad = subprocess.run(base + args, cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and message in bad.stderr, bad.stderr[-800:]
    assert "Traceback" not in bad.stderr
