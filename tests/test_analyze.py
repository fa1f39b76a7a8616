"""The analysis end to end on a trained tiny model: results follow the schema, the page
references only files that exist, the numbers agree with a naive recomputation, and no
number depends on the order in which the split is stored."""

import itertools
import json
import os
import re
import shutil
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import jsonschema
import numpy as np
import pytest

from interp_jax import analysis, data, models, report
from interp_jax.measures import consistency, similarity
from interp_jax.analysis import extraction as extract_lib
from interp_jax.analysis.results import RobustnessReport
from interp_jax.errors import UserError
from interp_jax.training.restore import load_trained
from conftest import full_topk

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 300


def small_config(**overrides):
  cfg = analysis.default_config()
  cfg.num_images, cfg.k, cfg.steps, cfg.batch_size = N, 20, 3, 100
  cfg.report_neurons, cfg.report_tiles = 2, 4
  cfg.eps_curve = ()
  for key, value in overrides.items():
    cfg[key] = value
  return cfg


class Permuted:
  """The same images stored in another order: position i holds image order[i]."""

  def __init__(self, source, order):
    self._source, self.order = source, np.asarray(order)

  def __len__(self):
    return len(self.order)

  def get(self, indices):
    return self._source.get(self.order[np.asarray(indices)])


@pytest.fixture(scope="module")
def analysed(trained_workdir):
  run = load_trained(trained_workdir)
  cfg = small_config()
  results, grids = analysis.analyze(run, cfg, progress=False)
  return run, cfg, results, grids


def test_results_follow_the_schema_and_a_misspelt_field_fails_where_it_is_read(analysed):
  _, _, results, _ = analysed
  saved = json.loads(json.dumps(results.to_json()))
  report.validate(saved)
  assert set(results.layers) == {"conv1", "conv2", "conv3", "fc1"}
  # What json.dump writes reads back as the same results.
  assert analysis.AnalysisResults.from_json(saved) == results
  bad = json.loads(json.dumps(saved))
  bad["layers"]["fc1"]["sets"]["real"]["per_neuron"][0] = 1.5
  with pytest.raises(jsonschema.ValidationError):
    report.validate(bad)
  with pytest.raises(AttributeError):
    results.layers["fc1"].sets["real"].consistency
  real = bad["layers"]["fc1"]["sets"]["real"]
  real["meen"] = real.pop("mean")
  with pytest.raises(ValueError, match=r"results\.layers\.fc1\.sets\.real is not a SetScore: "
                                       "unknown meen; missing mean"):
    analysis.AnalysisResults.from_json(bad)


def _naive_set(acts, labels, k, sim):
  """Per neuron: included (k-th activation beats the (k+1)-th, so a set of at most k
  images is never included: its top k is the whole set), sorted top-k, score."""
  out = []
  for n in range(acts.shape[1]):
    order = sorted(range(len(acts)), key=lambda i: (-acts[i, n], i))
    values = np.sort(acts[:, n])[::-1]
    included = len(values) > k and values[k - 1] > values[k]
    top = order[:k]
    p = np.bincount(labels[top], minlength=sim.shape[0]) / k
    out.append((included, top, float(p @ sim @ p) if included else None))
  return out


def _check_against_naive(info, naive, ids=None):
  assert list(info.included) == [inc for inc, _, _ in naive]
  assert info.num_included == sum(inc for inc, _, _ in naive)
  for n, (inc, top, score) in enumerate(naive):
    if inc:
      assert list(info.topk_indices[n]) == [int(t if ids is None else ids[t]) for t in top]
      assert info.per_neuron[n] == pytest.approx(score, abs=1e-5)
    else:
      assert info.per_neuron[n] is None
  live = [s for inc, _, s in naive if inc]
  assert info.mean == (pytest.approx(np.mean(live), abs=1e-5) if live else None)


