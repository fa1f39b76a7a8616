"""The whole reproduction on a tiny budget: statements agree with their numbers."""

import json
import os
import re

import pytest

from interp_jax import analysis
from interp_jax.analysis.results import AnalysisResults
from interp_jax.reproduction import findings
from interp_jax.default_config import select_variant
from interp_jax.errors import UserError
from interp_jax.reproduction.experiment import check_reusable, reproduce
from interp_jax.reproduction.summary import Summary
from conftest import stub_layer, stub_results, stub_set


@pytest.mark.slow
def test_tiny_reproduction_writes_a_summary_whose_statements_follow_its_numbers(
    tmp_path, tiny):
  # One config holds the experiment: training, and the sections that analyse, dissect,
  # trace, decide and reproduce it (one seed of the three variants, as the demo).
  one_seed = {"reproduction.seeds": 1, "reproduction.selection": False,
              "reproduction.variants": ("standard", "adv", "adv_consistent")}
  config = tiny(num_train_steps=40, eval_every_steps=40, checkpoint_every_steps=40,
                **{"adv.steps": 1, "adv.eval_images": 100, "consistency.layers": ("fc1",)},
                **one_seed)
  cfg, criteria = config.analysis, config.criteria
  cfg.num_images, cfg.k, cfg.steps, cfg.batch_size = 200, 10, 2, 100
  cfg.report_neurons, cfg.report_tiles = 1, 3
  # Each model dissected and explained on a few images: the inspection's wiring is
  # under test here (its numbers are in test_dissection.py and test_tracing.py).
  dcfg, tcfg = config.dissection, config.tracing
  dcfg.batch_size, dcfg.iou_threshold = 100, 0.05   # not the default: the page must say it
  tcfg.num_images, tcfg.profile_images, tcfg.batch_size = 120, 600, 40
  summary = reproduce(config, str(tmp_path), progress=False)
  # What is saved reads back as what was returned, field by field.
  saved = Summary.load(str(tmp_path / "report" / "summary.json"))
  assert saved == summary
  assert saved.layer == "fc1" and set(saved.models) == {"standard", "adv", "adv_consistent"}
  # The statements are a function of the numbers in the file; one seed decides
  # nothing (the default protocol asks for five), and finding 1 quotes the standard
  # model's real-image consistency from its own analysis.
  assert saved.statements == tuple(findings.evaluate(saved, criteria))
  assert [s.finding[0] for s in saved.statements] == ["1", "2", "3"]
  assert [(s.holds, s.verdict) for s in saved.statements] == [
      (None, "undecided: one seed decides nothing")] * 3
  own = {v: json.loads((tmp_path / v / "analysis" / "results.json").read_text())
         for v in saved.models}
  assert (f"mean consistency on real images "
          f"{own['standard']['layers']['fc1']['sets']['real']['mean']:.3f}"
          in saved.statements[0].evidence)
  # Each model's numbers are its run's: accuracies and consistency from its saved
  # analysis, and each accuracy recomputed here on the 200 analysed images: clean,
  # under the analysis's PGD (its images made again, as in test_analyze) and under
  # FGSM, attacked here.
  import jax
  import numpy as np
  from interp_jax import attacks, data
  from interp_jax.analysis import extraction
  from interp_jax.training.restore import load_trained
  for v, m in saved.models.items():
    acc = own[v]["accuracy"]
    assert (m.clean, m.pgd, m.shared) == (acc["clean"], acc["adversarial"], acc["shared"])
    for name in ("real", "adversarial"):
      assert m.layers["fc1"].sets[name] == own[v]["layers"]["fc1"]["sets"][name]["mean"]
    run = load_trained(str(tmp_path / v))
    source = analysis.evaluation_source(run, cfg)
    batch = data.to_model_input(source.get(np.arange(200)))
    right = lambda x: np.argmax(np.asarray(run.model.apply(run.variables, x)), -1) == (
        batch["label"])
    assert m.clean == pytest.approx(float(right(batch["image"]).mean()), abs=1e-9), v
    plan = analysis.check_for(cfg, run.config, run.meta, run.model.layer_names)
    x_pgd = extraction.adversarial_images(run.model, run.variables, source, plan.attack,
                                          np.arange(200), key=jax.random.key(cfg.seed),
                                          batch_size=cfg.batch_size)
    assert m.pgd == pytest.approx(float(right(x_pgd).mean()), abs=1e-9), v
    x_adv = attacks.fgsm(run.model.apply, run.variables, batch["image"], batch["label"],
                         eps=run.config.adv.eps)   # the analysis's eps < 0: the training eps
    assert m.fgsm == pytest.approx(float(right(x_adv).mean()), abs=1e-9), v
  assert own["standard"]["accuracy"]["shared"] == own["standard"]["accuracy"]["adversarial"]
  assert saved.config == json.loads(config.to_json())  # what was trained, for the record
  env = saved.environment   # where: another machine's numbers are another draw
  assert (env["packages"]["jax"], env["backend"], env["devices"]) == (
      jax.__version__, jax.default_backend(), jax.device_count())
  # The page references only files that exist (figures and the per-model analyses).
  page = (tmp_path / "report" / "index.html").read_text()
  assert "40 steps of batch 64" in page and "lambda = 1 x l2 distance at fc1" in page
  refs = re.findall(r"(?:src|href)=['\"]([^'\"]+)['\"]", page)
  assert len(refs) >= 1 + 4 + 3
  for ref in refs:
    assert os.path.isfile(tmp_path / "report" / ref), ref
  # Each model was dissected and explained; the page links both pages.
  assert set(saved.inspection) == set(saved.models)
  for variant, ins in saved.inspection.items():
    dis = json.loads((tmp_path / variant / "dissection" / "results.json").read_text())
    assert ins.dissection["conv3"].real == dis["layers"]["conv3"]["sets"]["real"][
        "detectors_per_category"]
    assert os.path.relpath(ins.pages["explain"], tmp_path / "report") in refs
    assert ins.iou_threshold == dis["settings"]["iou_threshold"] == dcfg.iou_threshold
    tracing = json.loads((tmp_path / variant / "explain" / "results.json").read_text())
    assert ins.detection.layer == tracing["layer"]
    assert {a: e.auc for a, e in ins.detection.attacks.items()} == {
        a: e["auc"] for a, e in tracing["detection"]["attacks"].items()}
  # The page names the threshold the dissection used, not a constant.
  assert f"IoU &gt; {dcfg.iou_threshold:g})" in page
  # The shared set, kept from the standard model's analysis, is the one its attack makes.
  from interp_jax.training.restore import load_trained
  adv_run = load_trained(str(tmp_path / "adv"))
  direct, _ = analysis.analyze(adv_run, cfg, shared_from=load_trained(str(tmp_path / "standard")),
                               progress=False)
  saved_adv = json.loads((tmp_path / "adv" / "analysis" / "results.json").read_text())
  assert saved_adv["accuracy"]["shared"] == direct.accuracy.shared
  for layer, info in direct.layers.items():
    assert saved_adv["layers"][layer]["sets"]["shared"]["per_neuron"] == list(
        info.sets["shared"].per_neuron)
  # A second call reuses the finished runs and analyses.
  stamp = os.path.getmtime(tmp_path / "adv" / "analysis" / "results.json")
  dis_stamp = os.path.getmtime(tmp_path / "adv" / "dissection" / "results.json")
  again = reproduce(config, str(tmp_path), progress=False)
  assert os.path.getmtime(tmp_path / "adv" / "analysis" / "results.json") == stamp
  assert os.path.getmtime(tmp_path / "adv" / "dissection" / "results.json") == dis_stamp
  assert again.statements == summary.statements
  # A lambda other than the one adv_consistent was trained with is refused before
  # any compute, and nothing is rewritten; standard and adv do not read lambda.
  other = tiny(num_train_steps=40, eval_every_steps=40, checkpoint_every_steps=40,
               **{"adv.steps": 1, "adv.eval_images": 100, "consistency.layers": ("fc1",),
                  "consistency.weight": 5.0}, **one_seed)
  other.analysis, other.dissection, other.tracing = cfg, dcfg, tcfg
  before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file())
  with pytest.raises(UserError, match=r"adv_consistent holds a run trained with other "
                                      r"settings \(consistency.weight = 1.0 there, 5.0 asked"):
    reproduce(other, str(tmp_path), progress=False)
  assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()) == before
  for variant in ("standard", "adv"):
    check_reusable(select_variant(other, variant), str(tmp_path / variant))


