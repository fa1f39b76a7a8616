"""Tracing and detection: the prediction difference against hand-computed ablations, a planted
decisive neuron, the detector's score and ROC AUC against naive computations, and explain."""

import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from interp_jax import models
from interp_jax.measures import detection, influence


def _model_and_images(seed=0):
  model = models.create("small_cnn", 9, widths=(8, 16), hidden=32)
  x = jax.random.uniform(jax.random.key(seed), (6, 16, 16, 3))
  return model, model.init(jax.random.key(seed + 1), x), x


def _head_probs(variables, fc1):
  head = variables["params"]["head"]
  return jax.nn.softmax(fc1 @ head["kernel"] + head["bias"], -1)


@pytest.mark.parametrize("ablation", ["zero", "mean"])
def test_pd_equals_ablating_fc1_by_hand(ablation):
  model, variables, x = _model_and_images()
  logits, feats = models.apply_with_features(model, variables, x, ("fc1",))
  fc1 = feats["fc1"]
  fill = fc1.mean(0) if ablation == "mean" else None
  pd = influence.prediction_difference(model, variables, x, "fc1", fill=fill)
  classes = np.asarray(jnp.argmax(logits, -1))
  clean = np.asarray(_head_probs(variables, fc1))[np.arange(6), classes]
  for n in range(fc1.shape[1]):  # the head by hand, on fc1 with neuron n replaced
    edited = fc1.at[:, n].set(0.0 if fill is None else fill[n])
    p = np.asarray(_head_probs(variables, edited))[np.arange(6), classes]
    np.testing.assert_allclose(np.asarray(pd[:, n]), clean - p, atol=2e-6)


def test_pd_of_a_conv_layer_equals_ablating_it_by_hand():
  """conv2, the last conv of this small_cnn: the rest of the network (spatial max, fc1,
  head) written out by hand, on the map with channel n zeroed or set to a mean map."""
  model, variables, x = _model_and_images(7)
  logits, feats = models.apply_with_features(model, variables, x, ("conv2",))
  conv2 = np.asarray(feats["conv2"])
  p = variables["params"]
  rest = lambda m: _head_probs(variables, jax.nn.relu(
      m.max((1, 2)) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]))
  classes = np.asarray(jnp.argmax(logits, -1))
  rows = np.arange(len(x))
  for fill in (None, conv2.mean(0)):                      # zero, and an [H, W, C] mean map
    pd = np.asarray(influence.prediction_difference(model, variables, x, "conv2", fill=fill))
    clean = np.asarray(rest(conv2))[rows, classes]
    for n in range(conv2.shape[-1]):
      edited = conv2.copy()
      edited[..., n] = 0.0 if fill is None else fill[..., n]
      np.testing.assert_allclose(pd[:, n], clean - np.asarray(rest(edited))[rows, classes],
                                 atol=3e-6)


def test_pd_in_chunks_and_for_given_classes_equals_one_vmap():
  model, variables, x = _model_and_images(3)
  full = influence.prediction_difference(model, variables, x, "conv2")
  chunked = influence.prediction_difference(model, variables, x, "conv2", neuron_chunk=5)
  np.testing.assert_allclose(np.asarray(chunked), np.asarray(full), atol=1e-7)
  y = jnp.arange(6) % 9
  one = [influence.prediction_difference(model, variables, x[i:i + 1], "conv2", classes=y[i:i + 1])
         for i in range(6)]
  np.testing.assert_allclose(
      np.concatenate([np.asarray(o) for o in one]),
      np.asarray(influence.prediction_difference(model, variables, x, "conv2", classes=y)),
      atol=1e-6)


def test_a_planted_decisive_neuron_ranks_first():
  model, variables, x = _model_and_images(5)
  params = jax.tree.map(lambda a: a, variables["params"])
  # fc1 unit 7 always fires strongly and alone drives class 4.
  params["Dense_0"]["bias"] = params["Dense_0"]["bias"].at[7].set(5.0)
  params["head"]["kernel"] = jnp.zeros_like(params["head"]["kernel"]).at[7, 4].set(3.0)
  variables = {**variables, "params": params}
  pd = influence.prediction_difference(model, variables, x, "fc1")
  assert (np.asarray(jnp.argmax(model.apply(variables, x), -1)) == 4).all()
  ids, values = influence.top_neurons(pd, 3)
  assert (np.asarray(ids[:, 0]) == 7).all() and (np.asarray(values[:, 0]) > 0.5).all()