def test_every_set_matches_a_naive_recomputation(analysed):
  """Real, adversarial, successful and by-prediction sets, from all activations held in
  memory and sorted; the adversarial images are the analysed ones, made again."""
  run, cfg, results, _ = analysed
  source = analysis.evaluation_source(run, cfg)   # N images chosen by content
  batch = data.to_model_input(source.get(np.arange(N)))
  plan = analysis.check_for(cfg, run.config, run.meta, run.model.layer_names)
  x_adv = extract_lib.adversarial_images(run.model, run.variables, source,
                                         plan.attack, np.arange(N), key=jax.random.key(cfg.seed),
                                         batch_size=cfg.batch_size)
  logits_r, feats_r = models.apply_with_features(run.model, run.variables, batch["image"])
  logits_a, feats_a = models.apply_with_features(run.model, run.variables, jnp.asarray(x_adv))
  pred_r, pred_a = np.asarray(logits_r.argmax(-1)), np.asarray(logits_a.argmax(-1))
  labels, sim = batch["label"], np.asarray(results.settings["similarity_matrix"])
  success = np.flatnonzero(pred_a != pred_r)   # the naive filter
  assert results.attack.num_successful == len(success)
  assert results.accuracy.clean == pytest.approx(np.mean(pred_r == labels))
  assert results.accuracy.adversarial == pytest.approx(np.mean(pred_a == labels))
  for layer in ("conv2", "fc1"):
    act_r = np.asarray(consistency.neuron_activations(feats_r[layer]))
    act_a = np.asarray(consistency.neuron_activations(feats_a[layer]))
    sets = results.layers[layer].sets
    _check_against_naive(sets["real"], _naive_set(act_r, labels, cfg.k, sim))
    _check_against_naive(sets["adversarial"], _naive_set(act_a, labels, cfg.k, sim))
    _check_against_naive(sets["adversarial_by_prediction"],
                         _naive_set(act_a, pred_a, cfg.k, sim))
    _check_against_naive(sets["successful"],
                         _naive_set(act_a[success], labels[success], cfg.k, sim), ids=success)
  # fc1 follows a ReLU: some neurons fire on fewer than k images and are left out.
  fc1 = results.layers["fc1"].sets["real"]
  assert fc1.excluded.fewer_than_k > 0
  assert fc1.excluded.fewer_than_k + fc1.excluded.tied + fc1.num_included == 64
  # Each set's chance level comes from the labels it is scored with.
  for name, drawn in (("real", labels), ("adversarial_by_prediction", pred_a),
                      ("successful", labels[success])):
    mean, _ = consistency.chance_consistency(jnp.asarray(drawn), cfg.k, sim, jax.random.key(0))
    assert sets[name].chance.mean == pytest.approx(mean, abs=1e-6)


def test_no_number_depends_on_the_order_of_the_split(analysed):
  """The same 300 images stored shuffled and sorted by class give the same scores."""
  run, cfg, results, _ = analysed
  source = analysis.evaluation_source(run, cfg)
  labels = source.get(np.arange(N))["label"]
  for order in (np.random.default_rng(1).permutation(N), np.argsort(labels, kind="stable")):
    other, _ = analysis.analyze(run, cfg, source=Permuted(source, order), progress=False)
    assert other.accuracy == results.accuracy and other.attack == results.attack
    for layer, info in results.layers.items():
      mine = other.layers[layer]
      assert mine.feature_cosine == pytest.approx(info.feature_cosine, abs=1e-6)
      assert mine.topk_overlap.per_neuron == info.topk_overlap.per_neuron
      assert mine.comparisons == info.comparisons
      for name, s in info.sets.items():
        m = mine.sets[name]
        for field in ("included", "excluded", "per_neuron", "mean", "median", "chance",
                      "purity"):
          assert getattr(m, field) == getattr(s, field), (layer, name, field)
        # The same images, under their ids in the other order (for included neurons:
        # an excluded one's last slots are filled by ties, in storage order).
        if name != "mixed":
          assert [sorted(order[list(t)]) for t, inc in zip(m.topk_indices, m.included) if inc] == [
              sorted(t) for t, inc in zip(s.topk_indices, s.included) if inc]


def test_a_sample_by_content_does_not_depend_on_storage_order(analysed):
  full = data.open_split(analysed[0].config.dataset, "test")
  shuffled = Permuted(full, np.random.default_rng(2).permutation(len(full)))
  pixels = lambda s: sorted(x.tobytes() for x in s.get(np.arange(len(s)))["image"])
  assert pixels(data.sample_by_content(full, 50)) == pixels(data.sample_by_content(shuffled, 50))
  assert data.sample_by_content(full, len(full)) is full


