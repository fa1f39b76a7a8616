"""The comparison of models: numbers read as the files hold them, the removed share worked
by hand (and left n/a near chance), layers matched by name within one architecture and by
relative depth across two, two imported networks end to end, and the command's errors.

Run as a script, this file repeats the comparison of the demo's three models with two
imported networks of random weights (write_imported_runs, then each run's analysis and
AutoAttack through the commands, then compare):

    .venv/bin/python tests/test_compare.py --root=/tmp/imported --out=/tmp/compare5
"""

import contextlib
import copy
import dataclasses
import json
import os
import re
import subprocess
import sys
from fractions import Fraction

import pytest

from interp_jax.errors import UserError
from interp_jax.report import comparison_page, schema
from interp_jax.reproduction import comparison
from interp_jax.reproduction.comparison_results import Comparison
from conftest import replaced

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_SETS = ("real", "adversarial", "mixed", "adversarial_by_prediction", "successful", "shared")


def _set(neurons, mean, chance, n, std=0.01):
  return {"included": [i < n for i in range(neurons)], "num_included": n,
          "excluded": {"fewer_than_k": neurons - n, "tied": 0}, "mean": mean, "median": mean,
          "histogram": {"edges": [0.0, 1.0], "counts": [n]},
          "per_neuron": [mean if i < n else None for i in range(neurons)],
          "topk_indices": [[0]] * neurons, "chance": {"mean": chance, "std": std},
          "purity": {"mean": mean, "median": mean, "per_neuron": [mean] * neurons,
                     "chance": {"mean": chance, "std": std}}}


def fake_analysis(layers: dict, accuracy=(0.9, 0.2), eps=4 / 255, model="small_cnn") -> dict:
  """An analysis results.json: layers {name: {set: (mean, chance, num_included[, chance's
  std, 0.01 if not given])} plus "pairs": {set: (real, set, num_neurons)} for the paired
  comparisons}; 4 neurons each."""
  out = {}
  for name, spec in layers.items():
    sets = {s: _set(4, *spec.get(s, (0.5, 0.4, 4))) for s in ALL_SETS}
    pairs = {f"real_vs_{s}": {"num_neurons": n, "real": r, s: o}
             for s, (r, o, n) in spec.get("pairs", {}).items()}
    out[name] = {"num_neurons": 4, "sets": sets, "comparisons": pairs,
                 "topk_overlap": {"mean": 0.5, "num_neurons": 4, "per_neuron": [0.5] * 4},
                 "feature_cosine": 0.7}
  out = dict(sorted(out.items()))  # as the analysis writes them: by name (stem after pool)
  results = {
      "run": {"workdir": "w", "checkpoint_step": 100, "model": model, "dataset": "concept_shapes",
              "class_names": ["a", "b"]},
      "settings": {"attack": "pgd", "eps": eps, "norm": "linf", "steps": 10, "k": 50,
                   "layers": list(layers), "similarity": "hierarchy", "num_images": 400,
                   "activation": "max", "shared_from": "runs/standard"},
      "accuracy": {"clean": accuracy[0], "adversarial": accuracy[1], "shared": 0.5},
      "attack": {"success_rate": 0.7, "num_successful": 280, "turned_wrong": 0.7},
      "layers": out}
  schema.validate(results)  # the fake is a results.json the analysis could have written
  return results


def fake_robustness(clean=0.88, pgd=0.3, auto=0.25, flagged=()) -> dict:
  checks = {c: {"flagged": c in flagged, "value": None, "message": f"{c} message"}
            for c in ("zero_gradients", "square_breaks")}
  return {"checkpoint_step": 100, "split": "test", "model": "small_cnn",
          "dataset": "concept_shapes", "num_images": 200, "clean_accuracy": clean,
          "attacks": {"pgd": {"eps": 4 / 255, "norm": "linf", "steps": 10, "step_size": 0.004,
                              "accuracy": pgd, "seconds": 1.0}},
          "autoattack": {"version": "standard", "eps": 4 / 255, "norm": "linf",
                         "stages": ["apgd_ce"], "options": {}, "accuracy": auto,
                         "accuracy_after": {"clean": clean, "apgd_ce": auto},
                         "broken": {"clean": 24, "apgd_ce": 126}, "seconds": {"apgd_ce": 3.0},
                         "transfer_accuracy": None, "checks": checks}}