def test_seeds_are_summarised_by_mean_and_spread():
  from interp_jax.reproduction.over_seeds import RunOutcome, model_summary

  def fake(clean, pgd, fgsm, real, workdir):
    one = stub_set(real, 10, (0.2, 0.01), real / 2, (0.1, 0.01))
    layer = stub_layer(12, {s: one for s in ("real", "adversarial", "mixed",
                                             "adversarial_by_prediction", "successful")},
                       {"adversarial": (9, real, real - 0.1)}, overlap=0.5)
    return RunOutcome(stub_results({"fc1": layer}, clean, pgd, success_rate=1 - pgd), fgsm,
                      workdir)

  m = model_summary([fake(0.9, 0.1, 0.2, 0.6, "a"), fake(0.8, 0.3, 0.4, 0.8, "b")])
  # The sample sd (n - 1): 0.1 / sqrt(2).
  assert abs(m.clean - 0.85) < 1e-12 and abs(m.clean_std - 0.1 / 2 ** 0.5) < 1e-12
  assert abs(m.pgd - 0.2) < 1e-12 and abs(m.fgsm - 0.3) < 1e-12
  fc1 = m.layers["fc1"]
  assert abs(fc1.sets["real"] - 0.7) < 1e-12
  assert abs(fc1.sets_std["real"] - 0.2 / 2 ** 0.5) < 1e-12
  assert abs(fc1.purity["real"] - 0.35) < 1e-12
  pair = fc1.comparisons["real_vs_adversarial"]
  assert (pair.num_neurons, pair.real, pair.other_set) == (9, pytest.approx(0.7), "adversarial")
  assert abs(pair.other - 0.6) < 1e-12 and abs(fc1.topk_overlap - 0.5) < 1e-12
  assert m.shared is None and abs(m.success_rate - 0.8) < 1e-12
  assert m.workdirs == ("a", "b")
  # The page's tables show the spread when there is more than one seed.
  from interp_jax.report.reproduction_tables import model_table
  # ... as a 95% t-interval: 0.85 +/- t(0.975, 1) * 0.0707 / sqrt(2) = 0.85 +/- 0.635.
  assert m.clean_ci == pytest.approx((0.85 - 0.63531, 0.85 + 0.63531), abs=1e-5)
  with_spread = model_table("adv", m, "/runs/x/report", spread=True)
  assert "clean 0.850 [0.215, 1.485]" in with_spread and "0.700 [-0.571, 1.971]" in with_spread
  assert "[" not in model_table("adv", m, "/runs/x/report", spread=False)


