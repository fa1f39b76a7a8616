"""Models side by side, as a paper's table, from what each run already holds.

    comparison = read_comparison(["runs/demo/standard", "runs/demo/adv"])  # reads, never computes
    comparison, page = compare_runs(["runs/demo/standard", "runs/demo/adv"], "runs/compare")

Per run it reads, each when present: DIR/analysis/results.json (accuracy
under the analysis attack, consistency per layer on real, own adversarial,
successful and shared adversarial images with their chance levels),
DIR/robustness.json (each attack's accuracy, AutoAttack's robust accuracy
and its checks against gradient masking), DIR/dissection/results.json
(detectors per concept category) and DIR/explain/results.json (the ROC AUC
of the adversarial-input detector). A run without an analysis is listed with
a note saying which command makes one; a run with neither an analysis nor a
robustness.json has nothing to compare and is a UserError, raised before
anything is written. The schema of the result: interp_jax/compare.py.

Layers are matched by name where every analysed run has the layer. Where
the runs analysed different layers, rows are added by relative depth: the
i-th of a model's n analysed layers (in the analysis's order) sits at depth
i / (n - 1), its last at 1.0 (a lone layer too), and each point of the grid
0, 0.5, 1.0 takes each model's nearest layer, the shallower on a tie. A
depth row that picks one shared name for every run is left out: it repeats a
row matched by name. Every row says how it was matched.

The share of above-chance consistency an attack removes is
reproduction/differences.py's exposure, (real - set) / (real - chance) over
the neurons included in both sets, as the reproduction reports it.
"""

import json
import os
from fractions import Fraction

from interp_jax.errors import UserError
from interp_jax.report import comparison_page, schema
from interp_jax.reproduction import differences

SETS = ("real", *differences.CONTROL_SETS)  # real, adversarial, successful, shared
GRID = (Fraction(0), Fraction(1, 2), Fraction(1))
# Analysis settings that must agree for two runs' consistency to be measured alike.
_SETTINGS = ("attack", "eps", "norm", "steps", "k", "similarity", "num_images",
             "activation", "shared_from", "images_digest")


def relative_depths(num_layers: int) -> list[Fraction]:
  """i / (n - 1) for the i-th of n analysed layers; a lone layer is at depth 1."""
  if num_layers == 1:
    return [Fraction(1)]
  return [Fraction(i, num_layers - 1) for i in range(num_layers)]


def nearest_layer(layers: list[str], depth: Fraction) -> str:
  """The layer whose relative depth is nearest `depth` (the shallower on a tie)."""
  depths = relative_depths(len(layers))
  return layers[min(range(len(layers)), key=lambda i: (abs(depths[i] - depth), i))]


def match_layers(layers: dict) -> list[dict]:
  """Rows of matched layers: {"label", "matched_by", "depth", "layers": {model: layer}}.

  Args:
    layers: {model: its analysed layers in order, or None when not analysed}.
  Returns:
    A row per name every analysed model has ("matched_by": "name", "depth":
    None), in the first analysed model's order; then, unless every model
    analysed exactly those names, a row per point of GRID ("matched_by":
    "relative depth") with each model's nearest layer. A model that was not
    analysed has None for its layer.
  """
  analysed = {m: ls for m, ls in layers.items() if ls}
  if not analysed:
    return []
  first = next(iter(analysed.values()))
  shared = [l for l in first if all(l in ls for ls in analysed.values())]
  rows = [{"label": l, "matched_by": "name", "depth": None,
           "layers": {m: l if ls else None for m, ls in layers.items()}} for l in shared]
  if all(len(ls) == len(shared) for ls in analysed.values()):
    return rows
  for depth in GRID:
    picks = {m: nearest_layer(ls, depth) if ls else None for m, ls in layers.items()}
    if len({picks[m] for m in analysed}) == 1 and picks[next(iter(analysed))] in shared:
      continue  # the same shared layer for every model: already a row by name
    rows.append({"label": f"depth {float(depth):.1f}", "matched_by": "relative depth",
                 "depth": float(depth), "layers": picks})
  return rows


def _read(path: str):
  """The JSON file at path, or None when there is none."""
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read {path} ({type(e).__name__}); rerun the command that "
                    "wrote it") from None


def _analysis(workdir: str):
  import jsonschema
  path = os.path.join(workdir, "analysis", "results.json")
  results = _read(path)
  if results is not None:
    try:
      schema.validate(results)
    except jsonschema.ValidationError as e:  # an older or damaged file
      raise UserError(f"{path} does not follow the analysis schema ({e.message}); rerun "
                      f"python -m interp_jax.analyze --workdir={workdir}") from None
  return results