def test_own_modules_are_refused_with_a_sentence():
  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(3, name="out")(x.reshape(x.shape[0], -1))

  x = jnp.zeros((1, 4, 4, 3))
  net = Net()
  own = models.adapt(net, net.init(jax.random.key(0), x), x, layers=("out",))
  with pytest.raises(ValueError, match="cannot ablate"):
    influence.prediction_difference(own, net.init(jax.random.key(0), x), x, "out")
  with pytest.raises(ValueError, match="no layer"):
    influence.prediction_difference(*_model_and_images()[:2], x, "conv9")


def test_disagreement_by_hand():
  profile = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
  pd = np.array([[0.3, 0.1, -0.2],     # top-2: neurons 0 (0.3) and 1 (0.1)
                 [-0.1, -0.2, -0.3]])  # no neuron supports the prediction
  got = detection.disagreement(pd, np.array([0, 1]), profile, top=2)
  np.testing.assert_allclose(np.asarray(got), [1 - (0.3 * 1 + 0.1 * 0.5) / 0.4, 1.0], atol=1e-6)
  profiles = detection.class_profiles(np.array([[0, 1, 2], [2, 2, 2]]), np.array([0, 1, 1]), 2,
                                      included=np.array([True, False]))
  np.testing.assert_allclose(profiles, [[1 / 3, 2 / 3], [0.5, 0.5]])


def _naive_auc(neg, pos):
  return np.mean([[1.0 if p > n else 0.5 if p == n else 0.0 for n in neg] for p in pos])


def test_roc_auc_and_curve_against_a_naive_count():
  rng = np.random.default_rng(0)
  for neg, pos in [(rng.normal(size=40), rng.normal(0.7, 1, size=30)),
                   (np.round(rng.normal(size=40)), np.round(rng.normal(0.5, 1, size=30))),
                   (np.zeros(5), np.zeros(3))]:
    auc = detection.roc_auc(neg, pos)
    assert auc == pytest.approx(_naive_auc(neg, pos))
    fpr, tpr, _ = detection.roc_curve(neg, pos)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc)
  assert detection.roc_auc([0.0, 0.1], [0.5, 0.6]) == 1.0
  with pytest.raises(ValueError):
    detection.roc_auc([], [1.0])


def test_detection_scores_by_hand():
  """Four test images, clean and attacked. AUC: each attacked score against the four
  clean ones (0.1, 0.4, 0.2, 0.6), a tie counted half: 0.5 beats 3, 0.4 beats 2 and
  ties 1, 0.9 beats 4, 0.3 beats 2, so 11.5 / 16. Images 0, 1, 2 are classified
  right; the attack changes the answer of 0 and 2 (2 of 3), whose scores 0.5 and
  0.9 beat every right clean image's: AUC 1 on the successful attacks."""
  from interp_jax.analysis import tracing
  rows = tracing.ScoredSample(
      sets={"clean": {"pred": np.array([0, 1, 2, 0]), "score": np.array([0.1, 0.4, 0.2, 0.6])},
            "fgsm": {"pred": np.array([1, 1, 0, 0]), "score": np.array([0.5, 0.4, 0.9, 0.3])}},
      labels=np.array([0, 1, 2, 1]), seeds=np.arange(4))
  out = tracing._detection(rows, {"fgsm": None})
  entry = out.attacks["fgsm"]
  assert entry.auc == pytest.approx(11.5 / 16)
  assert entry.auc_successful == pytest.approx(1.0)
  assert entry.num_successful == 2 and entry.success_rate == pytest.approx(2 / 3)
  assert out.clean_mean == pytest.approx(0.325)
  assert entry.adversarial_mean == pytest.approx(0.525)
  # Flagging scores >= 0.9, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1 in turn (after (0, 0) at +inf).
  assert entry.roc.fpr == (0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 1)
  assert entry.roc.tpr == (0, 0.25, 0.25, 0.5, 0.75, 1, 1, 1)