@pytest.mark.slow
def test_the_protocol_selects_on_validation_then_decides_by_paired_intervals(tmp_path, tiny):
  """Selection, two seeds, the paper's symmetric loss: the summary's intervals are
  naive t-intervals of per-seed differences read from the saved analyses, and
  the statements agree with them."""
  import numpy as np
  from scipy import stats
  from interp_jax.reproduction.experiment import REPRODUCED
  config = tiny(num_train_steps=40, eval_every_steps=40, checkpoint_every_steps=40,
                **{"adv.steps": 1, "adv.eval_images": 100, "consistency.layers": ("fc1",),
                   "selection.weights": (1.0,), "selection.max_clean_drop": 1.0})
  cfg = analysis.default_config()
  cfg.num_images, cfg.k, cfg.steps, cfg.batch_size = 200, 10, 2, 100
  cfg.report_neurons, cfg.report_tiles, cfg.eps_curve = 1, 2, ()
  criteria = findings.default_criteria()
  criteria.min_seeds = 2   # to see statements decided on this tiny budget
  summary = reproduce(config, str(tmp_path), cfg, criteria, seeds=2, selection=True,
                      variants=REPRODUCED, progress=False, inspect=False)
  saved = Summary.load(str(tmp_path / "report" / "summary.json"))
  assert saved == summary
  from interp_jax.reproduction.selection import SelectionResult
  chosen = SelectionResult.load(str(tmp_path / "selection" / "selection.json")).choice
  # The reported seeds are not the selection's: its winner's luck stays out.
  assert saved.selection.choice == chosen and saved.seeds == (1, 2)
  assert saved.selection.seed == 0
  for m in saved.models.values():
    assert all("selection" not in w for w in m.workdirs)
  if chosen is not None:   # the chosen loss is what adv_consistent trained with
    assert saved.config["consistency"]["weight"] == chosen.weight
  symmetric = saved.config["consistency"]["anchor_clean"] is False
  assert ("adv_symmetric" in saved.models) is not symmetric
  assert saved.statements == tuple(findings.evaluate(saved, criteria))

  def read(v, s):
    return json.loads(open(os.path.join(saved.models[v].workdirs[s], "analysis",
                                        "results.json")).read())

  per_seed = [read("adv_consistent", s)["layers"]["fc1"]["sets"]["adversarial"]["mean"]
              - read("adv", s)["layers"]["fc1"]["sets"]["adversarial"]["mean"] for s in (0, 1)]
  d = saved.differences.decisive["adv_consistent_minus_adv"]
  half = stats.t.ppf(0.975, 1) * np.std(per_seed, ddof=1) / np.sqrt(2)
  assert d.per_seed == pytest.approx(per_seed)
  assert [d.low, d.high] == pytest.approx([np.mean(per_seed) - half,
                                           np.mean(per_seed) + half])
  # A statement that holds has every interval it reads above zero.
  third = saved.statements[2]
  if third.holds:
    assert d.low > 0 and saved.differences.decisive["robust_gain"].low > 0
  elif third.holds is False and d.low <= 0:
    assert "adv_consistent - adv" in third.failed
  # Rerunning reuses the selection and every run.
  stamp = (tmp_path / "seed2" / "adv" / "analysis" / "results.json").stat().st_mtime_ns
  again = reproduce(config, str(tmp_path), cfg, criteria, seeds=2, selection=True,
                    variants=REPRODUCED, progress=False, inspect=False)
  assert again.statements == summary.statements
  assert (tmp_path / "seed2" / "adv" / "analysis" / "results.json").stat(
      ).st_mtime_ns == stamp