def write_run(root, name, analysis=None, robustness=None, dissection=None, explain=None):
  """A run folder holding the given files (no checkpoints: compare never loads one)."""
  run = root / name
  run.mkdir()
  for rel, content in (("analysis/results.json", analysis), ("robustness.json", robustness),
                       ("dissection/results.json", dissection),
                       ("explain/results.json", explain)):
    if content is not None:
      (run / rel).parent.mkdir(exist_ok=True)
      (run / rel).write_text(json.dumps(content))
  return str(run)


def _detectors(per_category: dict) -> dict:
  """One set of a dissected layer whose units 0.. detect a concept of each category."""
  concepts = [c for cat, n in per_category.items() for c in [cat] * n]
  return {"concept": concepts, "iou": [0.1] * len(concepts), "detector": [True] * len(concepts),
          "num_detectors": len(concepts), "detectors_per_category": per_category,
          "detectors_per_concept": {}, "mean_best_iou": 0.1}


DISSECTION = {"probe": "p", "settings": {"iou_threshold": 0.04},
              "concepts": {"names": ["red", "disk"], "categories": ["colour", "shape"],
                           "pixel_share": [0.1, 0.2]},
              "layers": {"conv1": {"units": 3, "threshold": [0.5] * 3,
                                   "threshold_error": [0.01] * 3, "changed": [],
                                   "top_images": [[0]] * 3, "sets": {
                  "real": _detectors({"colour": 2, "shape": 1}),
                  "adversarial": _detectors({"colour": 3, "shape": 0})}}},
              "run": {"workdir": "w", "model": "small_cnn", "checkpoint_step": 100}}
EXPLAIN = {"layer": "fc1", "ablation": "zero", "settings": {},
           "profile": {"split": "train", "num_images": 600, "k": 50, "num_included": 60,
                       "num_neurons": 64},
           "accuracy": {"clean": 0.9, "pgd": 0.1},
           "detection": {"score": "D", "clean_mean": 0.3, "attacks": {
               "pgd": {"auc": 0.61, "auc_successful": 0.66, "roc": {"fpr": [], "tpr": []},
                       "num_clean": 120, "num_adversarial": 120, "success_rate": 0.8,
                       "adversarial_mean": 0.5, "num_successful": 90}}},
           "examples": [],
           "run": {"workdir": "w", "model": "small_cnn", "checkpoint_step": 100}}
LAYERS = {"conv1": {"real": (0.45, 0.4, 4), "adversarial": (0.44, 0.4, 3)},
          "fc1": {"real": (0.8, 0.5, 4), "adversarial": (0.6, 0.5, 3),
                  "successful": (0.55, 0.45, 2), "shared": (0.7, 0.5, 4),
                  "pairs": {"adversarial": (0.8, 0.6, 3), "successful": (0.8, 0.5, 2),
                            "shared": (0.5, 0.7, 4)}}}


def test_a_dissection_of_an_older_schema_is_left_out_with_a_note(tmp_path):
  """compare reads what each run holds: a file of an older schema is left out, and the
  run's notes say which command writes it again."""
  old = copy.deepcopy(DISSECTION)
  del old["concepts"]["pixel_share"]   # written before the pixel shares were recorded
  a = write_run(tmp_path, "a", fake_analysis(LAYERS), dissection=old, explain=EXPLAIN)
  b = write_run(tmp_path, "b", fake_analysis(LAYERS))
  (tmp_path / "b" / "import.json").write_text(json.dumps({"arch": "resnet20"}))
  run, other = comparison.read_comparison([a, b]).runs
  assert run.detectors is None and run.detection.layer == "fc1"
  assert [n for n in run.notes if "older schema" in n] == [
      "its dissection/results.json follows an older schema and is left out: rerun "
      f"`python -m interp_jax.dissect --workdir={a}`"]
  # An import.json is written once, by the import into a new workdir: that is the advice.
  assert other.imported is None and [n for n in other.notes if "older schema" in n] == [
      "its import.json follows an older schema and is left out: import the weights again "
      "into a new --workdir (python -m interp_jax.import_weights)"]


