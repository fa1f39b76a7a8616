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
  saved = selection.SelectionResult.load(str(tmp_path / "selection.json"))
  assert saved == out
  assert [c.name for c in saved.candidates] == [
      "anchored_w0.5", "anchored_w2", "symmetric_w0.5", "symmetric_w2"]
  # Each candidate's numbers are its run's validation analysis.
  for c in saved.candidates:
    own = json.loads((tmp_path / c.name / "validation_analysis" / "results.json").read_text())
    assert (c.clean, c.adversarial_consistency) == (
        own["accuracy"]["clean"], own["layers"]["fc1"]["sets"]["adversarial"]["mean"])
  # The choice follows the declared rule, recomputed here from the saved numbers.
  eligible = [c for c in saved.candidates
              if c.clean >= saved.standard.clean - 0.10 and c.attacked >= saved.adv.attacked]
  assert [c.eligible for c in saved.candidates] == [c in eligible for c in saved.candidates]
  if eligible:
    best = max(eligible, key=lambda c: c.adversarial_consistency)
    assert saved.choice.name == best.name
    assert saved.choice == selection.Choice(best.name, best.form, best.weight, best.layers)
  else:
    assert saved.choice is None
  assert "Selection on the validation split" in (tmp_path / "selection.html").read_text()
  # Finished runs and analyses are reused: a second call trains and analyses nothing.
  stamp = (tmp_path / "anchored_w2" / "validation_analysis" / "results.json").stat().st_mtime_ns
  assert selection.select(config, str(tmp_path), cfg, progress=False).choice == out.choice
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


def _runs(clean, attacked, consistency=(0.5, 0.5)):
  return [{"clean": c, "attacked": a, "adversarial_consistency": k}
          for c, a, k in zip(clean, attacked, consistency)]


def test_the_seeded_rule_by_hand():
  """Two seeds per run; SE = sd / sqrt(2) = |x1 - x2| / 2 of the per-seed differences."""
  standard = _runs((0.90, 0.90), (0.05, 0.05))
  adv = _runs((0.85, 0.85), (0.40, 0.40))
  rows = [
      # best mean consistency, 0.79
      {"name": "A", "weight": 4.0, "runs": _runs((0.86, 0.86), (0.45, 0.45), (0.80, 0.78))},
      # clean drop (0.14, 0.08): mean 0.11 > 0.10, but mean - SE = 0.11 - 0.03 = 0.08:
      # eligible; gap to A (0.03, -0.01): mean 0.01 <= SE 0.02: tied
      {"name": "B", "weight": 1.0, "runs": _runs((0.76, 0.82), (0.41, 0.43), (0.77, 0.79))},
      # clean drop (0.16, 0.14): mean - SE = 0.15 - 0.01 = 0.14 > 0.10: ruled out
      {"name": "C", "weight": 0.5, "runs": _runs((0.74, 0.76), (0.50, 0.50), (0.90, 0.90))},
      # below adv under attack by (0.04, 0.02): mean - SE = 0.03 - 0.01 > 0: ruled out
      {"name": "D", "weight": 2.0, "runs": _runs((0.86, 0.86), (0.36, 0.38), (0.85, 0.85))},
      # below adv by (0.05, -0.03): mean 0.01 > 0, but mean - SE = 0.01 - 0.04 < 0:
      # eligible; gap (0.04, -0.02): mean 0.01 <= SE 0.03: tied
      {"name": "E", "weight": 2.0, "runs": _runs((0.86, 0.86), (0.35, 0.43), (0.76, 0.80))},
      # gap (0.10, 0.08): mean 0.09 > SE 0.01: not tied
      {"name": "F", "weight": 1.0, "runs": _runs((0.86, 0.86), (0.45, 0.45), (0.70, 0.70))},
      # gap (0.025, -0.015): mean 0.005 <= SE 0.02: tied, lambda 1 like B, higher mean
      {"name": "G", "weight": 1.0, "runs": _runs((0.86, 0.86), (0.45, 0.45), (0.775, 0.795))},
  ]
  best = selection.apply_seeded_rule(standard, adv, rows, 0.10)
  assert [r["eligible"] for r in rows] == [True, True, False, False, True, True, True]
  assert [r["tied"] for r in rows] == [True, True, False, False, True, False, True]
  # Of the tied (A, B, E, G), the smallest lambda (B, G), then the higher mean (G).
  assert best["name"] == "G"
  b = rows[1]
  assert b["clean_drop"] == pytest.approx({"mean": 0.11, "se": 0.03})
  assert b["gap"] == pytest.approx({"mean": 0.01, "se": 0.02})
  assert b["clean"] == pytest.approx(0.79) and b["adversarial_consistency"] == pytest.approx(0.78)
  assert "clean accuracy" in rows[2]["reasons"][0] and "by over one SE" in rows[2]["reasons"][0]
  assert "under attack" in rows[3]["reasons"][0]
  # The one-seed rule, given the same means, would have ruled B (clean drop 0.11) and E
  # (below adv on the mean) out.
  means = [{"name": r["name"], "clean": r["clean"], "attacked": r["attacked"],
            "adversarial_consistency": r["adversarial_consistency"]} for r in rows]
  selection.apply_rule({"clean": 0.90, "attacked": 0.05}, {"clean": 0.85, "attacked": 0.40},
                       means, 0.10)
  assert [m["eligible"] for m in means][1] is False and means[4]["eligible"] is False
  # A seed with no neuron in its adversarial set rules the candidate out; none left: None.
  holes = [{"name": "H", "weight": 1.0, "runs": _runs((0.86, 0.86), (0.45, 0.45), (0.8, None))}]
  assert selection.apply_seeded_rule(standard, adv, holes, 0.10) is None
  assert "no neuron is included" in holes[0]["reasons"][0]


def test_protocol_2_selects_with_at_least_two_seeds():
  from interp_jax.default_config import base_config
  config = base_config()
  assert selection.selection_seeds(config, protocol=1) == 1
  assert selection.selection_seeds(config, protocol=2) == 2
  config.selection.seeds = 1
  with pytest.raises(UserError, match="at least two seeds per candidate"):
    selection.selection_seeds(config, protocol=2)
  config.selection.seeds = 3
  assert selection.selection_seeds(config, protocol=2) == 3