def _shape_folder(root, per_class_train=40, per_class_test=12, size=16):
  """A user's folder ROOT/{train,test}/<shape>/*.png, drawn by the concept_shapes renderer."""
  import numpy as np
  from PIL import Image
  from interp_jax.data.concept_shapes import SHAPES, render
  images, labels, _ = render(np.random.default_rng(7), 9 * (per_class_train + per_class_test),
                             size=size)
  seen = {}
  for image, label in zip(images, labels):
    name = SHAPES[label]
    count = seen.get(name, 0)
    seen[name] = count + 1
    split = "train" if count < per_class_train else "test"
    path = root / split / name / f"{count}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
  return sorted(seen)


@pytest.mark.slow
def test_reproduce_runs_on_a_users_image_folder(tmp_path):
  """The command a user types, on image_folder data: report, summary and statements."""
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  classes = _shape_folder(tmp_path / "imgs")
  workdir = tmp_path / "run"
  cmd = [sys.executable, "-m", "interp_jax.reproduce", f"--workdir={workdir}",
         "--config=configs/concepts.py:demo",   # one seed, no selection, three variants
         "--config.dataset.name=image_folder", f"--config.dataset.data_dir={tmp_path / 'imgs'}",
         f"--config.dataset.prepared_dir={tmp_path / 'prepared'}",
         "--config.dataset.image_size=16", "--config.model.options.widths=(8,16,16)",
         "--config.model.options.hidden=32", "--config.batch_size=32",
         "--config.eval_batch_size=64", "--config.num_train_steps=20",
         "--config.log_every_steps=10", "--config.eval_every_steps=20",
         "--config.checkpoint_every_steps=20", "--config.optimizer.warmup_steps=2",
         "--config.adv.eps_warmup_steps=0", "--config.adv.eval_images=32",
         "--config.analysis.k=5", "--config.analysis.steps=2", "--config.analysis.batch_size=32",
         "--config.analysis.report_neurons=1", "--config.analysis.report_tiles=2",
         "--config.tracing.num_images=48", "--config.tracing.profile_images=120",
         "--config.tracing.batch_size=16"]
  result = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-3000:]
  saved = Summary.load(str(workdir / "report" / "summary.json"))
  import ml_collections
  criteria = ml_collections.ConfigDict(saved.criteria)
  assert saved.statements == tuple(findings.evaluate(saved, criteria))
  for v in ("standard", "adv", "adv_consistent"):
    results = json.loads((workdir / v / "analysis" / "results.json").read_text())
    assert results["run"]["dataset"] == "image_folder"
    assert results["settings"]["similarity"] == "identity"  # a folder ships no class tree
    assert results["run"]["class_names"] == classes
    assert results["settings"]["num_images"] == 9 * 12
  # One seed gives no interval: no statement holds; each is undecided unless a
  # threshold already fails on the point estimates.
  for s in saved.statements:
    assert s.holds is False or s.verdict == "undecided: one seed decides nothing"
  assert (result.stdout.count("UNDECIDED: ONE SEED DECIDES NOTHING")
          + result.stdout.count("DOES NOT HOLD")) == 3, result.stdout
  assert "report:" in result.stdout