def test_merge_sets_queued_equals_a_full_sort_of_every_set():
  """extraction.merge_sets through a MergeQueue of 2 batches (7 batches of 10 rows, the
  last 3 rows padding, so the last group is short and padded with a copy of the last
  batch, whose rows are the largest) against a full sort of each set's rows: mixed
  holds real ids and adversarial ids + N, successful only the rows whose prediction
  changed, shared its own rows; padding and the copy enter nowhere."""
  rng = np.random.default_rng(7)
  n, batch, k, neurons = 67, 10, 5, 4
  sets = {s: rng.integers(0, 6, (70, neurons)).astype(np.float32)  # many ties
          for s in ("real", "adversarial", "shared")}
  for a in sets.values():
    a[60:] += 10  # the last batch holds every set's top-k
  success = rng.random(70) < 0.5
  valid = np.arange(70) < n
  tallies = {"l": {s: consistency.topk_init(neurons, k)
                   for s in ("real", "adversarial", "mixed", "successful", "shared")}}
  queue = consistency.MergeQueue(extract_lib.merge_sets, 2)
  for b in range(7):
    r = slice(b * batch, (b + 1) * batch)
    ids = np.arange(70)[r]
    tallies = queue.add(tallies, {
        "acts": {"l": {s: jnp.asarray(a[r]) for s, a in sets.items()}},
        "index": jnp.asarray(ids), "mixed_index": jnp.asarray(ids + n),
        "mask": jnp.asarray(valid[r]), "success": jnp.asarray(valid[r] & success[r])})
  got = jax.device_get(queue.flush(tallies))["l"]
  ids = np.arange(n)
  expected = {s: full_topk(sets[s][:n], k) for s in ("real", "adversarial", "shared")}
  expected["mixed"] = full_topk(np.concatenate([sets["real"][:n], sets["adversarial"][:n]]), k,
                                np.r_[ids, ids + n])
  hit = np.flatnonzero(success[:n])
  expected["successful"] = full_topk(sets["adversarial"][hit], k, hit)
  chex.assert_trees_all_equal({s: got[s].indices for s in expected}, expected)


def _synthetic(acts_real, acts_adv, labels, k, success=None):
  """An Extracted of one layer from activations held in memory; `success` ([n] bool,
  default all) marks the images whose prediction the attack changed."""
  n, neurons = acts_real.shape
  ids = jnp.arange(n)
  success = np.ones(n, bool) if success is None else np.asarray(success)
  tally = lambda acts, valid=None: jax.device_get(consistency.topk_update(
      consistency.topk_init(neurons, k + 1), jnp.asarray(acts), ids, valid))
  mixed = consistency.topk_update(tally(acts_real), jnp.asarray(acts_adv), ids + n)
  tallies = {"real": tally(acts_real), "adversarial": tally(acts_adv),
             "mixed": jax.device_get(mixed), "successful": tally(acts_adv, jnp.asarray(success))}
  predicted = np.where(success, (labels + 1) % (labels.max() + 1), labels)
  return analysis.Extracted({"l": tallies}, labels, {"real": labels, "adversarial": predicted},
                            {"l": np.ones(n, np.float32)}, None)


@pytest.mark.parametrize("size", [9, 10, 11])
def test_a_set_of_at_most_k_images_is_excluded_as_the_naive_rule_says(size):
  """k = 10, no ties: a successful set of k - 1 or k images has no (k+1)-th image, so
  its top k is the whole set whatever the neurons do and every neuron is left out
  (counted as firing on fewer than k); k + 1 images decide a top k and are scored."""
  n, k, classes = 40, 10, 4
  rng = np.random.default_rng(size)
  labels = np.arange(n) % classes
  acts = (rng.random((n, 3)) + 0.5).astype(np.float32)   # every neuron fires, no ties
  success = rng.permutation(n) < size
  plan = analysis.Plan(None, ("l",), "identity", {"identity": similarity.identity(classes)},
                       "l", n)
  out = analysis.score(_synthetic(acts, acts, labels, k, success), plan, k=k,
                       key=jax.random.key(0), draws=10)
  info = out.layers["l"].sets["successful"]
  hit = np.flatnonzero(success)
  _check_against_naive(info, _naive_set(acts[hit], labels[hit], k, similarity.identity(classes)),
                       ids=hit)
  assert info.num_included == (3 if size > k else 0)
  if size <= k:
    assert info.excluded == analysis.results.Excluded(fewer_than_k=3, tied=0)


