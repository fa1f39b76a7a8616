"""Training end to end: learns, resumes exactly after a kill, refuses bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import chex
import numpy as np
import pytest

from interp_jax.training import steps, trainer
from interp_jax.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  for row in rows:
    row.pop("steps_per_second", None)  # the only field that may differ between runs
  return rows


def _tensorboard(workdir) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value)]} as TensorBoard's own reader sees WORKDIR/tensorboard."""
  from tensorboard.backend.event_processing import event_accumulator
  events = event_accumulator.EventAccumulator(os.path.join(workdir, "tensorboard"))
  events.Reload()
  return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
          for tag in events.Tags()["scalars"]}


def test_training_learns_well_above_chance(trained_workdir, tmp_path, tiny):
  """The session's run (conftest.TRAINED: 600 steps, evaluated every 200)."""
  from conftest import TRAINED
  rows = _metrics(trained_workdir)
  assert [r["step"] for r in rows if "eval_accuracy" in r] == [200, 400, 600]
  assert rows[-1]["eval_accuracy"] > 0.4  # chance is 1/9; 0.54 measured
  assert rows[-1]["train_loss"] < rows[0]["train_loss"]
  fields = {"train_loss", "train_accuracy", "clean_ce", "eval_loss", "eval_accuracy"}
  assert {k for r in rows for k in r} == {"step", *fields}
  # TensorBoard holds the same series, steps_per_second included.
  board = _tensorboard(trained_workdir)
  assert set(board) == {"steps_per_second", *fields}
  for tag, series in board.items():
    if tag != "steps_per_second":
      want = [(r["step"], r[tag]) for r in rows if tag in r]
      assert [s for s, _ in series] == [s for s, _ in want]
      np.testing.assert_allclose([v for _, v in series], [v for _, v in want], rtol=1e-6)
  # A finished run is not redone: its final evaluation comes back, nothing is added.
  workdir = str(tmp_path / "run")
  shutil.copytree(trained_workdir, workdir)
  again = trainer.train_and_evaluate(tiny(**TRAINED), workdir)
  assert again["step"] == 600 and again["eval_accuracy"] == rows[-1]["eval_accuracy"]
  assert len(_metrics(workdir)) == len(rows)


