"""The whole reproduction on a tiny budget: statements agree with their numbers."""

import json
import os
import re

from interp_jax import analysis, findings
from interp_jax.experiment import reproduce


def test_tiny_reproduction_writes_a_summary_whose_statements_follow_its_numbers(
    tmp_path, tiny):
  config = tiny(num_train_steps=60, eval_every_steps=60, checkpoint_every_steps=60,
                **{"adv.steps": 1, "adv.eval_images": 100, "consistency.layers": ("fc1",)})
  cfg = analysis.default_config()
  cfg.num_images, cfg.k, cfg.steps, cfg.batch_size = 200, 10, 2, 100
  cfg.report_neurons, cfg.report_tiles = 1, 3
  criteria = findings.default_criteria()
  summary = reproduce(config, str(tmp_path), cfg, criteria, progress=False)
  saved = json.loads((tmp_path / "report" / "summary.json").read_text())
  assert saved["layer"] == "fc1" and set(saved["models"]) == {"standard", "adv",
                                                              "adv_consistent"}
  # The statements are a function of the numbers in the file.
  assert saved["statements"] == findings.evaluate(saved, criteria)
  assert len(saved["statements"]) == 3
  assert [s["finding"][0] for s in saved["statements"]] == ["1", "2", "3"]
  for m in saved["models"].values():
    assert 0 <= m["pgd"] <= 1 and 0 <= m["fgsm"] <= 1 and 0 <= m["clean"] <= 1
  # The page references only files that exist (figures and the per-model analyses).
  page = (tmp_path / "report" / "index.html").read_text()
  refs = re.findall(r"(?:src|href)=['\"]([^'\"]+)['\"]", page)
  assert len(refs) >= 1 + 4 + 3
  for ref in refs:
    assert os.path.isfile(tmp_path / "report" / ref), ref
  # A second call reuses the finished runs and analyses.
  stamp = os.path.getmtime(tmp_path / "adv" / "analysis" / "results.json")
  again = reproduce(config, str(tmp_path), cfg, criteria, progress=False)
  assert os.path.getmtime(tmp_path / "adv" / "analysis" / "results.json") == stamp
  assert again["statements"] == summary["statements"]


def test_seeds_are_summarised_by_mean_and_spread():
  from interp_jax.experiment import _model_summary

  def fake(clean, pgd, fgsm, real):
    layer = {"sets": {s: {"mean": real} for s in ("real", "adversarial", "mixed",
                                                    "adversarial_by_prediction")},
             "chance": {"mean": 0.2, "std": 0.01}, "topk_overlap": {"mean": 0.5},
             "feature_cosine": 0.9}
    return {"results": {"accuracy": {"clean": clean, "adversarial": pgd},
                        "layers": {"fc1": layer}}, "fgsm": fgsm}

  m = _model_summary([fake(0.9, 0.1, 0.2, 0.6), fake(0.8, 0.3, 0.4, 0.8)], ["a", "b"])
  assert abs(m["clean"] - 0.85) < 1e-12 and abs(m["clean_std"] - 0.05) < 1e-12
  assert abs(m["pgd"] - 0.2) < 1e-12 and abs(m["fgsm"] - 0.3) < 1e-12
  assert abs(m["layers"]["fc1"]["sets"]["real"] - 0.7) < 1e-12
  assert abs(m["layers"]["fc1"]["sets_std"]["real"] - 0.1) < 1e-12
  assert m["workdirs"] == ["a", "b"]
