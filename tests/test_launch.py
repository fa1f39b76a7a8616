"""What a GPU, TPU VM or Colab user runs, run here on the CPU at tiny sizes
(INTERP_JAX_CPU_TINY=1): launch/gpu.sh, launch/tpu_vm.sh, and launch/colab_tpu.ipynb
executed headless by nbclient. Each trains concept_shapes for 20 steps into a temporary
directory; the tests read what it wrote."""

import json
import math
import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(REPO, "launch")
TINY_STEPS = 20  # launch/cpu_tiny.flags


def _env(**extra):
  env = {**os.environ, "INTERP_JAX_CPU_TINY": "1", **extra}
  env.pop("XLA_FLAGS", None)  # the command lines choose their CPU devices themselves
  return env


def _run(args, cwd, **env):
  done = subprocess.run(args, cwd=cwd, env=_env(**env), capture_output=True, text=True,
                        timeout=600)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
  return done.stdout


def _assert_trained(workdir):
  """A finished tiny run: metrics up to the last step in range, a checkpoint of it."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  assert rows[-1]["step"] == TINY_STEPS
  final = rows[-1]
  for key in ("eval_accuracy", "eval_adv_accuracy", "train_accuracy"):
    assert 0 <= final[key] <= 1, (key, final)
  assert math.isfinite(final["train_loss"]) and final["train_loss"] > 0
  assert final["consistency"] >= 0  # configs/concepts.py:adv_consistent's term
  assert str(TINY_STEPS) in os.listdir(os.path.join(workdir, "checkpoints"))


@pytest.mark.slow
def test_gpu_script_trains_resumes_and_runs_the_device_check(tmp_path):
  workdir, data = str(tmp_path / "run"), f"--config.dataset.data_dir={tmp_path / 'tfds'}"
  script = os.path.join(LAUNCH, "gpu.sh")
  out = _run(["bash", script, "configs/concepts.py:adv_consistent", workdir, data], tmp_path)
  assert f"final: step={TINY_STEPS}" in out
  _assert_trained(workdir)
  again = _run(["bash", script, "configs/concepts.py:adv_consistent", workdir, data], tmp_path)
  assert f"already trained to step {TINY_STEPS}" in again
  report = tmp_path / "device.json"
  out = _run(["bash", script, "device", "--device_sections=dissection", "--repeats=1",
              f"--device_out={report}"], tmp_path)
  check = json.loads(report.read_text())
  assert check["size"] == "tiny" and check["backend"] == "cpu"
  assert check["dissection"]["images_per_s"] > 0 and "attacks" not in check
  assert "dissection" in out[out.index("section "):]


@pytest.mark.slow
def test_tpu_vm_script_trains_on_one_cpu_process(tmp_path):
  workdir = str(tmp_path / "run")
  out = _run(["bash", os.path.join(LAUNCH, "tpu_vm.sh"), "configs/concepts.py:adv_consistent",
              workdir, f"--config.dataset.data_dir={tmp_path / 'tfds'}"], tmp_path)
  assert f"final: step={TINY_STEPS}" in out
  _assert_trained(workdir)


def test_tiny_mode_never_installs(tmp_path):
  """Without the checkout's .venv, tiny mode stops with a sentence; nothing is created."""
  shutil.copytree(LAUNCH, tmp_path / "launch")
  for script in ("gpu.sh", "tpu_vm.sh"):
    done = subprocess.run(["bash", str(tmp_path / "launch" / script), "configs/x.py", "run"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "INTERP_JAX_CPU_TINY=1 uses the checkout's .venv" in \
        done.stderr
    assert not (tmp_path / ".venv").exists()


@pytest.mark.slow
def test_colab_notebook_runs_headless(tmp_path, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  pytest.importorskip("ipykernel")
  # The kernel (and the commands it starts) inherit these: tiny mode, and this checkout.
  for key, value in _env(PYTHONPATH=REPO).items():
    monkeypatch.setenv(key, value)
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  notebook = nbformat.read(os.path.join(LAUNCH, "colab_tpu.ipynb"), as_version=4)
  client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": str(tmp_path)}})
  client.execute()  # a failing cell (an assert on a command's exit code) raises here
  workdir = tmp_path / "runs" / "adv_consistent"
  _assert_trained(str(workdir))
  robustness = json.loads((workdir / "robustness.json").read_text())
  assert robustness["num_images"] == 64
  assert 0 <= robustness["clean_accuracy"] <= 1
  assert set(robustness["attacks"]) == {"fgsm", "pgd"}
  for result in robustness["attacks"].values():
    assert 0 <= result["accuracy"] <= 1
  printed = "".join(o.get("text", "") for o in notebook.cells[-1].outputs)
  assert f"clean accuracy {robustness['clean_accuracy']:.3f}" in printed
  assert f"pgd (eps {robustness['attacks']['pgd']['eps']:.4f})" in printed