@pytest.mark.parametrize("field, value, message", [
    ("k", 0, "k, batch_size and chance_draws must be positive integers"),
    ("k", 10_000, "k = 10000 must be below the 400 images analysed"),
    ("layers", ("conv9",), "the model has no layer"),
    ("attack", "deepfool", "unknown attack"),
])
def test_bad_analysis_settings_stop_the_reproduction_before_any_training(
    tmp_path, tiny, field, value, message):
  cfg = analysis.default_config()
  cfg[field] = value
  with pytest.raises(UserError, match=message):
    reproduce(tiny(), str(tmp_path / "run"), cfg, findings.default_criteria(), progress=False)
  assert not (tmp_path / "run").exists()


def test_an_analysis_batch_the_devices_cannot_split_stops_before_any_training(tmp_path, tiny):
  import jax
  devices = jax.device_count()
  if devices == 1:
    pytest.skip("one device splits every batch")
  cfg = analysis.default_config()
  cfg.batch_size = devices + 1
  with pytest.raises(UserError, match=f"is not divisible by the {devices} devices"):
    reproduce(tiny(), str(tmp_path / "run"), cfg, findings.default_criteria(), progress=False)
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_protocol_2_on_a_tiny_budget(tmp_path, tiny):
  """Selection at two seeds, then two seeds each on its own test share, finding 3 on the
  successful attacks and at matched success, the robust gain by the declared evaluation
  (AutoAttack cut to one stage of two steps here): the summary follows the saved numbers."""
  from interp_jax.reproduction import matched, protocol
  config = tiny(num_train_steps=40, eval_every_steps=40, checkpoint_every_steps=40,
                **{"adv.steps": 1, "adv.eval_images": 100, "consistency.layers": ("fc1",),
                   "selection.weights": (1.0,), "selection.forms": ("anchored",),
                   "selection.max_clean_drop": 1.0})
  cfg = analysis.default_config()
  cfg.k, cfg.steps, cfg.batch_size, cfg.report_neurons, cfg.report_tiles = 10, 2, 100, 1, 2
  criteria = findings.default_criteria()
  criteria.protocol, criteria.min_seeds, criteria.test_share = 2, 2, 200  # of 400 images
  criteria.match_factors = (0.0, 0.5, 1.0, 3.0)
  criteria.robust_stages, criteria.robust_steps, criteria.robust_images = ("apgd_ce",), 2, 50
  summary = reproduce(config, str(tmp_path), cfg, criteria, seeds=2, selection=True,
                      variants=("standard", "adv", "adv_consistent"), progress=False,
                      inspect=False)
  saved = Summary.load(str(tmp_path / "report" / "summary.json"))
  assert saved == summary
  assert saved.statements == tuple(findings.evaluate(saved, criteria))
  # The record: protocol 2, its declaration, the commit it ran from, what was changed.
  p = saved.protocol
  assert p.version == 2 and p.declared_in == protocol.DECLARED_IN[2]
  assert p.head == protocol._git("rev-parse", "HEAD")
  assert set(p.changed) == {"min_seeds", "test_share", "match_factors", "robust_stages",
                               "robust_steps", "robust_images"}
  # Two selection seeds per candidate, in their own directories; the report's seeds follow.
  assert saved.selection.seeds == (0, 1) and saved.seeds == (2, 3)
  for s in (0, 1):
    assert (tmp_path / "selection" / f"seed{s}" / "anchored_w1" / "validation_analysis").is_dir()

  def read(v, s):
    return json.loads(open(os.path.join(saved.models[v].workdirs[s], "analysis",
                                        "results.json")).read())

  # Each seed on its own share of 200 test images, the same for its three models.
  digests = [{read(v, s)["settings"]["images_digest"] for v in saved.models} for s in (0, 1)]
  assert all(len(d) == 1 for d in digests) and digests[0] != digests[1]
  assert [t.num_images for t in saved.test_shares] == [200, 200]
  assert [t.images_digest for t in saved.test_shares] == [d.pop() for d in digests]
  first = read("adv", 0)
  assert first["settings"]["successful"] == "right_to_wrong"
  assert [p["factor"] for p in first["eps_curve"]["points"]] == [0.0, 0.5, 1.0, 3.0]
  # (b): each model's matched value is at_rate of its own saved sweep.
  for v, m in saved.models.items():
    for s in (0, 1):
      want = matched.at_rate(AnalysisResults.from_json(read(v, s)).eps_curve.points, 0.5,
                             "mean")
      assert m.matched.per_seed[s] == want
  # The robust gain: the declared evaluation's accuracies, cached in each run's directory.
  gain = saved.differences.decisive["robust_gain"]
  robust = {v: [json.loads(open(os.path.join(w, "robust_eval.json")).read())
                for w in saved.models[v].workdirs] for v in ("standard", "adv_consistent")}
  assert gain.per_seed == pytest.approx(
      [c["accuracy"] - s["accuracy"] for c, s in zip(robust["adv_consistent"],
                                                     robust["standard"])])
  assert all(r["num_images"] == 50 and r["detail"]["stages"] == ["apgd_ce"]
             for rs in robust.values() for r in rs)
  assert "robust_gain_analysis" in saved.differences.decisive
  assert not (tmp_path / "seed2" / "adv" / "robust_eval.json").exists()
  page = (tmp_path / "report" / "index.html").read_text()
  assert "Protocol 2" in page and "Consistency at matched attack success (50%)" in page
  assert "the paper&#x27;s measure, decides nothing here" in page
  assert "AutoAttack (standard, stages apgd_ce, 2 steps) on 50 images" in page
  # Rerunning reuses every run, analysis and evaluation.
  stamp = (tmp_path / "seed3" / "standard" / "robust_eval.json").stat().st_mtime_ns
  again = reproduce(config, str(tmp_path), cfg, criteria, seeds=2, selection=True,
                    variants=("standard", "adv", "adv_consistent"), progress=False,
                    inspect=False)
  assert again.statements == summary.statements
  assert (tmp_path / "seed3" / "standard" / "robust_eval.json").stat().st_mtime_ns == stamp