def test_the_table_holds_the_files_numbers(tmp_path):
  std = write_run(tmp_path, "std", fake_analysis(LAYERS, (0.9, 0.1)),
                  fake_robustness(0.88, 0.12, 0.05, flagged=("square_breaks",)),
                  DISSECTION, EXPLAIN)
  adv = write_run(tmp_path, "adv", fake_analysis(LAYERS, (0.8, 0.4)))
  out = tmp_path / "out"
  result, page = comparison.compare_runs([std, adv], str(out))
  # The file reads back as what was returned; its JSON is checked key by key below.
  assert Comparison.load(str(out / "comparison.json")) == result
  assert page == str(out / "index.html")
  saved = json.loads((out / "comparison.json").read_text())
  s, a = saved["runs"]
  assert (s["name"], a["name"]) == ("std", "adv")
  assert s["analysis"]["accuracy"] == {"clean": 0.9, "adversarial": 0.1, "shared": 0.5}
  assert s["robustness"]["clean"] == 0.88 and s["robustness"]["attacks"]["pgd"]["accuracy"] == 0.12
  assert s["robustness"]["autoattack"]["accuracy"] == 0.05
  assert s["robustness"]["autoattack"]["flagged"] == ["square_breaks"]
  # Robust accuracy: AutoAttack's where robustness.json has it, else the analysis attack's.
  assert s["robust"] == {"accuracy": 0.05, "source": "autoattack"}
  assert a["robust"] == {"accuracy": 0.4, "source": "analysis"}
  assert s["detectors"]["layers"]["conv1"] == {"real": {"colour": 2, "shape": 1},
                                               "adversarial": {"colour": 3, "shape": 0}}
  assert s["detection"] == {"layer": "fc1", "attacks": {"pgd": {"auc": 0.61,
                                                                "auc_successful": 0.66}}}
  assert a["detectors"] is None and a["detection"] is None
  fc1 = next(r for r in saved["rows"] if r["label"] == "fc1")["models"]["std"]
  assert fc1["sets"]["adversarial"] == {"mean": 0.6, "chance": 0.5, "chance_std": 0.01,
                                       "num_included": 3}
  assert fc1["sets"]["successful"] == {"mean": 0.55, "chance": 0.45, "chance_std": 0.01,
                                       "num_included": 2}
  assert fc1["num_neurons"] == 4 and fc1["depth"] == 1.0
  assert saved["figure"]["points"] == [
      {"name": "std", "layer": "fc1", "consistency": 0.6, "chance": 0.5,
       "robust_accuracy": 0.05, "source": "autoattack"},
      {"name": "adv", "layer": "fc1", "consistency": 0.6, "chance": 0.5,
       "robust_accuracy": 0.4, "source": "analysis"}]
  printed = comparison_page.text(result)
  assert "FLAGGED: square_breaks" in printed and "0.600 (3) / 0.500 ± 0.010" in printed
  assert "0.61" in page_text(out) and "0.050" in page_text(out)


def page_text(out) -> str:
  return (out / "index.html").read_text()


def test_removed_share_worked_by_hand(tmp_path):
  # fc1, paired neurons: real 0.8, chance 0.5 (the real set's, std 0.01).
  #   adversarial 0.6: (0.8 - 0.6) / (0.8 - 0.5) = 2/3
  #   successful 0.5:  (0.8 - 0.5) / 0.3 = 1
  #   shared (real 0.5 over its pairs, at chance): n/a, near chance
  # conv1 has no paired comparisons: n/a, no paired neurons.
  runs = [write_run(tmp_path, n, fake_analysis(LAYERS)) for n in ("a", "b")]
  result = comparison.read_comparison(runs)
  fc1 = next(r for r in result.rows if r.label == "fc1").models["a"]
  assert fc1.removed["adversarial"] == pytest.approx(2 / 3)
  assert fc1.removed["successful"] == pytest.approx(1)
  assert fc1.removed["shared"] is None and list(fc1.removed_na) == ["shared"]
  assert fc1.removed_na["shared"].reason == "near chance"
  conv1 = next(r for r in result.rows if r.label == "conv1").models["a"]
  assert conv1.removed == {"adversarial": None, "successful": None, "shared": None}
  assert {w.reason for w in conv1.removed_na.values()} == {"no paired neurons"}