def test_a_neuron_firing_on_fewer_than_k_images_is_excluded_and_counted():
  n, k, classes = 40, 10, 4
  labels = np.arange(n) % classes
  real = np.zeros((n, 3), np.float32)
  real[[0, 1, 2], 0] = 1.0                                   # fires on 3 images < k
  real[:, 2] = np.linspace(1, 2, n)                          # fires on every image
  adv = real.copy()
  adv[:20, 1] = np.arange(20) + 1.0                          # silent on real, fired by attacks
  plan = analysis.Plan(None, ("l",), "identity", {"identity": similarity.identity(classes)},
                       "l", n)
  out = analysis.score(_synthetic(real, adv, labels, k), plan, k=k, key=jax.random.key(0),
                       draws=10)
  sets = out.layers["l"].sets
  assert sets["real"].included == (False, False, True)
  assert sets["real"].excluded == analysis.results.Excluded(fewer_than_k=2, tied=0)
  assert sets["adversarial"].included == (False, True, True)
  # ids 10..19: classes 2,3,0,1,2,3,0,1,2,3 -> p = (.2, .2, .3, .3), p.p = 0.26
  assert sets["adversarial"].per_neuron[1] == pytest.approx(0.26)
  assert out.layers["l"].comparisons["real_vs_adversarial"].num_neurons == 1
  # A tie above zero at the k-th place is excluded too, and counted apart.
  tied = real.copy()
  tied[:, 0] = 1.0
  out = analysis.score(_synthetic(tied, tied, labels, k), plan, k=k, key=jax.random.key(0),
                       draws=10)
  assert out.layers["l"].sets["real"].excluded.to_json() == {"fewer_than_k": 1, "tied": 1}


def test_chance_level_equals_the_mean_over_every_subset():
  """A skewed label distribution (an attack's predictions), k = 3 of 9: all 84 subsets."""
  labels = np.array([0, 0, 0, 0, 0, 1, 1, 2, 3])
  tree = similarity.from_tree({"a": ["0", "1"], "b": ["2", "3"]}, list("0123"))
  for a in (similarity.identity(4), tree):
    scores = [float(np.bincount(labels[list(s)], minlength=4) / 3
                    @ a @ (np.bincount(labels[list(s)], minlength=4) / 3))
              for s in itertools.combinations(range(9), 3)]
    mean, std = consistency.chance_consistency(jnp.asarray(labels[::-1]), 3, a,
                                               jax.random.key(0), draws=4000)
    assert mean == pytest.approx(np.mean(scores), abs=1e-6)
    assert std == pytest.approx(np.std(scores), rel=0.1)
  assert np.isnan(consistency.chance_consistency(jnp.asarray(labels), 10, tree,
                                                 jax.random.key(0))[0])


def test_the_source_model_scored_on_the_shared_set_equals_its_own_adversarial_set(
    analysed, trained_workdir):
  run, cfg, results, _ = analysed
  shared, _ = analysis.analyze(run, cfg, shared_from=load_trained(trained_workdir),
                               progress=False)
  assert shared.accuracy.shared == shared.accuracy.adversarial
  for layer, info in shared.layers.items():
    assert info.sets["shared"].per_neuron == info.sets["adversarial"].per_neuron
    assert info.sets["shared"].topk_indices == info.sets["adversarial"].topk_indices
    assert info.sets["adversarial"] == results.layers[layer].sets["adversarial"]


