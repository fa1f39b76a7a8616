"""Selection of the consistent loss on the validation split, by a rule declared in advance.

    out = select(config, "runs/selection")   # config.analysis, config.criteria.protocol
    out.choice -> Choice(name, form, weight, layers), or None
    out.candidates[0].eligible, out.candidates[0].reasons

Candidates are the grid of `config.selection` (lambda values x the anchored and
the paper's symmetric form x optionally the layers). Each is trained like
adv_consistent; standard and adv are trained beside them. Every run logs its
training evaluation on the validation split and is analysed on it
(`analysis.split = "validation"`): nothing here reads the test split. Each
run is trained at `config.selection.seeds` seeds (config.seed, config.seed + 1,
...; 0 = the protocol's: 1 under protocol 1, 2 under protocol 2, which refuses
fewer); one seed in DIR/NAME, more in DIR/seedS/NAME. Finished runs and
analyses are reused. Writes DIR/selection.json (a SelectionResult's JSON) and
DIR/selection.html.

The rule with one seed (protocol 1): among candidates whose validation clean
accuracy is at most `selection.max_clean_drop` below standard's and whose
accuracy under the analysis attack is not below adv's, the highest consistency
on adversarial validation images at the decisive layer.

The rule with seeds (protocol 2), on differences taken seed by seed, each with
its standard error SE = sample sd / sqrt(seeds):
- a candidate is ruled out only by a violation larger than its noise: when
  its clean-accuracy drop below standard's has mean - SE > max_clean_drop, or
  its accuracy under the analysis attack below adv's has mean - SE > 0, or
  a seed has no neuron included in its adversarial set;
- among the eligible, the best has the highest mean adversarial consistency;
  a candidate whose gap to the best (best - candidate per seed) has mean <= SE
  is tied with it (the best itself included);
- of the tied, the smallest lambda wins (the least change to adversarial
  training that does as well within the noise), then the higher mean.
"""

from __future__ import annotations

import copy
import html
import json
import os
from typing import Any, Optional

from interp_jax.default_config import select_variant
from interp_jax.errors import UserError
from interp_jax.records import Record, absent_if_none, as_saved, record
from interp_jax.reproduction.selection_rule import apply_rule, apply_seeded_rule, mean_se

FORMS = {"anchored": True, "symmetric": False}   # form -> consistency.anchor_clean


@record
class MeanSE(Record):
  """The mean of per-seed values and its standard error (sample sd / sqrt(seeds))."""
  mean: float
  se: float


@record
class Measured(Record):
  """A run's validation numbers: one seed's (with where it ran), or with seeds the
  means over them (with each seed's)."""
  clean: float
  attacked: float                                 # accuracy under the analysis attack
  adversarial_consistency: Optional[float]        # None: no neuron included
  workdir: Optional[str] = absent_if_none()
  real_consistency: Optional[float] = absent_if_none()
  included: Optional[int] = absent_if_none()
  per_seed: Optional[tuple[Measured, ...]] = absent_if_none()


@record
class Choice(Record):
  """A consistent loss of the grid."""
  name: str
  form: str           # a key of FORMS
  weight: float       # lambda
  layers: tuple[str, ...]


@record
class Candidate(Record):
  """A grid point with its numbers and the rule's verdict (selection_rule.py)."""
  name: str
  form: str
  weight: float
  layers: tuple[str, ...]
  clean: float
  attacked: float
  adversarial_consistency: Optional[float]
  eligible: bool
  reasons: tuple[str, ...]
  # One seed: the run's own.
  workdir: Optional[str] = absent_if_none()
  real_consistency: Optional[float] = absent_if_none()
  included: Optional[int] = absent_if_none()
  # Seeds: each seed's run, and the per-seed differences the rule reads.
  runs: Optional[tuple[Measured, ...]] = absent_if_none()
  clean_drop: Optional[MeanSE] = absent_if_none()      # standard - candidate, clean
  attack_deficit: Optional[MeanSE] = absent_if_none()  # adv - candidate, under attack
  tied: Optional[bool] = absent_if_none()              # with the best, within one SE
  gap: Optional[MeanSE] = absent_if_none()             # best - candidate, consistency


@record
class SelectionResult(Record):
  """DIR/selection.json."""
  layer: str
  split: str
  grid: dict[str, Any]          # config.selection
  seeds: tuple[int, ...]
  rule: str
  analysis: dict[str, Any]      # the validation analysis's settings
  standard: Measured
  adv: Measured
  candidates: tuple[Candidate, ...]
  choice: Optional[Choice]      # None: no candidate meets the rule