def _files(workdir: str) -> dict:
  """The run's results files (None where absent); a UserError when it has nothing to compare."""
  if not os.path.isdir(workdir):
    raise UserError(f"{workdir} is not a directory; pass run directories to --runs")
  files = {"analysis": _analysis(workdir),
           "robustness": _read(os.path.join(workdir, "robustness.json")),
           "dissection": _read(os.path.join(workdir, "dissection", "results.json")),
           "explain": _read(os.path.join(workdir, "explain", "results.json"))}
  if files["analysis"] is None and files["robustness"] is None:
    raise UserError(f"{workdir} holds neither analysis/results.json nor robustness.json; "
                    f"run python -m interp_jax.analyze --workdir={workdir} first")
  return files


def _cell(results: dict, layer: str) -> dict:
  """One model's numbers at one layer: each set's mean, chance and count, and the
  share of above-chance consistency each attack set removes."""
  info, order = results["layers"][layer], list(results["layers"])
  sets = {s: {"mean": b["mean"], "chance": b["chance"]["mean"],
              "num_included": b["num_included"]}
          for s in SETS if (b := info["sets"].get(s)) is not None}
  removed = {s: differences.exposure(results, layer, s)
             for s in differences.CONTROL_SETS if s in info["sets"]}
  return {"layer": layer, "depth": float(relative_depths(len(order))[order.index(layer)]),
          "num_neurons": info["num_neurons"], "sets": sets, "removed": removed}


def _robustness(report: dict) -> dict:
  auto = report.get("autoattack")
  if auto is not None:
    auto = {"version": auto["version"], "eps": auto["eps"], "norm": auto["norm"],
            "accuracy": auto["accuracy"],
            "flagged": [c for c, v in auto["checks"].items() if v["flagged"]],
            "checks": {c: {"flagged": v["flagged"], "message": v["message"]}
                       for c, v in auto["checks"].items()}}
  return {"num_images": report.get("num_images"), "split": report.get("split", "test"),
          "clean": report["clean_accuracy"],
          "attacks": {n: {"accuracy": a["accuracy"], "eps": a["eps"], "norm": a["norm"],
                          "steps": a.get("steps")} for n, a in report["attacks"].items()},
          "autoattack": auto}


def _detectors(dissection: dict) -> dict:
  return {"iou_threshold": dissection["settings"]["iou_threshold"],
          "categories": sorted(set(dissection["concepts"]["categories"])),
          "layers": {l: {s: dict(info["sets"][s]["detectors_per_category"])
                         for s in ("real", "adversarial")}
                     for l, info in dissection["layers"].items()}}


def _detection(explain: dict) -> dict:
  return {"layer": explain["layer"],
          "attacks": {a: {"auc": e["auc"], "auc_successful": e["auc_successful"]}
                      for a, e in explain["detection"]["attacks"].items()}}


def _step_notes(steps: dict) -> list[str]:
  """A note when the files of one run come from different checkpoints."""
  known = {f: s for f, s in steps.items() if s is not None}
  if len(set(known.values())) <= 1:
    return []
  return ["its files come from different checkpoints (" + ", ".join(
      f"{f}: step {s}" for f, s in known.items()) + ")"]


def _run(workdir: str, name: str, files: dict) -> dict:
  """One run's entry: what its files hold, and a note where one is missing."""
  results, report = files["analysis"], files["robustness"]
  dissection, explain = files["dissection"], files["explain"]
  about = (results or {}).get("run") or report
  notes = []
  if results is None:
    notes.append(f"not analysed: run `python -m interp_jax.analyze --workdir={workdir}`")
  if report is None or "autoattack" not in report:
    notes.append("no AutoAttack: run `python -m interp_jax.attack --workdir="
                 f"{workdir} --attacks=pgd,autoattack` for its robust accuracy")
  notes += _step_notes({
      "analysis": (results or {}).get("run", {}).get("checkpoint_step"),
      "robustness.json": (report or {}).get("checkpoint_step"),
      "dissection": (dissection or {}).get("run", {}).get("checkpoint_step"),
      "explain": (explain or {}).get("run", {}).get("checkpoint_step")})
  analysis = None
  if results is not None:
    s = results["settings"]
    analysis = {"num_images": s["num_images"], "attack": s["attack"], "eps": s["eps"],
                "norm": s.get("norm", "linf"), "steps": s["steps"], "k": s["k"],
                "accuracy": dict(results["accuracy"]),
                "success_rate": results["attack"]["success_rate"]}
  robustness = _robustness(report) if report is not None else None
  robust = None
  if robustness and robustness["autoattack"]:
    robust = {"accuracy": robustness["autoattack"]["accuracy"], "source": "autoattack"}
  elif analysis:
    robust = {"accuracy": analysis["accuracy"]["adversarial"], "source": "analysis"}
  return {"name": name, "workdir": workdir, "model": about.get("model"),
          "dataset": about.get("dataset"), "checkpoint_step": about.get("checkpoint_step"),
          "notes": notes, "analysis": analysis, "robustness": robustness, "robust": robust,
          "detectors": _detectors(dissection) if dissection else None,
          "detection": _detection(explain) if explain else None}