@pytest.mark.parametrize("real, removed", [
    (0.5625, None),          # real - chance = 0.0625 = chance's std: within it, n/a
    (0.5625 + 2 ** -12, 1),  # just past it: read, (real - 0.5) / (real - 0.5) = 1
    (0.25, None)])           # below chance: n/a as well
def test_removed_share_is_na_within_the_chance_spread(tmp_path, real, removed):
  # Chance 0.5 with std 0.0625 (exact in binary floating point, so the boundary is
  # exactly where the test puts it); the attack takes the consistency down to chance.
  layers = {"fc1": {"real": (real, 0.5, 4, 0.0625), "adversarial": (0.5, 0.5, 4),
                    "pairs": {"adversarial": (real, 0.5, 4)}}}
  runs = [write_run(tmp_path, n, fake_analysis(layers)) for n in ("a", "b")]
  result, _ = comparison.compare_runs(runs, str(tmp_path / "out"))
  cell = result.rows[0].models["a"]
  assert cell.sets["real"].chance_std == 0.0625
  if removed is None:
    assert cell.removed["adversarial"] is None
    why = cell.removed_na["adversarial"]
    assert why.reason == "near chance" and "random k-subsets, 0.062" in why.detail
    assert "removed n/a: near chance</small>" in page_text(tmp_path / "out")
    assert "removed n/a: near chance for own adversarial at a fc1; b fc1: real consistency" in (
        comparison_page.text(result))
  else:
    assert cell.removed["adversarial"] == pytest.approx(removed)
    assert "adversarial" not in cell.removed_na  # (the other sets have no pairs here)
    assert "removed 1.000</small>" in page_text(tmp_path / "out")
    assert "near chance</small>" not in page_text(tmp_path / "out")
  saved = json.loads((tmp_path / "out" / "comparison.json").read_text())
  assert saved["rows"][0]["models"]["a"]["removed_na"] == {
      s: why.to_json() for s, why in cell.removed_na.items()}


def test_layers_of_one_architecture_match_by_name():
  rows = comparison.match_layers({"a": ["conv1", "conv2", "fc1"], "b": ["conv1", "conv2", "fc1"],
                                  "c": None})
  assert [(r["label"], r["matched_by"]) for r in rows] == [
      ("conv1", "name"), ("conv2", "name"), ("fc1", "name")]
  assert rows[1]["layers"] == {"a": "conv2", "b": "conv2", "c": None}


