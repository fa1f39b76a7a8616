"""Selection of the consistent loss on the validation split, by a rule declared in advance.

    choice = select(config, "runs/demo", analysis.default_config())
    choice["choice"] -> {"name", "form", "weight", "layers", ...} or None

Candidates are the grid of `config.selection` (lambda values x the anchored and
the paper's symmetric form x optionally the layers). Each is trained like
adv_consistent; standard and adv are trained once beside them. Every run
logs its training evaluation on the validation split and is analysed on it
(`analysis.split = "validation"`): nothing here reads the test split. The
rule: among candidates whose validation clean accuracy is at most
`selection.max_clean_drop` below standard's and whose accuracy under the
analysis attack is not below adv's, the highest consistency on adversarial
validation images at the decisive layer. Finished runs and analyses are
reused. Writes DIR/selection.json and DIR/selection.html.
"""

import copy
import html
import json
import os

from interp_jax.default_config import select_variant
from interp_jax.errors import UserError

FORMS = {"anchored": True, "symmetric": False}   # form -> consistency.anchor_clean


def candidates(config) -> list[dict]:
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
  return [{"name": f"{form}_w{weight:g}" + (f"_{'+'.join(layers)}" if sel.layers else ""),
           "form": form, "weight": float(weight), "layers": list(layers)}
          for layers in layer_sets for form in sel.forms for weight in sel.weights]


def with_loss(config, cand: dict):
  """A copy of config whose consistent loss is the candidate's (form, weight, layers)."""
  c = copy.deepcopy(config)
  c.unlock()
  c.consistency.weight = cand["weight"]
  c.consistency.anchor_clean = FORMS[cand["form"]]
  c.consistency.layers = tuple(cand["layers"])
  return c


def candidate_config(config, cand: dict):
  """config trained as adv_consistent with the candidate's loss, evaluated on validation."""
  c = select_variant(with_loss(config, cand), "adv_consistent")
  c.eval_split = "validation"
  return c


def _validation_cfg(analysis_cfg):
  cfg = copy.deepcopy(analysis_cfg)
  cfg.unlock()
  cfg.split = "validation"
  cfg.eps_curve = ()   # the rule reads one eps; the curve is the report's
  return cfg


def _measure(config, workdir, cfg, layer, progress) -> dict:
  """Trains (or reuses) one run and reads what the rule needs on validation images."""
  from interp_jax import analysis, report
  from interp_jax.training import trainer
  from interp_jax.training.restore import load_trained
  trainer.train_and_evaluate(config, workdir)
  run = load_trained(workdir)
  out_dir = os.path.join(workdir, "validation_analysis")
  path = os.path.join(out_dir, "results.json")
  requested = json.loads(json.dumps(cfg.to_dict()))
  results = None
  if os.path.exists(path):
    with open(path) as f:
      saved = json.load(f)
    if (saved["settings"].get("requested") == requested
        and saved["run"]["checkpoint_step"] == run.step):
      results = saved
  if results is None:
    results, grids = analysis.analyze(run, cfg, progress=progress)
    report.save_analysis(results, grids, out_dir)
  sets = results["layers"][layer]["sets"]
  return {"workdir": workdir, "clean": results["accuracy"]["clean"],
          "attacked": results["accuracy"]["adversarial"],
          "adversarial_consistency": sets["adversarial"]["mean"],
          "real_consistency": sets["real"]["mean"],
          "included": sets["adversarial"]["num_included"]}


def apply_rule(standard: dict, adv: dict, measured: list[dict], max_clean_drop: float):
  """Marks each candidate eligible or not (with the reason); returns the winner or None."""
  best = None
  for m in measured:
    reasons = []
    if m["clean"] < standard["clean"] - max_clean_drop:
      reasons.append(f"clean accuracy {m['clean']:.3f} is more than {max_clean_drop:g} below "
                     f"standard's {standard['clean']:.3f}")
    if m["attacked"] < adv["attacked"]:
      reasons.append(f"accuracy under attack {m['attacked']:.3f} is below adv's "
                     f"{adv['attacked']:.3f}")
    if m["adversarial_consistency"] is None:
      reasons.append("no neuron is included in its adversarial set")
    m["eligible"], m["reasons"] = not reasons, reasons
    if not reasons and (best is None
                        or m["adversarial_consistency"] > best["adversarial_consistency"]):
      best = m
  return best


