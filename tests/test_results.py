"""The typed analysis results: the same fields as the documented JSON schema, and a
misspelt, missing or unknown field refused where it is met, with where it is."""

import dataclasses
import json

import pytest

from interp_jax.analysis import results as R
from interp_jax.report import schema

_S = schema.RESULTS_SCHEMA["properties"]
_LAYER = schema.RESULTS_SCHEMA["properties"]["layers"]["additionalProperties"]
_SET = _LAYER["properties"]["sets"]["additionalProperties"]
# Each record type beside the schema object it reads.
PAIRS = [(R.AnalysisResults, schema.RESULTS_SCHEMA), (R.RunInfo, _S["run"]),
         (R.Accuracy, _S["accuracy"]), (R.Attack, _S["attack"]), (R.LayerResult, _LAYER),
         (R.SetScore, _SET), (R.Chance, _SET["properties"]["chance"]),
         (R.Purity, _SET["properties"]["purity"]), (R.Excluded, _SET["properties"]["excluded"]),
         (R.Histogram, _SET["properties"]["histogram"]),
         (R.TopkOverlap, _LAYER["properties"]["topk_overlap"]), (R.EpsCurve, _S["eps_curve"]),
         (R.CurvePoint, _S["eps_curve"]["properties"]["points"]["items"])]


@pytest.mark.parametrize("record, obj", PAIRS, ids=[r.__name__ for r, _ in PAIRS])
def test_each_record_has_the_fields_of_its_schema_object(record, obj):
  fields = {f.name: f for f in dataclasses.fields(record)}
  named = set(obj.get("properties", {})) | set(obj["required"])
  assert set(fields) == named
  # A field the type cannot do without is one the schema requires.
  assert {n for n, f in fields.items() if f.default is dataclasses.MISSING} <= set(
      obj["required"])


def test_a_missing_or_unknown_field_is_refused_with_where_it_is():
  point = {"factor": 1.0, "eps": 0.1, "mean": 0.5, "purity": 0.4, "num_included": 3,
           "accuracy": 0.2, "paired_mean": 0.45}
  curve = {"layer": "fc1", "num_paired": 3, "points": [point, {**point, "eps": 0.2}]}
  got = R.EpsCurve.from_json(curve)
  assert got.points[1].eps == 0.2 and got.points[0].turned_wrong is None
  assert isinstance(got.points, tuple)
  # A None that means "not measured" is written as null; a field marked absent-if-None
  # (here the shared set's accuracy) is left out while None.
  assert got.to_json() == {**curve, "points": [{**p, "turned_wrong": None}
                                               for p in curve["points"]]}
  assert R.Accuracy(0.9, 0.1).to_json() == {"clean": 0.9, "adversarial": 0.1}
  with pytest.raises(ValueError, match=r"^curve\.points\[1\] is not a CurvePoint: "
                                       r"unknown mean_paired; missing paired_mean$"):
    bad = {**point, "mean_paired": 0.45}
    del bad["paired_mean"]
    R.EpsCurve.from_json({**curve, "points": [point, bad]}, "curve")
  with pytest.raises(ValueError, match=r"^results\.chance must be an object, got list$"):
    R.Purity.from_json({"mean": None, "median": None, "per_neuron": [], "chance": [0.1]})
  with pytest.raises(ValueError, match=r"^results\.points must be a list, got dict$"):
    R.EpsCurve.from_json({**curve, "points": {"0": point}})
  with pytest.raises(AttributeError):
    got.points[0].paired  # noqa: B018: a misspelt read fails where it is made
  with pytest.raises(dataclasses.FrozenInstanceError):
    got.points[0].mean = 0.9


def test_a_comparison_keeps_the_other_set_under_its_name():
  pair = {"num_neurons": 4, "real": 0.7, "successful": 0.5}
  got = R.Comparison.from_json(pair)
  assert (got.real, got.other, got.other_set) == (0.7, 0.5, "successful")
  assert got.to_json() == pair
  with pytest.raises(ValueError, match="one other set's mean"):
    R.Comparison.from_json({**pair, "shared": 0.4})
  with pytest.raises(ValueError, match="must be an object, got list"):
    R.Comparison.from_json([4, 0.7, 0.5])


def test_saved_results_of_another_schema_are_made_again_not_read(tmp_path):
  """A stage reuses saved results only when they read as its type, were asked alike and
  are of this checkpoint; an older file is made again rather than misread."""
  from interp_jax.reproduction import stages
  run = {"workdir": "w", "model": "m", "checkpoint_step": 7}
  entry = {"auc": 0.6, "num_clean": 2, "num_adversarial": 2, "success_rate": 0.5,
           "adversarial_mean": 0.4, "roc": {"fpr": [0, 1], "tpr": [0, 1]},
           "auc_successful": None, "num_successful": 1}
  saved = {"layer": "fc1", "ablation": "zero", "settings": {}, "examples": [],
           "profile": {"split": "train", "num_images": 4, "k": 2, "num_included": 3,
                       "num_neurons": 4},
           "accuracy": {"clean": 1.0}, "requested": {"top": 5}, "run": run,
           "detection": {"score": "D", "clean_mean": 0.2, "attacks": {"pgd": entry}}}
  path = tmp_path / "results.json"
  path.write_text(json.dumps(saved))
  got = stages._saved(R.TracingResults, str(path), {"top": 5}, 7)
  assert got is not None and got.detection.attacks["pgd"].auc == 0.6
  assert stages._saved(R.TracingResults, str(path), {"top": 6}, 7) is None   # asked otherwise
  assert stages._saved(R.TracingResults, str(path), {"top": 5}, 8) is None   # other checkpoint
  older = dict(saved)
  older["detector"] = older.pop("detection")   # a field under its old name
  path.write_text(json.dumps(older))
  assert stages._saved(R.TracingResults, str(path), {"top": 5}, 7) is None