def test_different_layers_match_by_relative_depth():
  assert comparison.relative_depths(4) == [0, Fraction(1, 3), Fraction(2, 3), 1]
  assert comparison.relative_depths(1) == [1]
  # Two architectures: a at depths 0, 1/3, 2/3, 1; b at 0, 1/4, 1/2, 3/4, 1. fc1 is in
  # both, but a name is matched only within one architecture. The rows sit at a's
  # depths (the fewer layers): 1/3 takes b's layer1 (1/4 is 1/12 away, 1/2 is 1/6),
  # 2/3 its layer3 (3/4, 1/12 away).
  rows = comparison.match_layers({"a": ["conv1", "conv2", "conv3", "fc1"],
                                  "b": ["stem", "layer1", "layer2", "layer3", "fc1"]},
                                 {"a": "small_cnn", "b": "resnet20"})
  assert [(r["label"], r["matched_by"], r["depth"], r["layers"]) for r in rows] == [
      ("depth 0.00", "relative depth", 0.0, {"a": "conv1", "b": "stem"}),
      ("depth 0.33", "relative depth", 1 / 3, {"a": "conv2", "b": "layer1"}),
      ("depth 0.67", "relative depth", 2 / 3, {"a": "conv3", "b": "layer3"}),
      ("depth 1.00", "relative depth", 1.0, {"a": "fc1", "b": "fc1"})]
  # One architecture whose runs analysed different layers: the layers both analysed,
  # by name (a depth row would set a's conv1 beside b's conv2 of the same network).
  rows = comparison.match_layers({"a": ["conv1", "conv2", "conv3", "fc1"],
                                  "b": ["conv2", "fc1"], "c": None},
                                 {"a": "small_cnn", "b": "small_cnn"})
  assert [(r["label"], r["matched_by"], r["layers"]) for r in rows] == [
      ("conv2", "name", {"a": "conv2", "b": "conv2", "c": None}),
      ("fc1", "name", {"a": "fc1", "b": "fc1", "c": None})]
  # Rows at the depths of the run with fewer layers (x: 0 and 1); y's middle layer, at
  # 1/2, is in no row. A tie takes the shallower layer.
  rows = comparison.match_layers({"x": ["x1", "x2"], "y": ["y1", "y2", "y3"]},
                                 {"x": "vgg11", "y": "alexnet"})
  assert [r["layers"] for r in rows] == [{"x": "x1", "y": "y1"}, {"x": "x2", "y": "y3"}]
  assert comparison.nearest_layer(["y1", "y2"], Fraction(1, 2)) == "y1"


def test_layers_not_every_run_analysed_are_noted(tmp_path):
  runs = [write_run(tmp_path, "all", fake_analysis(LAYERS)),
          write_run(tmp_path, "last", fake_analysis({"fc1": LAYERS["fc1"]}))]
  result = comparison.read_comparison(runs)
  assert [r.label for r in result.rows] == ["fc1"]
  assert result.notes == ("all's conv1: not analysed in every run, so not compared",)


def test_one_name_in_two_architectures_is_matched_by_depth():
  # A PreActResNet-18's layer3 is the third of its four stages (depth 0.6), a
  # WideResNet's layer3 its last (0.75): the same name, not the same place.
  preact = ["stem", "layer1", "layer2", "layer3", "layer4", "pool"]
  wrn = ["stem", "layer1", "layer2", "layer3", "pool"]
  rows = comparison.match_layers({"p": preact, "w": wrn},
                                 {"p": "preact_resnet18", "w": "wide_resnet"})
  assert all(r["matched_by"] == "relative depth" for r in rows)
  assert [(r["layers"]["w"], r["layers"]["p"]) for r in rows] == [
      ("stem", "stem"), ("layer1", "layer1"), ("layer2", "layer2"),  # 0.5: 0.4 / 0.6 tie
      ("layer3", "layer4"), ("pool", "pool")]
  # Two WideResNets of other depths and widths name the same stages alike: by name.
  rows = comparison.match_layers({"w1": wrn, "w2": wrn}, {"w1": "wide_resnet",
                                                          "w2": "wide_resnet"})
  assert [(r["label"], r["matched_by"]) for r in rows] == [(l, "name") for l in wrn]


def test_different_architectures_in_the_table(tmp_path):
  small = {"conv1": LAYERS["conv1"], "fc1": LAYERS["fc1"]}
  deep = {"stem": LAYERS["conv1"], "block": LAYERS["conv1"], "pool": LAYERS["fc1"]}
  runs = [write_run(tmp_path, "small", fake_analysis(small)),
          write_run(tmp_path, "deep", fake_analysis(deep, model="resnet20"))]
  result = comparison.read_comparison(runs)
  rows = {r.label: r for r in result.rows}
  assert set(rows) == {"depth 0.00", "depth 1.00"}  # small's two depths
  assert rows["depth 1.00"].models["deep"].layer == "pool"
  assert rows["depth 1.00"].models["deep"].depth == 1.0
  assert rows["depth 0.00"].models["deep"].layer == "stem"  # settings' order, not sorted
  page = page_or_write(result, tmp_path)
  assert "by relative depth" in page and "<small>resnet20</small>" in page


def page_or_write(result, tmp_path) -> str:
  comparison_page.write(result, str(tmp_path / "page"))
  return (tmp_path / "page" / "index.html").read_text()