def _train_cmd(workdir, data_dir, *extra, variant="standard"):
  return [sys.executable, "-m", "interp_jax.train", f"--config=configs/concepts.py:{variant}",
          f"--workdir={workdir}", f"--config.dataset.data_dir={data_dir}",
          "--config.dataset.image_size=16", "--config.dataset.num_train=8000",
          "--config.dataset.num_test=400", "--config.dataset.num_validation=400",
          "--config.model.options.widths=(16,32,32)",
          "--config.model.options.hidden=64", "--config.batch_size=64",
          "--config.eval_batch_size=200", "--config.log_every_steps=10",
          "--config.eval_every_steps=40", "--config.checkpoint_every_steps=20",
          "--config.optimizer.warmup_steps=10", "--config.optimizer.learning_rate=0.005", *extra]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics(tmp_path, data_dir):
  """SIGKILL after a checkpoint, rerun: the metrics equal an uninterrupted run's.

  Adversarial training with the consistent loss, so the attack's random starts
  and the data order must both resume exactly.
  """
  args = ("--config.num_train_steps=160", "--config.adv.steps=1",
          "--config.consistency.layers=('conv2',)", "--config.adv.eval_images=100")
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  cmd = lambda w: _train_cmd(w, data_dir, *args, variant="adv_consistent")
  subprocess.run(cmd(straight), cwd=REPO, check=True, capture_output=True)
  proc = subprocess.Popen(cmd(killed), cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  ckpts = killed / "checkpoints"
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    done = [p for p in ckpts.glob("*") if p.name.isdigit()] if ckpts.exists() else []
    if any(int(p.name) >= 40 for p in done):
      break
    time.sleep(0.05)
  assert proc.poll() is None, "the run ended before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert _metrics(killed)[-1]["step"] < 160
  subprocess.run(cmd(killed), cwd=REPO, check=True, capture_output=True)
  rows = _metrics(killed)
  assert rows == _metrics(straight)
  # TensorBoard hides the events the killed run wrote past its checkpoint.
  board, straight_board = _tensorboard(killed), _tensorboard(straight)
  assert board.keys() == straight_board.keys()
  for tag in board:
    assert [s for s, _ in board[tag]] == [s for s, _ in straight_board[tag]], tag
  assert "consistency" in rows[0] and "eval_adv_accuracy" in rows[-1]


BAD_INPUTS = [
    (["--config.no_such_field=1"], "unknown config field 'no_such_field'"),
    (["--config.model.name=lenet"], "unknown model 'lenet'"),
    (["--config.dataset.name=no_such_set"], "unknown data set 'no_such_set'"),
    (["--config.dataset.name=image_folder", "--config.dataset.data_dir=/nonexistent/x"],
     "does not exist"),
    (["--config.num_train_steps=0"], "num_train_steps must be a positive integer"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, data_dir, args, message):
  workdir = tmp_path / "w"
  cmd = _train_cmd(workdir, data_dir, "--config.num_train_steps=5") + args
  result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 2
  assert message in result.stderr
  assert "Traceback" not in result.stderr
  assert not workdir.exists()


BUGGY_CONFIGS = [
    ("from interp_jax.default_config import base_config\n\ndef get_config():\n"
     "  return base_config(undefined_name)\n", "NameError: name 'undefined_name'"),
    ("from interp_jax.default_config import base_config\n\ndef get_config():\n"
     "  c = base_config()\n  c.no_such.field = 1\n  return c\n",
     "unknown config field 'no_such'"),
]


@pytest.mark.parametrize("text,message", BUGGY_CONFIGS)
def test_a_bug_in_a_config_file_names_the_file_and_line(tmp_path, text, message):
  """An error raised by the user's get_config() is that file's, not an unknown field of ours."""
  path = tmp_path / "mine.py"
  path.write_text(text)
  result = subprocess.run([sys.executable, "-m", "interp_jax.train", f"--config={path}",
                           f"--workdir={tmp_path / 'w'}"], cwd=REPO, capture_output=True,
                          text=True)
  assert result.returncode == 2
  assert f"cannot load the config file '{path}': {message}" in result.stderr
  assert f"(line {4 if 'Name' in message else 5})" in result.stderr
  assert "Traceback" not in result.stderr


def test_config_errors_are_found_before_absl_parses(tmp_path):
  """cli loads the config file itself and checks each --config.field against it, so a
  missing file, a nested typo and a bad value are one sentence each, with no traceback
  reading (the file is loaded before ml_collections sees the command line)."""
  for args, message in [
      (["--config=configs/nope.py"], "cannot load the config file 'configs/nope.py'"),
      (["--config=configs/concepts.py", "--config.model.widthz=1"],
       "unknown config field 'widthz' in --config.model.widthz"),
      (["--config=configs/concepts.py", "--config.num_train_steps=abc"],
       "flag --config.num_train_steps=abc: invalid literal"),
      (["--config=configs/concepts.py:bogus"], "unknown variant 'bogus'")]:
    result = subprocess.run([sys.executable, "-m", "interp_jax.train", *args,
                             f"--workdir={tmp_path / 'w'}"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-600:]
    assert "Traceback" not in result.stderr and not (tmp_path / "w").exists()


@pytest.fixture
def steps_traced_once(monkeypatch):
  """The step factories the trainer calls, their steps wrapped in
  chex.assert_max_traces(n=1): a step traced a second time (jitted anew, or given a
  batch, state or key of another shape, dtype or weak type) fails the test. Returns
  the names of the factories whose steps were made."""
  chex.clear_trace_counter()
  made = []
  for name in ("make_train_step", "make_eval_step", "make_adv_eval_step"):
    def counted(*args, _make=getattr(steps, name), _name=name, **kwargs):
      step = _make(*args, **kwargs)
      if step is None:  # no attack: no adversarial evaluation
        return None
      made.append(_name)
      return chex.assert_max_traces(step, n=1)
    monkeypatch.setattr(steps, name, counted)
  return made


def test_workdir_of_another_model_is_refused_and_kept(tmp_path, tiny, steps_traced_once):
  """(Its first run, 20 steps evaluated at the end, also shows the train and eval steps
  traced once each.)"""
  workdir = str(tmp_path)
  trainer.train_and_evaluate(tiny(num_train_steps=20, checkpoint_every_steps=20,
                                  eval_every_steps=20), workdir)
  assert steps_traced_once == ["make_train_step", "make_eval_step"]
  before = {p: os.path.getmtime(os.path.join(dp, p))
            for dp, _, files in os.walk(workdir) for p in files}
  metrics_before = _metrics(workdir)
  with pytest.raises(UserError, match="holds a checkpoint of another run"):
    trainer.train_and_evaluate(tiny(**{"model.options": {"widths": (4,), "hidden": 8}}),
                               workdir)
  after = {p: os.path.getmtime(os.path.join(dp, p))
           for dp, _, files in os.walk(workdir) for p in files}
  assert before == after and _metrics(workdir) == metrics_before


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, tiny):
  workdir = str(tmp_path)
  trainer.train_and_evaluate(tiny(num_train_steps=20, checkpoint_every_steps=20,
                                  eval_every_steps=20), workdir)
  good = _metrics(workdir)
  # Resume the same model with an absurd learning rate: the loss overflows.
  blowup = tiny(num_train_steps=60, checkpoint_every_steps=20, eval_every_steps=20,
                **{"optimizer.learning_rate": 1e30, "optimizer.warmup_steps": 0})
  with pytest.raises(FloatingPointError, match=r"NaN or inf at step (2\d|3\d|40)\b"):
    trainer.train_and_evaluate(blowup, workdir)
  from interp_jax.training.checkpointing import Checkpoints
  assert Checkpoints(os.path.join(workdir, "checkpoints")).latest_step() == 20
  assert _metrics(workdir) == good
  # The kept checkpoint still loads and predicts.
  from interp_jax.training.restore import load_trained
  run = load_trained(workdir)
  assert run.step == 20


def test_a_run_loads_on_another_number_of_devices(trained_workdir):
  """Trained on this machine's devices, analysed on a different count (a pod's run on a laptop)."""
  import jax
  import numpy as np
  from interp_jax.training.restore import load_trained
  run = load_trained(trained_workdir)
  x = np.random.default_rng(0).uniform(size=(4, *run.meta.image_shape)).astype(np.float32)
  here = np.asarray(run.model.apply(run.variables, x))
  other = 1 if jax.device_count() > 1 else 2
  script = ("import sys, json, numpy as np, jax; from interp_jax.training.restore import load_trained; "
            "run = load_trained(sys.argv[1]); x = np.asarray(json.loads(sys.argv[2]), np.float32); "
            "print(jax.device_count(), json.dumps(np.asarray(run.model.apply(run.variables, x))"
            ".tolist()))")
  result = subprocess.run([sys.executable, "-c", script, trained_workdir, json.dumps(x.tolist())],
                          cwd=REPO, capture_output=True, text=True,
                          env={**os.environ,
                               "XLA_FLAGS": f"--xla_force_host_platform_device_count={other}"})
  assert result.returncode == 0, result.stderr[-2000:]
  count, logits = result.stdout.strip().splitlines()[-1].split(" ", 1)
  assert int(count) == other
  np.testing.assert_allclose(np.asarray(json.loads(logits)), here, rtol=1e-5, atol=1e-5)


def test_eval_adv_accuracy_attacks_only_the_batches_it_counts(trained_workdir):
  """evaluate's accuracy under attack = PGD on the first N test images done by hand.

  400 test images in batches of 100 and N = 150: two of the four batches are
  attacked, each with key fold_in(key(seed), batch index), and the second
  counts only its first 50 rows; clean accuracy is still over all 400.
  """
  import jax
  import numpy as np
  import optax
  from interp_jax import attacks, data, sharding
  from interp_jax.training.objective import Objective
  from interp_jax.training.restore import load_trained
  run = load_trained(trained_workdir)
  objective = Objective(attack="pgd", eps=8 / 255, steps=3)
  state = steps.TrainState.create(apply_fn=run.model.apply, params=run.variables["params"],
                                  tx=optax.identity(), batch_stats=run.variables["batch_stats"])
  source = data.open_split(run.config.dataset, "test")
  n, b, seed = 150, 100, 3
  attacked = []
  # Each step is traced and compiled once over the batches: same shapes, placement and
  # key type whether a batch is attacked whole or in part.
  chex.clear_trace_counter()
  adv_step = jax.jit(chex.assert_max_traces(steps.make_adv_eval_step(run.model, objective), n=1))
  eval_step = jax.jit(chex.assert_max_traces(steps.make_eval_step(run.model), n=1))

  def counting_adv_step(state, batch, key):
    attacked.append(1)
    return adv_step(state, batch, key)

  got = trainer.evaluate(eval_step, state, source, sharding.data_mesh(), b, counting_adv_step,
                         attack_images=n, seed=seed)
  assert len(source) == 400 and len(attacked) == 2
  assert adv_step._cache_size() == eval_step._cache_size() == 1

  split = data.to_model_input(source.get(np.arange(len(source))))
  x, y = np.asarray(split["image"]), np.asarray(split["label"])
  clean = np.argmax(run.model.apply(run.variables, x), -1) == y
  correct = 0
  for i in range(2):
    rows = slice(i * b, (i + 1) * b)
    x_adv = attacks.pgd(run.model.apply, run.variables, x[rows], y[rows],
                        jax.random.fold_in(jax.random.key(seed), i), **objective.attack_spec.options())
    hit = np.argmax(run.model.apply(run.variables, x_adv), -1) == y[rows]
    correct += hit[:n - i * b].sum()
  assert got["eval_adv_accuracy"] == pytest.approx(correct / n)
  assert got["eval_accuracy"] == pytest.approx(clean.mean())
  assert got["eval_adv_accuracy"] < clean[:n].mean() - 0.1  # the attack really changed answers