def candidates(config) -> list[Choice]:
  """The grid, in a fixed order: every layer set x form x lambda."""
  sel = config.selection
  unknown = [f for f in sel.forms if f not in FORMS]
  if unknown or not sel.forms or not sel.weights:
    raise UserError(f"config.selection needs forms from {sorted(FORMS)} and at least one "
                    f"weight; got forms {tuple(sel.forms)}, weights {tuple(sel.weights)}")
  if any(w <= 0 for w in sel.weights):
    raise UserError(f"config.selection.weights must be positive, got {tuple(sel.weights)}")
  layer_sets = [tuple(l) if isinstance(l, (tuple, list)) else (l,) for l in sel.layers] or [
      tuple(config.consistency.layers)]
  return [Choice(f"{form}_w{weight:g}" + (f"_{'+'.join(layers)}" if sel.layers else ""),
                 form, float(weight), tuple(layers))
          for layers in layer_sets for form in sel.forms for weight in sel.weights]


def with_loss(config, cand: Choice):
  """A copy of config whose consistent loss is the candidate's (form, weight, layers)."""
  c = copy.deepcopy(config)
  c.unlock()
  c.consistency.weight = cand.weight
  c.consistency.anchor_clean = FORMS[cand.form]
  c.consistency.layers = tuple(cand.layers)
  return c


def candidate_config(config, cand: Choice):
  """config trained as adv_consistent with the candidate's loss, evaluated on validation."""
  c = select_variant(with_loss(config, cand), "adv_consistent")
  c.eval_split = "validation"
  return c


def _validation_cfg(analysis_cfg):
  cfg = copy.deepcopy(analysis_cfg)
  cfg.unlock()
  cfg.split = "validation"
  cfg.test_share = 0.0  # the whole validation split (or num_images of it)
  cfg.eps_curve = ()    # the rule reads one eps; the curve is the report's
  return cfg


def selection_seeds(config, protocol: int = 1) -> int:
  """Seeds per candidate: config.selection.seeds, or the protocol's (1, or 2 under 2)."""
  n = config.selection.get("seeds", 0)
  if n != int(n) or n < 0:
    raise UserError(f"config.selection.seeds must be a whole number >= 0, got {n}")
  n = int(n) or (2 if protocol == 2 else 1)
  if protocol == 2 and n < 2:
    raise UserError("protocol 2 selects with at least two seeds per candidate; set "
                    f"config.selection.seeds >= 2 (or 0), got {n}")
  return n


def _measure(config, workdir, cfg, layer, progress) -> dict:
  """Trains (or reuses) one run and reads what the rule needs on validation images."""
  from interp_jax import analysis, report
  from interp_jax.analysis.results import AnalysisResults
  from interp_jax.training import trainer
  from interp_jax.training.restore import load_trained
  from interp_jax.reproduction.reuse import same_request
  trainer.train_and_evaluate(config, workdir)
  run = load_trained(workdir)
  out_dir = os.path.join(workdir, "validation_analysis")
  path = os.path.join(out_dir, "results.json")
  requested = as_saved(cfg.to_dict())
  results = AnalysisResults.saved(path)
  if results is not None and not (same_request(results.settings.get("requested"), requested)
                                  and results.run.checkpoint_step == run.step):
    results = None
  if results is None:
    results, grids = analysis.analyze(run, cfg, progress=progress)
    report.save_analysis(results, grids, out_dir)
  sets = results.layers[layer].sets
  return {"workdir": workdir, "clean": results.accuracy.clean,
          "attacked": results.accuracy.adversarial,
          "adversarial_consistency": sets["adversarial"].mean,
          "real_consistency": sets["real"].mean,
          "included": sets["adversarial"].num_included}


def _mean_run(runs: list[dict]) -> dict:
  """A run's numbers as means over its seeds, with the seeds' own."""
  cons = [r["adversarial_consistency"] for r in runs]
  return {"clean": mean_se([r["clean"] for r in runs])["mean"],
          "attacked": mean_se([r["attacked"] for r in runs])["mean"],
          "adversarial_consistency": None if None in cons else mean_se(cons)["mean"],
          "per_seed": runs}


def _rule_text(seeds: int, max_clean_drop: float, layer: str) -> str:
  if seeds == 1:
    return ("among candidates whose validation clean accuracy is at most "
            f"{max_clean_drop:g} below standard's and whose accuracy under the analysis "
            "attack is not below adv's, the highest consistency on adversarial validation "
            f"images at {layer}")
  return (f"over {seeds} seeds per run, with SE = sd / sqrt({seeds}) of the per-seed "
          "differences: a candidate is ruled out when its clean-accuracy drop below "
          f"standard's has mean - SE > {max_clean_drop:g} or its accuracy under the analysis "
          "attack below adv's has mean - SE > 0; among the others, those whose gap to the "
          f"highest mean consistency on adversarial validation images at {layer} has mean "
          "<= SE are tied, and the smallest lambda of them wins (then the higher mean)")