def test_a_run_without_analysis_gets_a_note(tmp_path):
  std = write_run(tmp_path, "std", fake_analysis(LAYERS))
  bare = write_run(tmp_path, "imported", robustness=fake_robustness())
  result = comparison.read_comparison([std, bare])
  entry = result.runs[1]
  assert f"not analysed: run `python -m interp_jax.analyze --workdir={bare}`" in entry.notes
  assert entry.analysis is None and entry.robust.source == "autoattack"
  assert all(r.models["imported"] is None for r in result.rows)
  assert [r.label for r in result.rows] == ["conv1", "fc1"]
  assert "not analysed" in page_or_write(result, tmp_path)
  assert "not analysed" in comparison_page.text(result)


def test_a_run_with_nothing_to_compare_is_an_error_and_nothing_is_written(tmp_path):
  std = write_run(tmp_path, "std", fake_analysis(LAYERS))
  empty = write_run(tmp_path, "empty")
  with pytest.raises(UserError, match="holds neither analysis/results.json nor robustness"):
    comparison.compare_runs([std, empty], str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


def test_unlike_measurements_are_noted(tmp_path):
  runs = [write_run(tmp_path, "a", fake_analysis(LAYERS, eps=4 / 255)),
          write_run(tmp_path, "b", fake_analysis(LAYERS, eps=8 / 255))]
  notes = comparison.read_comparison(runs).notes
  assert len(notes) == 1 and "differ in eps" in notes[0]


def test_the_json_follows_its_schema(tmp_path):
  runs = [write_run(tmp_path, "a", fake_analysis(LAYERS), fake_robustness(), DISSECTION,
                    EXPLAIN), write_run(tmp_path, "b", robustness=fake_robustness())]
  result = comparison.read_comparison(runs)
  comparison_page.validate(result.to_json())
  saved = result.to_json()
  saved["runs"][0]["robsut"] = saved["runs"][0].pop("robust")  # a misspelt key fails
  with pytest.raises(Exception, match="robust"):
    comparison_page.validate(saved)
  with pytest.raises(ValueError, match=r"comparison.json.runs\[0\] is not a ComparedRun: "
                                       r"unknown robsut; missing robust"):
    Comparison.from_json(saved, "comparison.json")
  # A share outside [0, 1] is the schema's to refuse (the records do not check values).
  bad = replaced(result, ("runs", 0, "robust", "accuracy"), 1.5)
  with pytest.raises(Exception, match="1.5"):
    comparison_page.validate(bad.to_json())


def test_the_page_references_only_files_that_exist(tmp_path):
  runs = [write_run(tmp_path, "a", fake_analysis(LAYERS), fake_robustness()),
          write_run(tmp_path, "b", fake_analysis(LAYERS))]
  (tmp_path / "a" / "analysis" / "index.html").write_text("<html></html>")  # linked
  out = tmp_path / "out"
  comparison.compare_runs(runs, str(out))
  refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page_text(out))
  assert "robust_vs_consistency.png" in refs and "comparison.json" in refs
  assert os.path.join("..", "a", "analysis", "index.html") in refs
  for ref in refs:
    assert (out / ref).exists(), ref


def _compare(*args):
  return subprocess.run([sys.executable, "-m", "interp_jax.compare", *args], cwd=REPO,
                        capture_output=True, text=True)


def test_the_command_prints_the_table_and_where_the_page_is(tmp_path):
  runs = [write_run(tmp_path, n, fake_analysis(LAYERS), fake_robustness()) for n in "ab"]
  result = _compare(f"--runs={','.join(runs)}", f"--out={tmp_path / 'out'}")
  assert result.returncode == 0, result.stderr[-2000:]
  assert f"report: {tmp_path / 'out' / 'index.html'}" in result.stdout
  assert "AutoAttack" in result.stdout and "fc1" in result.stdout