@pytest.mark.slow
def test_explain_traces_examples_and_scores_detection(trained_workdir, tmp_path):
  from interp_jax import analysis
  from interp_jax.analysis import tracing, results as tracing_results
  from interp_jax.reproduction.stages import dissect_run, explain_run
  from interp_jax.analysis import dissection
  from interp_jax.training.restore import load_trained
  import shutil
  shutil.copytree(trained_workdir, tmp_path / "run")  # the pages are written into the run
  run = load_trained(str(tmp_path / "run"))
  cfg = analysis.default_config()
  cfg.num_images, cfg.k, cfg.steps, cfg.eps_curve, cfg.batch_size = 200, 10, 2, (), 100
  results, _ = analysis.analyze(run, cfg, progress=False)
  dcfg = dissection.default_config()
  dcfg.batch_size, dcfg.steps = 100, 2
  dis, _ = dissect_run(run, dcfg, progress=False)
  tcfg = tracing.default_config()
  tcfg.num_images, tcfg.profile_images, tcfg.batch_size, tcfg.images = 120, 600, 40, (5,)
  tcfg.layer = "fc1"
  out, page = explain_run(run, tcfg, results, dis, progress=False)
  assert out.layer == "fc1" and out.profile.split == "train"
  for attack in ("fgsm", "pgd"):
    entry = out.detection.attacks[attack]
    assert entry.num_clean == entry.num_adversarial == 120
    assert entry.roc.fpr[0] == 0 and entry.roc.tpr[-1] == 1
    # The AUC is the area under the curve it reports (clean negative, attacked positive;
    # the curve's points are rounded to 5 decimals).
    assert entry.auc == pytest.approx(np.trapezoid(entry.roc.tpr, entry.roc.fpr), abs=1e-4)
  kinds = [e.kind for e in out.examples]
  assert kinds[-1] == "requested" and out.examples[-1].test_index == 5
  # The requested image's neurons are its top prediction differences, computed directly.
  from interp_jax import data
  test = data.open_split(run.config.dataset, "test")
  x = data.to_model_input(test.get(np.array([5])))["image"]
  pd = np.asarray(influence.prediction_difference(run.model, run.variables, x, "fc1"))[0]
  shown = out.examples[-1].neurons
  assert [n.neuron for n in shown] == np.argsort(-pd, kind="stable")[:len(shown)].tolist()
  np.testing.assert_allclose([n.pd for n in shown], np.sort(pd)[::-1][:len(shown)], atol=1e-5)
  assert all(n.consistency == results.layers["fc1"].sets["real"].per_neuron[n.neuron]
             for n in shown)
  # A neuron's concept is its dissection's real-image detector concept, or none.
  detects = dis.layers["fc1"].sets["real"] if "fc1" in dis.layers else None
  assert all(n.concept == (detects.concept[n.neuron] if detects and detects.detector[n.neuron]
                           else None) for n in shown)
  # What was saved reads back as the same results.
  saved = tracing_results.TracingResults.load(page.replace("index.html", "results.json"))
  assert saved == out


def test_commands_refuse_bad_input_in_one_sentence(trained_workdir, tmp_path):
  import shutil
  work = tmp_path / "run"
  shutil.copytree(trained_workdir, work,
                  ignore=shutil.ignore_patterns("analysis", "dissection", "explain"))
  def call(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=300)
  r = call("interp_jax.explain", f"--workdir={work}")
  assert r.returncode == 2 and "run python -m interp_jax.analyze" in r.stderr
  assert len(r.stderr.strip().splitlines()) == 1
  r = call("interp_jax.dissect", f"--workdir={work}", "--config.layers=conv9")
  assert r.returncode == 2 and "no layer" in r.stderr and len(r.stderr.strip().splitlines()) == 1
  # Another bad value, through the library call the command makes (the same way out).
  from interp_jax.analysis import dissection
  from interp_jax.errors import UserError
  from interp_jax.reproduction.stages import dissect_workdir
  cfg = dissection.default_config()
  cfg.quantile = 1.5
  with pytest.raises(UserError, match="quantile"):
    dissect_workdir(str(work), cfg)
  assert not (work / "dissection").exists() and not (work / "explain").exists()