def select(config, workdir: str, analysis_cfg=None, progress: bool = True,
           protocol: int | None = None) -> SelectionResult:
  """Runs the grid of config.selection on the validation split; see the module docstring.
  analysis_cfg and protocol default to config.analysis and config.criteria.protocol."""
  from interp_jax import analysis, data, models
  from interp_jax.default_config import section
  analysis_cfg = analysis_cfg or section(config, "analysis")
  protocol = section(config, "criteria").protocol if protocol is None else protocol
  from interp_jax.reproduction.reuse import check_reusable
  from interp_jax.training.trainer import check_config
  grid = candidates(config)
  seeds = selection_seeds(config, protocol)
  meta = data.describe(config.dataset)
  if "validation" not in meta.splits:
    raise UserError(f"data set {config.dataset.name!r} has no validation split; set "
                    "config.dataset.holdout_fraction > 0 to hold one out of train")
  cfg = _validation_cfg(analysis_cfg)
  layer_names = models.create(config.model.name, 1, **config.model.options).layer_names
  analysis.check_for(cfg, config, meta, layer_names)
  layer = analysis.decisive_layer(config, layer_names)
  runs, dirs = {}, {}
  for i in range(seeds):
    seed = config.seed + i
    base = os.path.join(workdir, f"seed{seed}") if seeds > 1 else workdir
    for name in ("standard", "adv"):
      c = select_variant(copy.deepcopy(config), name)
      c.unlock()
      c.eval_split = "validation"
      runs[(name, i)] = c
    for cand in grid:
      runs[(cand.name, i)] = candidate_config(config, cand)
    for name, j in list(runs):
      if j == i:
        runs[(name, i)].seed = seed
        dirs[(name, i)] = os.path.join(base, name)
  for key, c in runs.items():  # every config and workdir checked before any compute
    check_config(c)
    check_reusable(c, dirs[key])
  measured = {key: _measure(c, dirs[key], cfg, layer, progress) for key, c in runs.items()}
  per_seed = lambda name: [measured[(name, i)] for i in range(seeds)]
  if seeds == 1:
    standard, adv = measured[("standard", 0)], measured[("adv", 0)]
    rows = [{**cand.to_json(), **measured[(cand.name, 0)]} for cand in grid]
    best = apply_rule(standard, adv, rows, config.selection.max_clean_drop)
  else:
    standard, adv = _mean_run(per_seed("standard")), _mean_run(per_seed("adv"))
    rows = [{**cand.to_json(), "runs": per_seed(cand.name)} for cand in grid]
    best = apply_seeded_rule(standard["per_seed"], adv["per_seed"], rows,
                             config.selection.max_clean_drop)
  # The rules mark plain dicts (selection_rule.py); the result is typed as it is
  # saved, its config sections as their JSON reads back.
  out = SelectionResult.from_json(as_saved({
      "layer": layer, "split": "validation", "grid": config.selection.to_dict(),
      "seeds": [config.seed + i for i in range(seeds)],
      "rule": _rule_text(seeds, config.selection.max_clean_drop, layer),
      "analysis": cfg.to_dict(), "standard": standard, "adv": adv, "candidates": rows,
      "choice": None if best is None else {
          k: best[k] for k in ("name", "form", "weight", "layers")}}), "selection")
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "selection.json"), "w") as f:
    json.dump(out.to_json(), f, indent=2)
  with open(os.path.join(workdir, "selection.html"), "w") as f:
    f.write(page(out))
  return out


def _status(c: Candidate) -> str:
  if not c.eligible:
    return html.escape("; ".join(c.reasons))
  if c.gap is None:
    return "eligible"
  return (f"eligible; gap to the best {c.gap.mean:.3f} +/- {c.gap.se:.3f} (SE): "
          + ("tied" if c.tied else "not tied"))


def page(selection: SelectionResult) -> str:
  """The selection as an HTML section: every candidate with its validation numbers."""
  def num(v):
    return "n/a" if v is None else f"{v:.3f}"

  rows = "".join(
      f"<tr><td>{html.escape(name)}</td><td>{num(m.clean)}</td><td>{num(m.attacked)}</td>"
      f"<td>{num(m.adversarial_consistency)}</td><td></td></tr>"
      for name, m in (("standard", selection.standard), ("adv", selection.adv)))
  chosen = selection.choice.name if selection.choice else None
  bold = ' style="font-weight:bold"'
  rows += "".join(
      f"<tr{bold if c.name == chosen else ''}>"
      f"<td>{html.escape(c.name)}</td><td>{num(c.clean)}</td><td>{num(c.attacked)}</td>"
      f"<td>{num(c.adversarial_consistency)}</td>"
      f"<td>{_status(c)}</td></tr>" for c in selection.candidates)
  verdict = (f"chosen: <b>{html.escape(chosen)}</b>" if chosen else
             "<b>no candidate meets the rule</b>: the reproduction keeps the config's setting")
  return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Selection</title>"
          "<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 9px}</style>"
          f"</head><body><h2>Selection on the validation split</h2><p>Seeds "
          f"{list(selection.seeds)}; numbers are means over them. Rule, declared in the "
          f"config before any result: {html.escape(selection.rule)}. {verdict}.</p>"
          "<table><tr><th>run</th><th>clean</th><th>under attack</th>"
          f"<th>adversarial consistency ({html.escape(selection.layer)})</th><th>rule</th>"
          f"</tr>{rows}</table></body></html>")