def _names(workdirs: list[str]) -> list[str]:
  """Each run's name: its folder's name, or the path as given where two share one."""
  base = [os.path.basename(os.path.normpath(w)) for w in workdirs]
  return [b if base.count(b) == 1 else w for b, w in zip(base, workdirs)]


def _differ_notes(runs: list[dict], analyses: dict) -> list[str]:
  """Where the runs were measured differently, so a column compares unlike numbers."""
  notes = []
  for key in _SETTINGS:
    values = {n: r["settings"].get(key) for n, r in analyses.items()}
    if len({json.dumps(v) for v in values.values()}) > 1:
      notes.append(f"the analyses differ in {key} (" + ", ".join(
          f"{n}: {v}" for n, v in values.items()) + ")")
  datasets = {r["name"]: r["dataset"] for r in runs}
  if len(set(datasets.values())) > 1:
    notes.append("the runs use different data sets (" + ", ".join(
        f"{n}: {d}" for n, d in datasets.items()) + ")")
  autos = {r["name"]: (r["robustness"]["num_images"], r["robustness"]["autoattack"]["eps"],
                       r["robustness"]["autoattack"]["version"])
           for r in runs if r["robustness"] and r["robustness"]["autoattack"]}
  if len(set(autos.values())) > 1:
    notes.append("AutoAttack ran with different images, eps or version (" + ", ".join(
        f"{n}: {v[0]} images, eps {v[1]:.4g}, {v[2]}" for n, v in autos.items()) + ")")
  return notes


def _figure(runs: list[dict], analyses: dict):
  """The plotted points: robust accuracy against adversarial consistency at each
  model's last analysed layer (depth 1.0, where class-selective units live)."""
  points = []
  for r in runs:
    results = analyses.get(r["name"])
    if results is None or r["robust"] is None:
      continue
    layer = list(results["layers"])[-1]
    points.append({"name": r["name"], "layer": layer,
                   "consistency": results["layers"][layer]["sets"]["adversarial"]["mean"],
                   "robust_accuracy": r["robust"]["accuracy"], "source": r["robust"]["source"]})
  return {"file": comparison_page.FIGURE, "points": points} if points else None


def read_comparison(workdirs: list[str]) -> dict:
  """Reads every run's files into the comparison (schema: interp_jax/compare.py).

  Raises UserError for fewer than two runs, a run given twice, a path that is
  not a directory, a run with neither an analysis nor a robustness.json, or
  a file that cannot be read.
  """
  if len(workdirs) < 2:
    raise UserError(f"--runs needs at least two run directories separated by commas, got "
                    f"{len(workdirs)}")
  real = [os.path.realpath(w) for w in workdirs]
  for i, w in enumerate(real):
    if w in real[:i]:
      raise UserError(f"{workdirs[i]} is given twice in --runs; name each run once")
  names = _names(workdirs)
  files = {n: _files(w) for w, n in zip(workdirs, names)}
  runs = []
  for w, n in zip(workdirs, names):
    try:
      runs.append(_run(w, n, files[n]))
    except (KeyError, TypeError) as e:  # a file of another version, or not ours
      raise UserError(f"a results file in {w} lacks the field {e}; rerun the command that "
                      "wrote it") from None
  analyses = {n: f["analysis"] for n, f in files.items() if f["analysis"] is not None}
  rows = match_layers({n: list(analyses[n]["layers"]) if n in analyses else None
                       for n in names})
  for row in rows:
    row["models"] = {n: _cell(analyses[n], l) if l else None
                     for n, l in row.pop("layers").items()}
  present = {s for r in analyses.values() for info in r["layers"].values() for s in info["sets"]}
  return {"runs": runs, "sets": [s for s in SETS if s in present], "rows": rows,
          "figure": _figure(runs, analyses), "notes": _differ_notes(runs, analyses)}


def compare_runs(workdirs: list[str], out_dir: str) -> tuple[dict, str]:
  """Reads the runs and writes out_dir/index.html, comparison.json and the figure;
  returns (the comparison, the page's path). Nothing is written on a UserError."""
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise UserError(f"--out={out_dir} is a file; name a folder for the page")
  comparison = read_comparison(workdirs)
  return comparison, comparison_page.write(comparison, out_dir)