def test_the_eps_curve_equals_analyses_at_each_eps(analysed, monkeypatch):
  """Streamed at every eps (the curve's layer is not among the analysed ones): eps x 0 is
  the real set, eps x 1 the analysis, eps x 0.5 an analysis at eps / 2.

  Each program compiles once: the attacked-batch step of the main pass (conv2) and the
  one step of the whole curve (fc1; 3 passes at 3 eps) hold one executable each after
  their 3 batches a pass, and the top-k merge is traced once per layer set."""
  run, cfg, results, _ = analysed
  steps, make_step = [], extract_lib.batch_step
  monkeypatch.setattr(extract_lib, "batch_step",
                      lambda *a, **kw: steps.append(make_step(*a, **kw)) or steps[-1])
  chex.clear_trace_counter()
  merge = chex.assert_max_traces(extract_lib.merge_sets, n=2)
  monkeypatch.setattr(extract_lib, "merge_sets", merge)
  curved, _ = analysis.analyze(run, small_config(eps_curve=(0.0, 0.5, 1.0), layers=("conv2",),
                                                 eps_curve_layer="fc1"), progress=False)
  assert [step._cache_size() for step in steps] == [1, 1]
  assert consistency._grouped(merge)._cache_size() == 2
  curve = curved.eps_curve
  points = curve.points
  fc1 = results.layers["fc1"].sets
  assert curve.layer == "fc1"
  assert points[0].mean == pytest.approx(fc1["real"].mean, abs=1e-6)
  assert points[0].accuracy == results.accuracy.clean
  assert points[2].mean == pytest.approx(fc1["adversarial"].mean, abs=1e-6)
  assert points[2].accuracy == results.accuracy.adversarial
  half, _ = analysis.analyze(run, small_config(eps=run.config.adv.eps / 2, layers=("fc1",)),
                             progress=False)
  assert points[1].mean == pytest.approx(half.layers["fc1"].sets["adversarial"].mean, abs=1e-6)
  assert points[1].accuracy == half.accuracy.adversarial
  # The paired mean is over the neurons included at every eps.
  every = np.asarray(fc1["real"].included) & np.asarray(fc1["adversarial"].included) & (
      np.asarray(half.layers["fc1"].sets["adversarial"].included))
  assert curve.num_paired == every.sum()
  assert points[0].paired_mean == pytest.approx(
      np.mean(np.asarray(fc1["real"].per_neuron, float)[every]), abs=1e-6)


def test_report_shows_the_analysed_adversarial_images(analysed, monkeypatch):
  """Kept or made again, the grids' adversarial images are the analysed ones."""
  run, cfg, results, grids = analysed
  monkeypatch.setattr(extract_lib, "_KEEP_IMAGES_BYTES", 0)
  again, regrids = analysis.analyze(run, cfg, progress=False)
  assert len(grids) == len(regrids) == 4 * 3
  chex.assert_trees_all_close([r.adversarial for r in regrids], [g.adversarial for g in grids],
                              atol=1e-6)
  chex.assert_trees_all_equal([r.real for r in regrids], [g.real for g in grids])
  assert results.settings["eps"] == run.config.adv.eps  # eps < 0: the training eps


def test_report_references_only_files_that_exist(analysed, tmp_path):
  _, cfg, results, grids = analysed
  page = report.write_report(results, grids, str(tmp_path))
  text = open(page).read()
  refs = re.findall(r"src=['\"]([^'\"]+)['\"]", text)
  assert len(refs) >= 1 + 4 * 4  # summary, and per layer a histogram and three grids
  for ref in refs:
    assert os.path.isfile(os.path.join(tmp_path, ref)), ref
  assert "fire on fewer than k images" in text
  assert "AutoAttack" not in text
  # With the run's robustness.json holding an AutoAttack section, the page shows its
  # stages, and names a flagged check.
  checks = {"zero_gradients": {"flagged": True, "value": {"ce": 3}, "message": "three zeros"},
            "transfer": {"flagged": False, "value": None, "message": "no transfer set"}}
  section = {"version": "standard", "eps": 4 / 255, "norm": "linf",
             "stages": ["apgd_ce", "square"], "options": {}, "accuracy": 0.25,
             "accuracy_after": {"clean": 0.75, "apgd_ce": 0.5, "square": 0.25},
             "broken": {"clean": 1, "apgd_ce": 1, "square": 1},
             "seconds": {"apgd_ce": 1.0, "square": 2.0}, "transfer_accuracy": None,
             "checks": checks}
  saved = {"checkpoint_step": 0, "model": "small_cnn", "dataset": "concept_shapes",
           "num_images": 4, "clean_accuracy": 0.75, "attacks": {}, "autoattack": section}
  text = open(report.write_report(results, grids, str(tmp_path),
                                  RobustnessReport.from_json(saved))).read()
  assert "robust accuracy <b>0.2500</b>" in text
  assert "<tr><td>apgd_ce</td><td>0.5000</td><td>1</td>" in text
  assert "<b>FLAGGED</b> zero_gradients: three zeros" in text
  assert "<li>transfer: no transfer set</li>" in text


