"""The comparison of models: numbers read as the files hold them, the removed share worked
by hand, layers matched by name and by relative depth, and the command's errors."""

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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_SETS = ("real", "adversarial", "mixed", "adversarial_by_prediction", "successful", "shared")


def _set(mean, chance, n, neurons):
  return {"included": [i < n for i in range(neurons)], "num_included": n,
          "excluded": {"fewer_than_k": neurons - n, "tied": 0}, "mean": mean, "median": mean,
          "histogram": {"edges": [0.0, 1.0], "counts": [n]},
          "per_neuron": [mean if i < n else None for i in range(neurons)],
          "topk_indices": [[0]] * neurons, "chance": {"mean": chance, "std": 0.01},
          "purity": {"mean": mean, "median": mean, "per_neuron": [mean] * neurons,
                     "chance": {"mean": chance, "std": 0.01}}}


def fake_analysis(layers: dict, accuracy=(0.9, 0.2), eps=4 / 255, model="small_cnn") -> dict:
  """An analysis results.json: layers {name: {set: (mean, chance, num_included)} plus
  "pairs": {set: (real, set, num_neurons)} for the paired comparisons}; 4 neurons each."""
  out = {}
  for name, spec in layers.items():
    sets = {s: _set(*spec.get(s, (0.5, 0.4, 4)), 4) for s in ALL_SETS}
    pairs = {f"real_vs_{s}": {"num_neurons": n, "real": r, s: o}
             for s, (r, o, n) in spec.get("pairs", {}).items()}
    out[name] = {"num_neurons": 4, "sets": sets, "comparisons": pairs,
                 "topk_overlap": {"mean": 0.5, "num_neurons": 4, "per_neuron": [0.5] * 4},
                 "feature_cosine": 0.7}
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


DISSECTION = {"probe": "p", "settings": {"iou_threshold": 0.04},
              "concepts": {"names": ["red", "disk"], "categories": ["colour", "shape"]},
              "layers": {"conv1": {"sets": {
                  "real": {"detectors_per_category": {"colour": 2, "shape": 1}},
                  "adversarial": {"detectors_per_category": {"colour": 3, "shape": 0}}}}},
              "run": {"checkpoint_step": 100}}
EXPLAIN = {"layer": "fc1", "detection": {"attacks": {
    "pgd": {"auc": 0.61, "auc_successful": 0.66, "roc": {"fpr": [], "tpr": []}}}},
           "run": {"checkpoint_step": 100}}
LAYERS = {"conv1": {"real": (0.45, 0.4, 4), "adversarial": (0.44, 0.4, 3)},
          "fc1": {"real": (0.8, 0.5, 4), "adversarial": (0.6, 0.5, 3),
                  "successful": (0.55, 0.45, 2), "shared": (0.7, 0.5, 4),
                  "pairs": {"adversarial": (0.8, 0.6, 3), "successful": (0.8, 0.5, 2),
                            "shared": (0.5, 0.7, 4)}}}


def test_the_table_holds_the_files_numbers(tmp_path):
  std = write_run(tmp_path, "std", fake_analysis(LAYERS, (0.9, 0.1)),
                  fake_robustness(0.88, 0.12, 0.05, flagged=("square_breaks",)),
                  DISSECTION, EXPLAIN)
  adv = write_run(tmp_path, "adv", fake_analysis(LAYERS, (0.8, 0.4)))
  out = tmp_path / "out"
  result, page = comparison.compare_runs([std, adv], str(out))
  saved = json.loads((out / "comparison.json").read_text())
  assert saved == json.loads(json.dumps(result)) and page == str(out / "index.html")
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
  assert fc1["sets"]["adversarial"] == {"mean": 0.6, "chance": 0.5, "num_included": 3}
  assert fc1["sets"]["successful"] == {"mean": 0.55, "chance": 0.45, "num_included": 2}
  assert fc1["num_neurons"] == 4 and fc1["depth"] == 1.0
  assert saved["figure"]["points"] == [
      {"name": "std", "layer": "fc1", "consistency": 0.6, "robust_accuracy": 0.05,
       "source": "autoattack"},
      {"name": "adv", "layer": "fc1", "consistency": 0.6, "robust_accuracy": 0.4,
       "source": "analysis"}]
  printed = comparison_page.text(result)
  assert "FLAGGED: square_breaks" in printed and "0.600 (3) / 0.500" in printed
  assert "0.61" in page_text(out) and "0.050" in page_text(out)


def page_text(out) -> str:
  return (out / "index.html").read_text()


def test_removed_share_worked_by_hand(tmp_path):
  # fc1, paired neurons: real 0.8, chance 0.5 (the real set's).
  #   adversarial 0.6: (0.8 - 0.6) / (0.8 - 0.5) = 2/3
  #   successful 0.5:  (0.8 - 0.5) / 0.3 = 1
  #   shared (real 0.5 over its pairs, at chance): undefined -> null
  # conv1 has no paired comparisons: null.
  runs = [write_run(tmp_path, n, fake_analysis(LAYERS)) for n in ("a", "b")]
  result = comparison.read_comparison(runs)
  fc1 = next(r for r in result["rows"] if r["label"] == "fc1")["models"]["a"]["removed"]
  assert fc1["adversarial"] == pytest.approx(2 / 3) and fc1["successful"] == pytest.approx(1)
  assert fc1["shared"] is None
  conv1 = next(r for r in result["rows"] if r["label"] == "conv1")["models"]["a"]["removed"]
  assert conv1 == {"adversarial": None, "successful": None, "shared": None}


