"""Accuracy under attack on a trained model, and the attack command line."""

import json
import os
import subprocess
import sys

import jax
import numpy as np

from interp_jax import data
from interp_jax.attacks import AttackSpec
from interp_jax.analysis.robustness import evaluate_robustness
from interp_jax.training.restore import load_trained

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_accuracy_under_attack_falls_as_eps_grows(trained_workdir):
  run = load_trained(trained_workdir)
  source = data.FirstN(data.open_split(run.config.dataset, "test"), 200)
  accs = []
  for eps in (0.0, 1 / 255, 4 / 255, 16 / 255):
    report = evaluate_robustness(run, [AttackSpec("pgd", eps, "linf", 5, eps / 4 or 1e-3)],
                                 source, 100, jax.random.key(0), progress=False)
    accs.append(report["attacks"]["pgd"]["accuracy"])
    if eps == 0.0:
      assert accs[0] == report["clean_accuracy"] > 0.3
  assert all(b <= a for a, b in zip(accs, accs[1:])), accs
  assert accs[-1] < 0.5 * accs[0], accs


def _attack(workdir, *args):
  return subprocess.run([sys.executable, "-m", "interp_jax.attack", f"--workdir={workdir}",
                         *args], cwd=REPO, capture_output=True, text=True)


def test_attack_command_writes_robustness_and_images(trained_workdir, tmp_path):
  workdir = tmp_path / "run"
  subprocess.run(["cp", "-r", trained_workdir, str(workdir)], check=True)
  result = _attack(workdir, "--attacks=fgsm,pgd", "--num_images=120", "--batch_size=50",
                   "--eps=4/255", "--steps=3", "--save_images")
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads((workdir / "robustness.json").read_text())
  assert report["num_images"] == 120 and report["model"] == "small_cnn"
  assert set(report["attacks"]) == {"fgsm", "pgd"}
  pgd = report["attacks"]["pgd"]
  assert pgd["eps"] == 4 / 255 and pgd["steps"] == 3 and pgd["norm"] == "linf"
  assert 0 <= pgd["accuracy"] <= report["clean_accuracy"] <= 1
  saved = np.load(workdir / "adversarial" / "pgd.npz")
  run = load_trained(str(workdir))
  test = data.open_split(run.config.dataset, "test")
  # The 120 images are chosen by content; each is saved with its index in the test split.
  np.testing.assert_array_equal(saved["index"], data.sample_by_content(test, 120).indices)
  assert len(set(saved["index"].tolist())) == 120 and saved["index"].max() >= 120
  truth = test.get(saved["index"])
  np.testing.assert_array_equal(saved["label"], truth["label"])
  clean = truth["image"].astype(np.float32) / 255
  assert np.abs(saved["images"] - clean).max() <= 4 / 255 + 1e-6
  assert np.mean(saved["prediction"] == saved["label"]) == pgd["accuracy"]


def test_attack_command_refuses_bad_input(trained_workdir, tmp_path):
  for args, message in [(["--eps=2"], "eps"), (["--attacks=deepfool"], "unknown attack"),
                        (["--eps=x/255"], "must be a number")]:
    result = _attack(trained_workdir, *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-500:]
    assert "Traceback" not in result.stderr
  result = _attack(tmp_path / "empty")
  assert result.returncode == 2 and "holds no checkpoints" in result.stderr
  assert not os.path.exists(os.path.join(trained_workdir, "robustness.json"))