def test_bad_runs_exit_2_with_one_sentence(tmp_path):
  """Each bad value is a UserError before anything is written; the command turns one into
  exit 2 and one sentence (one process: every UserError takes the same way out of cli.py),
  as it does a missing flag."""
  good = write_run(tmp_path, "good", fake_analysis(LAYERS))
  empty = write_run(tmp_path, "empty")
  out = tmp_path / "out"
  for runs, message in (([good], "at least two run directories"),
                        ([good, str(tmp_path / "missing")], "is not a directory"),
                        ([good, good], "is given twice"),
                        ([good, empty], "holds neither")):
    with pytest.raises(UserError, match=message):
      comparison.compare_runs(runs, str(out))
    assert not out.exists()
  result = _compare(f"--runs={good},{empty}", f"--out={out}")
  assert result.returncode == 2 and "holds neither" in result.stderr, result.stderr[-500:]
  assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
  assert not out.exists()
  result = _compare(f"--runs={good},{good}")
  assert result.returncode == 2 and "--out is required" in result.stderr


def test_a_foreign_results_file_is_one_sentence(tmp_path):
  std = write_run(tmp_path, "std", fake_analysis(LAYERS))
  odd = write_run(tmp_path, "odd", robustness={"clean_accuracy": 0.5})  # no "attacks"
  with pytest.raises(UserError, match=r"robustness.json is not a RobustnessReport: missing "
                                      r"checkpoint_step, model, dataset, num_images, attacks"):
    comparison.read_comparison([std, odd])
  (tmp_path / "odd" / "robustness.json").write_text("{not json")
  with pytest.raises(UserError, match="cannot read"):
    comparison.read_comparison([std, odd])


# Two imported networks of different architectures ----------------------------------------

@contextlib.contextmanager
def _registered(name: str, arch):
  """torch_import.ARCHS[name] = arch for the block: import_weights reads WideResNets at
  the published sizes only (wrn28_10, ...), a test or a 2-core machine wants a small one."""
  from interp_jax.models import torch_import
  torch_import.ARCHS[name] = arch
  try:
    yield
  finally:
    del torch_import.ARCHS[name]


def write_imported_runs(root: str, config, wrn=(16, 2), num_classes: int = 9) -> dict:
  """Two networks of random weights, each saved as its authors' code saves it and imported
  (import_weights.import_run, what the command calls) into root/NAME as a run of `config`:
  RobustBench's PreActResNet-18 of Wong et al. 2020 (mu/sigma in the file) as
  preact_resnet18, and a WideResNet in the Madry/TRADES layout (`module.` prefix, the
  unused sub_block1) at depth and width `wrn`, as wrn{depth}_{width}. Heads have
  num_classes outputs: the data set's (a 10-class CIFAR-10 head on concept_shapes' 9
  classes is refused by the import). A run already in root is kept. Returns {name: workdir}.
  """
  import torch
  import test_robust_archs as archs  # the PyTorch definitions of the published layouts
  from interp_jax.training import imported as import_weights
  from interp_jax.models import torch_import

  torch.manual_seed(0)
  preact = archs._randomised(archs.PreActResNet18T(num_classes, final_bn=False))
  depth, width = wrn
  madry = archs._randomised(archs.MadryWRNT(depth, width, num_classes))
  name = f"wrn{depth}_{width}"
  small = dataclasses.replace(torch_import.ARCHS["wrn28_10"],
                              options={"depth": depth, "width": width})
  files = {"preact_resnet18": {"state_dict": preact.state_dict()},
           name: {f"module.{k}": v for k, v in madry.state_dict().items()}}
  runs = {arch: os.path.join(root, arch) for arch in files}
  os.makedirs(root, exist_ok=True)
  with _registered(name, small):
    for arch, saved in files.items():
      if os.path.isdir(os.path.join(runs[arch], "checkpoints")):
        continue
      path = os.path.join(root, f"{arch}.pt")
      torch.save(saved, path)
      import_weights.import_run(copy.deepcopy(config), arch, path, runs[arch])
  return runs


