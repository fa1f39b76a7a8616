"""Accuracy under attack on a trained model, and the attack command line."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from interp_jax import data
from interp_jax.attacks import AttackSpec
from interp_jax.analysis.results import RobustnessReport
from interp_jax.analysis.robustness import evaluate_robustness
from interp_jax.errors import UserError
from interp_jax.training.restore import load_trained

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_accuracy_under_attack_falls_as_eps_grows(trained_workdir):
  run = load_trained(trained_workdir)
  source = data.FirstN(data.open_split(run.config.dataset, "test"), 200)
  accs = []
  for eps in (0.0, 1 / 255, 4 / 255, 16 / 255):
    report = evaluate_robustness(run, [AttackSpec("pgd", eps, "linf", 5, eps / 4 or 1e-3)],
                                 source, 100, jax.random.key(0), progress=False)
    accs.append(report.attacks["pgd"].accuracy)
    if eps == 0.0:
      assert accs[0] == report.clean_accuracy > 0.3
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
  report = RobustnessReport.load(str(workdir / "robustness.json"))
  assert report.num_images == 120 and report.model == "small_cnn" and report.split == "test"
  assert set(report.attacks) == {"fgsm", "pgd"}
  pgd = report.attacks["pgd"]
  assert pgd.options == {"eps": 4 / 255, "norm": "linf", "steps": 3, "step_size": 1 / 255,
                         "random_start": True, "targeted": False}
  assert 0 <= pgd.accuracy <= report.clean_accuracy <= 1
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
  assert np.mean(saved["prediction"] == saved["label"]) == pgd.accuracy


def test_attack_command_on_validation_keeps_the_test_report(trained_workdir, tmp_path):
  """--split=validation attacks validation images and writes its own files, so choosing
  a budget on validation never reads or overwrites the test split's report."""
  workdir = tmp_path / "run"
  subprocess.run(["cp", "-r", trained_workdir, str(workdir)], check=True)
  (workdir / "robustness.json").write_text("{}")
  result = _attack(workdir, "--attacks=pgd", "--num_images=60", "--eps=4/255", "--steps=2",
                   "--split=validation", "--save_images")
  assert result.returncode == 0, result.stderr[-2000:]
  assert (workdir / "robustness.json").read_text() == "{}"
  assert not (workdir / "adversarial").exists()
  report = RobustnessReport.load(str(workdir / "robustness_validation.json"))
  assert report.split == "validation" and report.num_images == 60
  saved = np.load(workdir / "adversarial_validation" / "pgd.npz")
  run = load_trained(str(workdir))
  validation = data.open_split(run.config.dataset, "validation")
  truth = validation.get(saved["index"])
  np.testing.assert_array_equal(saved["label"], truth["label"])
  assert np.abs(saved["images"] - truth["image"].astype(np.float32) / 255).max() <= 4 / 255 + 1e-6


def test_attack_command_refuses_bad_input(trained_workdir, tmp_path):
  """Each bad value is a UserError before any attack (the library call, in this process);
  the command turns one into exit 2 and its sentence, as it does a flag it cannot parse."""
  from interp_jax.reproduction.stages import attack_workdir
  for workdir, kwargs, message in [(trained_workdir, {"eps": 2.0}, "eps"),
                                   (trained_workdir, {"names": ("deepfool",)}, "unknown attack"),
                                   (str(tmp_path / "empty"), {}, "holds no checkpoints")]:
    with pytest.raises(UserError, match=message):
      attack_workdir(workdir, **kwargs, progress=False)
  for args, message in [(["--eps=2"], "eps"), (["--eps=x/255"], "must be a number")]:
    result = _attack(trained_workdir, *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-500:]
    assert "Traceback" not in result.stderr
  assert not os.path.exists(os.path.join(trained_workdir, "robustness.json"))