def test_layers_of_one_architecture_match_by_name():
  rows = comparison.match_layers({"a": ["conv1", "conv2", "fc1"], "b": ["conv1", "conv2", "fc1"],
                                  "c": None})
  assert [(r["label"], r["matched_by"]) for r in rows] == [
      ("conv1", "name"), ("conv2", "name"), ("fc1", "name")]
  assert rows[1]["layers"] == {"a": "conv2", "b": "conv2", "c": None}


def test_different_layers_match_by_relative_depth():
  assert comparison.relative_depths(4) == [0, Fraction(1, 3), Fraction(2, 3), 1]
  assert comparison.relative_depths(1) == [1]
  # a at depths 0, 1/3, 2/3, 1; b at 0, 1/4, 1/2, 3/4, 1. Shared by name: fc1.
  # depth 0: conv1 / stem; depth 0.5: a ties between conv2 and conv3 (1/6 away each) and
  # takes the shallower conv2, b has layer2 at exactly 1/2; depth 1: fc1 for both, the
  # row by name already, so left out.
  rows = comparison.match_layers({"a": ["conv1", "conv2", "conv3", "fc1"],
                                  "b": ["stem", "layer1", "layer2", "layer3", "fc1"]})
  assert [(r["label"], r["matched_by"], r["layers"]) for r in rows] == [
      ("fc1", "name", {"a": "fc1", "b": "fc1"}),
      ("depth 0.0", "relative depth", {"a": "conv1", "b": "stem"}),
      ("depth 0.5", "relative depth", {"a": "conv2", "b": "layer2"})]
  # Nothing shared: three depth rows; b's two layers sit at 0 and 1, so 0.5 ties -> b1.
  rows = comparison.match_layers({"a": ["a1", "a2", "a3"], "b": ["b1", "b2"]})
  assert [(r["label"], r["depth"], r["layers"]) for r in rows] == [
      ("depth 0.0", 0.0, {"a": "a1", "b": "b1"}), ("depth 0.5", 0.5, {"a": "a2", "b": "b1"}),
      ("depth 1.0", 1.0, {"a": "a3", "b": "b2"})]


def test_different_architectures_in_the_table(tmp_path):
  small = {"conv1": LAYERS["conv1"], "fc1": LAYERS["fc1"]}
  deep = {"block1": LAYERS["conv1"], "block2": LAYERS["conv1"], "pool": LAYERS["fc1"]}
  runs = [write_run(tmp_path, "small", fake_analysis(small)),
          write_run(tmp_path, "deep", fake_analysis(deep, model="resnet20"))]
  result = comparison.read_comparison(runs)
  rows = {r["label"]: r for r in result["rows"]}
  assert set(rows) == {"depth 0.0", "depth 0.5", "depth 1.0"}
  assert rows["depth 1.0"]["models"]["deep"]["layer"] == "pool"
  assert rows["depth 1.0"]["models"]["deep"]["depth"] == 1.0
  assert rows["depth 0.5"]["models"]["deep"]["layer"] == "block2"
  assert rows["depth 0.5"]["models"]["small"]["layer"] == "conv1"  # tie: the shallower
  assert "relative depth" in page_or_write(result, tmp_path)


def page_or_write(result, tmp_path) -> str:
  comparison_page.write(result, str(tmp_path / "page"))
  return (tmp_path / "page" / "index.html").read_text()


def test_a_run_without_analysis_gets_a_note(tmp_path):
  std = write_run(tmp_path, "std", fake_analysis(LAYERS))
  bare = write_run(tmp_path, "imported", robustness=fake_robustness())
  result = comparison.read_comparison([std, bare])
  entry = result["runs"][1]
  assert f"not analysed: run `python -m interp_jax.analyze --workdir={bare}`" in entry["notes"]
  assert entry["analysis"] is None and entry["robust"]["source"] == "autoattack"
  assert all(r["models"]["imported"] is None for r in result["rows"])
  assert [r["label"] for r in result["rows"]] == ["conv1", "fc1"]
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
  notes = comparison.read_comparison(runs)["notes"]
  assert len(notes) == 1 and "differ in eps" in notes[0]


def test_the_json_follows_its_schema(tmp_path):
  runs = [write_run(tmp_path, "a", fake_analysis(LAYERS), fake_robustness(), DISSECTION,
                    EXPLAIN), write_run(tmp_path, "b", robustness=fake_robustness())]
  result = comparison.read_comparison(runs)
  comparison_page.validate(result)
  result["runs"][0]["robsut"] = result["runs"][0].pop("robust")  # a misspelt key fails
  with pytest.raises(Exception, match="robust"):
    comparison_page.validate(result)


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
  good = write_run(tmp_path, "good", fake_analysis(LAYERS))
  empty = write_run(tmp_path, "empty")
  out = tmp_path / "out"
  for runs, message in ((good, "at least two run directories"),
                        (f"{good},{tmp_path / 'missing'}", "is not a directory"),
                        (f"{good},{good}", "is given twice"),
                        (f"{good},{empty}", "holds neither")):
    result = _compare(f"--runs={runs}", f"--out={out}")
    assert result.returncode == 2 and message in result.stderr, result.stderr[-500:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()
  result = _compare(f"--runs={good},{good}")
  assert result.returncode == 2 and "--out is required" in result.stderr


def test_a_foreign_results_file_is_one_sentence(tmp_path):
  std = write_run(tmp_path, "std", fake_analysis(LAYERS))
  odd = write_run(tmp_path, "odd", robustness={"clean_accuracy": 0.5})  # no "attacks"
  with pytest.raises(UserError, match="lacks the field 'attacks'"):
    comparison.read_comparison([std, odd])
  (tmp_path / "odd" / "robustness.json").write_text("{not json")
  with pytest.raises(UserError, match="cannot read"):
    comparison.read_comparison([std, odd])