@pytest.mark.slow
def test_analyze_command_writes_results_and_refuses_bad_input(trained_workdir, tmp_path):
  workdir = tmp_path / "run"
  subprocess.run(["cp", "-r", trained_workdir, str(workdir)], check=True)
  base = [sys.executable, "-m", "interp_jax.analyze", f"--workdir={workdir}"]
  small = ["--config.num_images=200", "--config.k=10", "--config.steps=2",
           "--config.batch_size=100", "--config.layers=('conv2','fc1')",
           "--config.similarity=identity", "--config.eps_curve=(0.0,1.0)",
           f"--config.source_workdir={trained_workdir}"]
  result = subprocess.run(base + small, cwd=REPO, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-2000:]
  results = json.loads((workdir / "analysis" / "results.json").read_text())
  report.validate(results)
  assert list(results["layers"]) == ["conv2", "fc1"]
  assert results["settings"]["similarity"] == "identity"
  assert "shared" in results["layers"]["fc1"]["sets"] and "shared set" in result.stdout
  assert (workdir / "analysis" / "index.html").exists()
  # Each bad value is a UserError before any compute (in this process: the command takes
  # every UserError the same way out, exit 2 and its sentence, shown for one below).
  from interp_jax.reproduction.stages import analyze_workdir
  for field, value, message in [("layers", ("conv9",), "no layer"),
                                ("similarity", "cosmic", "unknown similarity"),
                                ("attack", "deepfool", "unknown attack"),
                                ("eps", 2.0, "eps must be in"),
                                ("eps_curve", (-1.0,), "multiples of eps")]:
    with pytest.raises(UserError, match=message):
      analyze_workdir(str(workdir), small_config(**{field: value}), progress=False)
  for args, message in [(["--config.layers=('conv9',)"], "no layer"),
                        (["--config.kk=3"], "unknown config field")]:
    bad = subprocess.run(base + args, cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and message in bad.stderr, bad.stderr[-800:]
    assert "Traceback" not in bad.stderr


def test_autoattack_images_as_the_adversarial_set(trained_workdir, tmp_path):
  """analysis.adversarial="autoattack" scores each image's AutoAttack worst case, read from
  the attack command's file: the model's accuracy on that set is AutoAttack's robust
  accuracy, image by image; a missing file, or one that lacks analysed images, is one
  clear error before anything is computed."""
  from interp_jax.analysis import robustness
  workdir = str(tmp_path / "run")
  shutil.copytree(trained_workdir, workdir)
  run = load_trained(workdir)
  cfg = small_config(adversarial="autoattack")
  with pytest.raises(UserError, match="--attacks=autoattack --save_images"):
    analysis.analyze(run, cfg, progress=False)
  source = analysis.evaluation_source(run, cfg)
  eps = analysis.resolved_eps(cfg, run.config)
  few = analysis.evaluation_source(run, small_config(num_images=N // 3))
  robustness.evaluate_autoattack(run, few, eps, stages=("apgd_ce",), steps=3, batch_size=100,
                                 save_dir=os.path.join(workdir, "adversarial"), progress=False)
  with pytest.raises(UserError, match=f"not of {N - N // 3} of the {N} analysed"):
    analysis.analyze(run, cfg, progress=False)
  report = robustness.evaluate_autoattack(run, source, eps, stages=("apgd_ce",), steps=3,
                                          batch_size=100, progress=False,
                                          save_dir=os.path.join(workdir, "adversarial"))
  results, _ = analysis.analyze(run, cfg, progress=False)
  assert results.settings["adversarial"] == "autoattack"
  assert results.accuracy.adversarial == pytest.approx(report.accuracy, abs=1e-9)
  saved = np.load(os.path.join(workdir, "adversarial", "autoattack.npz"))
  assert (saved["broken_by"] == "apgd_ce").sum() > 10   # the attack did break images
  own, _ = analysis.analyze(run, small_config(), progress=False)
  assert own.accuracy.adversarial != results.accuracy.adversarial