def test_attack_command_runs_autoattack_and_saves_which_stage_broke_each_image(
    trained_workdir, tmp_path):
  """Two stages at their published budgets on 48 images, with the transfer check against
  the model itself: the report's counts, accuracies and saved images agree."""
  from interp_jax.attacks import masking
  workdir = tmp_path / "run"
  subprocess.run(["cp", "-r", trained_workdir, str(workdir)], check=True)
  result = _attack(workdir, "--attacks=autoattack", "--stages=apgd_ce,apgd_t", "--eps=4/255",
                   "--num_images=48", "--batch_size=24", "--save_images",
                   f"--transfer_from={trained_workdir}")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "AutoAttack (custom, linf eps=0.01569): robust accuracy" in result.stdout
  report = RobustnessReport.load(str(workdir / "robustness.json"))
  aa = report.autoattack
  assert aa.stages == ("apgd_ce", "apgd_t") and aa.version == "custom"
  assert aa.options["apgd_ce"]["steps"] == 100 and aa.options["apgd_t"]["targets"] == 8
  after = [aa.accuracy_after[s] for s in ("clean", "apgd_ce", "apgd_t")]
  assert after == sorted(after, reverse=True) and after[-1] == aa.accuracy
  assert report.clean_accuracy == after[0] and report.attacks == {}
  saved = np.load(workdir / "adversarial" / "autoattack.npz")
  broken_by = saved["broken_by"]
  assert {k: int((broken_by == k).sum()) for k in aa.broken} == aa.broken
  assert np.mean(broken_by == "") == aa.accuracy
  assert np.mean(broken_by != "clean") == after[0]
  assert 0 < aa.broken["apgd_ce"] < 48   # the attack did something, not everything
  hit = (broken_by != "") & (broken_by != "clean")
  assert (saved["prediction"][hit] != saved["label"][hit]).all()
  assert (saved["prediction"][broken_by == ""] == saved["label"][broken_by == ""]).all()
  run = load_trained(str(workdir))
  clean = data.open_split(run.config.dataset, "test").get(saved["index"])["image"] / 255
  assert np.abs(saved["images"] - clean).max() <= 4 / 255 + 1e-5
  # The transfer check read PGD-10 images made against the same weights.
  transfer = aa.transfer_accuracy
  assert aa.checks["transfer"] == masking.transfer(aa.accuracy, transfer, str(trained_workdir))
  assert set(aa.checks) == {"zero_gradients", "probabilities", "nondeterministic",
                               "square_breaks", "transfer"}


def test_attack_command_refuses_bad_autoattack_options_before_any_compute(trained_workdir, tmp_path):
  result = _attack(trained_workdir, "--attacks=pgd", f"--transfer_from={trained_workdir}")
  assert result.returncode == 2 and "add autoattack" in result.stderr
  result = _attack(trained_workdir, "--attacks=autoattack", "--stages=apgd_ce,cw")
  assert result.returncode == 2 and "cw" in result.stderr and "Traceback" not in result.stderr
  assert not os.path.exists(os.path.join(trained_workdir, "robustness.json"))


def test_the_attack_stage_refuses_bad_values_as_value_errors_before_any_attack(
    trained_workdir):
  """attack_workdir, the command's one library call, raises ValueError (UserError) for
  each bad value, and writes nothing."""
  from interp_jax.reproduction.stages import attack_workdir
  for kwargs, message in [
      ({"batch_size": 0}, "batch_size must be a positive integer"),
      ({"split": "train"}, "split must be test or validation"),
      ({"names": ("pgd",), "transfer_from": trained_workdir}, "add autoattack"),
      ({"names": ("autoattack",), "version": "rand"}, "deterministic"),
      ({"names": ("autoattack",), "stages": ("apgd_ce", "cw")}, "cw")]:
    with pytest.raises(ValueError, match=message):
      attack_workdir(trained_workdir, **kwargs, progress=False)
  assert not os.path.exists(os.path.join(trained_workdir, "robustness.json"))
