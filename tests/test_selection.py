"""Selection on the validation split: never reads the test split, follows its rule."""

import json

import pytest

from interp_jax import analysis, data
from interp_jax.errors import UserError
from interp_jax.reproduction import selection


@pytest.mark.slow
def test_selection_never_reads_the_test_split_and_writes_its_choice(tmp_path, tiny,
                                                                    monkeypatch):
  config = tiny(num_train_steps=40, eval_every_steps=40, checkpoint_every_steps=40,
                **{"adv.steps": 1, "adv.eval_images": 100, "consistency.layers": ("fc1",),
                   "selection.weights": (0.5, 2.0)})
  cfg = analysis.default_config()
  cfg.num_images, cfg.k, cfg.steps, cfg.batch_size = 200, 10, 2, 100  # of 400 validation images
  cfg.report_neurons, cfg.report_tiles = 1, 2
  data.describe(config.dataset)  # build the data before the guard
  opened = []
  real_open = data.open_split

  def guarded(dataset, split, *args, **kwargs):
    opened.append(split)
    if split == "test":
      raise AssertionError("selection read the test split")
    return real_open(dataset, split, *args, **kwargs)

  monkeypatch.setattr(data, "open_split", guarded)
  out = selection.select(config, str(tmp_path), cfg, progress=False)
  assert "validation" in opened and "test" not in opened
  saved = json.loads((tmp_path / "selection.json").read_text())
  assert saved == json.loads(json.dumps(out))
  assert [c["name"] for c in saved["candidates"]] == [
      "anchored_w0.5", "anchored_w2", "symmetric_w0.5", "symmetric_w2"]
  # The choice follows the declared rule, recomputed here from the saved numbers.
  eligible = [c for c in saved["candidates"]
              if c["clean"] >= saved["standard"]["clean"] - 0.10
              and c["attacked"] >= saved["adv"]["attacked"]]
  assert [c["eligible"] for c in saved["candidates"]] == [c in eligible for c in
                                                          saved["candidates"]]
  if eligible:
    best = max(eligible, key=lambda c: c["adversarial_consistency"])
    assert saved["choice"]["name"] == best["name"]
  else:
    assert saved["choice"] is None
  assert "Selection on the validation split" in (tmp_path / "selection.html").read_text()
  # Finished runs and analyses are reused: a second call trains and analyses nothing.
  stamp = (tmp_path / "anchored_w2" / "validation_analysis" / "results.json").stat().st_mtime_ns
  assert selection.select(config, str(tmp_path), cfg, progress=False)["choice"] == out["choice"]
  assert (tmp_path / "anchored_w2" / "validation_analysis" / "results.json").stat(
      ).st_mtime_ns == stamp


def test_the_rule_by_hand():
  standard = {"clean": 0.90, "attacked": 0.05}
  adv = {"clean": 0.85, "attacked": 0.40}
  rows = [{"name": "a", "clean": 0.85, "attacked": 0.45, "adversarial_consistency": 0.70},
          {"name": "b", "clean": 0.79, "attacked": 0.50, "adversarial_consistency": 0.90},
          {"name": "c", "clean": 0.88, "attacked": 0.39, "adversarial_consistency": 0.95},
          {"name": "d", "clean": 0.82, "attacked": 0.41, "adversarial_consistency": 0.75}]
  best = selection.apply_rule(standard, adv, rows, 0.10)
  assert best["name"] == "d"                        # b: clean drop 0.11; c: below adv
  assert [r["eligible"] for r in rows] == [True, False, False, True]
  assert "more than 0.1 below" in rows[1]["reasons"][0] and "below adv" in rows[2]["reasons"][0]
  assert selection.apply_rule(standard, adv, rows[1:3], 0.10) is None


def test_a_bad_grid_is_refused(tiny):
  config = tiny(**{"selection.forms": ("sideways",)})
  with pytest.raises(UserError, match="config.selection needs forms"):
    selection.candidates(config)