@pytest.mark.slow
def test_two_imported_architectures_side_by_side(tiny, tmp_path):
  """A PreActResNet-18 and a WRN-10-1 of random weights, imported from their PyTorch
  files, analysed and compared: every row by relative depth, at the WRN's five depths."""
  pytest.importorskip("torch")
  from interp_jax import analysis
  from interp_jax.training.restore import load_trained
  runs = write_imported_runs(str(tmp_path), tiny(), wrn=(10, 1))
  cfg = analysis.default_config()
  cfg.num_images, cfg.k, cfg.steps, cfg.batch_size, cfg.eps_curve = 32, 4, 1, 32, ()
  for workdir in runs.values():
    results, _ = analysis.analyze(load_trained(workdir), cfg, progress=False)
    os.makedirs(os.path.join(workdir, "analysis"))
    with open(os.path.join(workdir, "analysis", "results.json"), "w") as f:
      json.dump(results.to_json(), f)
  result, page = comparison.compare_runs(list(runs.values()), str(tmp_path / "out"))
  assert [(r.model, r.imported.arch) for r in result.runs] == [
      ("preact_resnet18", "preact_resnet18"), ("wide_resnet", "wrn10_1")]
  from interp_jax.training.imported import Imported
  wrn = Imported.load(os.path.join(runs["wrn10_1"], "import.json"))
  assert result.runs[1].imported == wrn and wrn.checkpoint == str(tmp_path / "wrn10_1.pt")
  assert Comparison.load(str(tmp_path / "out" / "comparison.json")) == result
  rows = result.rows
  assert [(r.label, r.matched_by) for r in rows] == [
      (f"depth {d:.2f}", "relative depth") for d in (0, 0.25, 0.5, 0.75, 1)]
  assert [r.models["wrn10_1"].layer for r in rows] == [
      "stem", "layer1", "layer2", "layer3", "pool"]
  assert [r.models["preact_resnet18"].layer for r in rows] == [
      "stem", "layer1", "layer2", "layer4", "pool"]  # not its layer3, at depth 0.6
  for row in rows:
    for cell in row.models.values():
      assert set(cell.sets) >= {"real", "adversarial"}
      for s, share in cell.removed.items():
        assert (share is None) == (s in cell.removed_na)
  with open(page) as f:
    html = f.read()
  assert "by relative depth" in html and "wrn10_1 imported from" in html


def _main(argv=None):
  """Imports the two networks into --root, analyses and attacks them as the demo's models
  were (PGD-10 at 4/255, the shared set made against the demo's standard model, AutoAttack
  at 4/255, on fewer images: a network of random weights keeps most of the images it
  gets right, and AutoAttack's later stages then run on each), then compares them with
  the demo's three models into --out. A step whose output is already in --root is kept."""
  import argparse
  parser = argparse.ArgumentParser(description=_main.__doc__)
  parser.add_argument("--root", default="/tmp/imported")
  parser.add_argument("--out", default="/tmp/compare5")
  parser.add_argument("--demo", default="runs/demo", help="the demo's runs (make demo), "
                      "relative to the repository")
  parser.add_argument("--num_images", type=int, default=500, help="analysed test images")
  parser.add_argument("--aa_images", type=int, default=50, help="test images attacked")
  args = parser.parse_args(argv)
  from interp_jax import cli
  runs = write_imported_runs(args.root, cli.load_config_file(
      os.path.join(REPO, "configs", "concepts.py")))
  python = [sys.executable, "-m"]
  run = lambda command: subprocess.run(python + command, cwd=REPO, check=True)  # noqa: E731
  for workdir in runs.values():
    if not os.path.exists(os.path.join(workdir, "analysis", "results.json")):
      run(["interp_jax.analyze", f"--workdir={workdir}", f"--config.num_images={args.num_images}",
           "--config.eps_curve=()", f"--config.source_workdir={args.demo}/standard"])
    if not os.path.exists(os.path.join(workdir, "robustness.json")):
      run(["interp_jax.attack", f"--workdir={workdir}", "--attacks=pgd,autoattack",
           "--eps=4/255", f"--num_images={args.aa_images}"])
  demo = [f"{args.demo}/{v}" for v in ("standard", "adv", "adv_consistent")]
  run(["interp_jax.compare", f"--runs={','.join(demo + list(runs.values()))}",
       f"--out={args.out}"])


if __name__ == "__main__":
  _main()