def select(config, workdir: str, analysis_cfg, progress: bool = True) -> dict:
  """Runs the grid of config.selection on the validation split; see the module docstring."""
  from interp_jax import analysis, data, models
  from interp_jax.reproduction.reuse import check_reusable
  from interp_jax.training.trainer import check_config
  grid = candidates(config)
  meta = data.describe(config.dataset)
  if "validation" not in meta.splits:
    raise UserError(f"data set {config.dataset.name!r} has no validation split; set "
                    "config.dataset.holdout_fraction > 0 to hold one out of train")
  cfg = _validation_cfg(analysis_cfg)
  layer_names = models.create(config.model.name, 1, **config.model.options).layer_names
  analysis.check_for(cfg, config, meta, layer_names)
  layer = analysis.decisive_layer(config, layer_names)
  runs = {}
  for name in ("standard", "adv"):
    c = select_variant(copy.deepcopy(config), name)
    c.unlock()
    c.eval_split = "validation"
    runs[name] = c
  for cand in grid:
    runs[cand["name"]] = candidate_config(config, cand)
  for name, c in runs.items():  # every config and workdir checked before any compute
    check_config(c)
    check_reusable(c, os.path.join(workdir, name))
  measured = {name: _measure(c, os.path.join(workdir, name), cfg, layer, progress)
              for name, c in runs.items()}
  rows = [{**cand, **measured[cand["name"]]} for cand in grid]
  best = apply_rule(measured["standard"], measured["adv"], rows,
                    config.selection.max_clean_drop)
  out = {"layer": layer, "split": "validation", "grid": config.selection.to_dict(),
         "rule": ("among candidates whose validation clean accuracy is at most "
                  f"{config.selection.max_clean_drop:g} below standard's and whose accuracy "
                  "under the analysis attack is not below adv's, the highest consistency on "
                  f"adversarial validation images at {layer}"),
         "analysis": cfg.to_dict(), "standard": measured["standard"], "adv": measured["adv"],
         "candidates": rows, "choice": None if best is None else {
             k: best[k] for k in ("name", "form", "weight", "layers")}}
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "selection.json"), "w") as f:
    json.dump(out, f, indent=2)
  with open(os.path.join(workdir, "selection.html"), "w") as f:
    f.write(page(out))
  return out


def page(selection: dict) -> str:
  """The selection as an HTML section: every candidate with its validation numbers."""
  def num(v):
    return "n/a" if v is None else f"{v:.3f}"

  rows = "".join(
      f"<tr><td>{html.escape(name)}</td><td>{num(m['clean'])}</td><td>{num(m['attacked'])}</td>"
      f"<td>{num(m['adversarial_consistency'])}</td><td></td></tr>"
      for name, m in (("standard", selection["standard"]), ("adv", selection["adv"])))
  chosen = (selection["choice"] or {}).get("name")
  bold = ' style="font-weight:bold"'
  rows += "".join(
      f"<tr{bold if c['name'] == chosen else ''}>"
      f"<td>{html.escape(c['name'])}</td><td>{num(c['clean'])}</td><td>{num(c['attacked'])}</td>"
      f"<td>{num(c['adversarial_consistency'])}</td>"
      f"<td>{'eligible' if c['eligible'] else html.escape('; '.join(c['reasons']))}</td></tr>"
      for c in selection["candidates"])
  verdict = (f"chosen: <b>{html.escape(chosen)}</b>" if chosen else
             "<b>no candidate meets the rule</b>: the reproduction keeps the config's setting")
  return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Selection</title>"
          "<style>body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 9px}</style>"
          f"</head><body><h2>Selection on the validation split</h2><p>Rule, declared in the "
          f"config before any result: {html.escape(selection['rule'])}. {verdict}.</p>"
          "<table><tr><th>run</th><th>clean</th><th>under attack</th>"
          f"<th>adversarial consistency ({html.escape(selection['layer'])})</th><th>rule</th>"
          f"</tr>{rows}</table></body></html>")
