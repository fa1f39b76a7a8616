"""Models side by side, as a paper's table, from what each run already holds.

    comparison = read_comparison(["runs/demo/standard", "runs/demo/adv"])  # reads, never computes
    comparison, page = compare_runs(["runs/demo/standard", "runs/demo/adv"], "runs/compare")

The comparison is a Comparison (comparison_results.py documents its fields,
which are comparison.json's). Per run it reads, each when present: DIR/analysis/results.json (accuracy
under the analysis attack, consistency per layer on real, own adversarial,
successful and shared adversarial images with their chance levels),
DIR/robustness.json (each attack's accuracy, AutoAttack's robust accuracy
and its checks against gradient masking), DIR/dissection/results.json
(detectors per concept category), DIR/explain/results.json (the ROC AUC
of the adversarial-input detector) and DIR/import.json (the architecture and
file of an imported network). A run without an analysis is listed with
a note saying which command makes one; a run with neither an analysis nor a
robustness.json has nothing to compare and is a UserError, raised before
anything is written.

Layers are matched by name where the analysed runs are of one architecture
(the registry's model name): a row per layer every run analysed (a note
names the layers some run analysed beyond those). Across architectures
every row is matched by relative depth, since a name says where a layer
sits only within its own architecture (a PreActResNet-18's layer3 is the
third of its four stages, a WideResNet's layer3 its last). The i-th of a
model's n analysed layers (in the analysis's order) sits at depth
i / (n - 1), its last at 1.0 (a lone layer too; the penultimate layer when
the logits are not analysed), and the rows sit at the depths of the run
with the fewest analysed layers, each run taking its nearest layer (the
shallower on a tie): that run shows every layer it analysed, and no run's
layer fills two rows. Every row says how it was matched.

The share of above-chance consistency an attack removes is
reproduction/differences.py's exposure, (real - set) / (real - chance) over
the neurons included in both sets, as the reproduction reports it. It
divides by the real consistency's excess over chance, so where that excess
is within the chance level's own spread (its std over random k-subsets of
the set, which the analysis stores beside the chance mean) the share is
noise over noise, and it is left n/a with the reason ("near chance"), as it
is where no neuron is in both sets or the real set has no chance level.
"""

import json
import os
from fractions import Fraction

from interp_jax.analysis.results import (AnalysisResults, DissectionResults, RobustnessReport,
                                         TracingResults)
from interp_jax.errors import UserError
from interp_jax.report import comparison_page, schema
from interp_jax.reproduction import differences
from interp_jax.reproduction.comparison_results import (
    AttackResult, AutoAttackResult, Cell, ComparedRun, Comparison, Detectors, Figure,
    NotApplicable, Point, Robust, Row, RunAnalysis, RunRobustness, SetCell)
from interp_jax.reproduction.summary import DetectionSummary
from interp_jax.training.imported import Imported

SETS = ("real", *differences.CONTROL_SETS)  # real, adversarial, successful, shared
# Analysis settings that must agree for two runs' consistency to be measured alike.
_SETTINGS = ("attack", "eps", "norm", "steps", "k", "similarity", "num_images",
             "activation", "shared_from", "images_digest")


def relative_depths(num_layers: int) -> list[Fraction]:
  """i / (n - 1) for the i-th of n analysed layers; a lone layer is at depth 1."""
  if num_layers == 1:
    return [Fraction(1)]
  return [Fraction(i, num_layers - 1) for i in range(num_layers)]


def analysed_layers(results) -> list[str]:
  """An analysis's layers from input to output: settings["layers"], the order the analysis
  took them in (results.json's layers are sorted by name: stem after pool)."""
  return list(results.settings["layers"])


def nearest_layer(layers: list[str], depth: Fraction) -> str:
  """The layer whose relative depth is nearest `depth` (the shallower on a tie)."""
  depths = relative_depths(len(layers))
  return layers[min(range(len(layers)), key=lambda i: (abs(depths[i] - depth), i))]


def match_layers(layers: dict, models: dict | None = None) -> list[dict]:
  """Rows of matched layers: {"label", "matched_by", "depth", "layers": {run: layer}}.

  Args:
    layers: {run: its analysed layers in order, or None when not analysed}.
    models: {run: its architecture, the registry's model name}; None: one architecture.
  Returns:
    When the analysed runs are of one architecture, a row per name every one of them
    analysed ("matched_by": "name", "depth": None), in the first's order. Across
    architectures, a row per relative depth of the run with the fewest analysed layers
    ("matched_by": "relative depth", labelled "depth 0.33"), with each run's nearest
    layer. A run that was not analysed has None for its layer.
  """
  analysed = {m: ls for m, ls in layers.items() if ls}
  if not analysed:
    return []
  if models is None or len({models[m] for m in analysed}) == 1:
    first = next(iter(analysed.values()))
    return [{"label": l, "matched_by": "name", "depth": None,
             "layers": {m: l if ls else None for m, ls in layers.items()}}
            for l in first if all(l in ls for ls in analysed.values())]
  fewest = min(analysed.values(), key=len)
  return [{"label": f"depth {float(d):.2f}", "matched_by": "relative depth", "depth": float(d),
           "layers": {m: nearest_layer(ls, d) if ls else None for m, ls in layers.items()}}
          for d in relative_depths(len(fewest))]


def _unmatched_notes(rows: list[dict], layers: dict) -> list[str]:
  """A note per run with analysed layers that no row shows (within one architecture, the
  layers some other run did not analyse)."""
  shown = {m: {r["layers"][m] for r in rows} for m in layers}
  return [f"{m}'s {', '.join(left)}: not analysed in every run, so not compared"
          for m, ls in layers.items() if ls and (left := [l for l in ls if l not in shown[m]])
          and all(r["matched_by"] == "name" for r in rows)]


NEAR_CHANCE, NO_PAIRS, NO_CHANCE = comparison_page.NA_REASONS


def removed_share(results, layer: str, set_name: str) -> tuple:
  """(share, None) where the share of above-chance consistency the set removes is read,
  else (None, a NotApplicable: NEAR_CHANCE, NO_PAIRS or NO_CHANCE, and a sentence).

  The share is differences.exposure, (real - set) / (real - chance) over the neurons
  included in both sets. It is n/a "near chance" where the real consistency's excess
  over chance, real - chance, is at most the chance level's spread (the std of p^T A p
  over random k-subsets of the real set, chance["std"] in the analysis).
  """
  info = results.layers[layer]
  pair = info.comparisons.get(f"real_vs_{set_name}")
  chance = info.sets["real"].chance
  if pair is None or pair.num_neurons == 0 or pair.real is None:
    small = info.sets[set_name].chance.mean is None  # chance needs k images
    return None, NotApplicable(NO_PAIRS, (
        f"the {set_name} set has fewer images than k = {results.settings['k']}, so no "
        "neuron is scored on it" if small else
        f"no neuron is included in both the real and the {set_name} set"))
  if chance.mean is None:
    return None, NotApplicable(NO_CHANCE, "the real set has no chance level (fewer images "
                                          "than k)")
  excess, spread = pair.real - chance.mean, chance.std or 0.0
  if excess <= spread:
    return None, NotApplicable(NEAR_CHANCE, (
        f"real consistency {pair.real:.3f} over the {pair.num_neurons} paired neurons "
        f"is {excess:+.3f} from chance {chance.mean:.3f}, within the chance level's std "
        f"over random k-subsets, {spread:.3f}"))
  return differences.exposure(results, layer, set_name), None


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


def _typed(cls, workdir: str, file: str, command: str, notes: list | None,
           advice: str | None = None):
  """DIR/file as cls; None when there is none. A file of an older schema is left out
  with a note saying how to write it again (rerun `command` in the workdir, or
  `advice` where that cannot), or, without `notes` (a file the comparison cannot do
  without), stops it with that sentence."""
  line = f"python -m interp_jax.{command} --workdir={workdir}"
  said, noted = (advice, advice) if advice else (f"rerun {line}", f"rerun `{line}`")
  path = os.path.join(workdir, file)
  saved = _read(path)
  if saved is None:
    return None
  try:
    return cls.from_json(saved, path)
  except ValueError as e:  # an older or damaged file
    if notes is None:
      raise UserError(f"{e}; {said}") from None
    notes.append(f"its {file} follows an older schema and is left out: {noted}")
    return None


def _analysis(workdir: str) -> AnalysisResults | None:
  import jsonschema
  path = os.path.join(workdir, "analysis", "results.json")
  results = _read(path)
  if results is None:
    return None
  try:
    schema.validate(results)
    return AnalysisResults.from_json(results, path)
  except (jsonschema.ValidationError, ValueError) as e:  # an older or damaged file
    raise UserError(f"{path} does not follow the analysis schema "
                    f"({getattr(e, 'message', e)}); rerun "
                    f"python -m interp_jax.analyze --workdir={workdir}") from None


def _files(workdir: str) -> dict:
  """The run's results files (None where absent); a UserError when it has nothing to compare."""
  if not os.path.isdir(workdir):
    raise UserError(f"{workdir} is not a directory; pass run directories to --runs")
  notes = []
  files = {"analysis": _analysis(workdir),
           "robustness": _typed(RobustnessReport, workdir, "robustness.json", "attack",
                                None),
           "dissection": _typed(DissectionResults, workdir, "dissection/results.json",
                                "dissect", notes),
           "explain": _typed(TracingResults, workdir, "explain/results.json", "explain", notes),
           "import": _typed(Imported, workdir, "import.json", "import_weights", notes,
                            advice="import the weights again into a new --workdir "
                                   "(python -m interp_jax.import_weights)"),
           "notes": notes}
  if files["analysis"] is None and files["robustness"] is None:
    raise UserError(f"{workdir} holds neither analysis/results.json nor robustness.json; "
                    f"run python -m interp_jax.analyze --workdir={workdir} first")
  return files


def _cell(results, layer: str) -> Cell:
  """One model's numbers at one layer: each set's mean, chance (mean and std) and count,
  and the share of above-chance consistency each attack set removes (n/a with a reason)."""
  info, order = results.layers[layer], analysed_layers(results)
  sets = {s: SetCell(b.mean, b.chance.mean, b.chance.std, b.num_included)
          for s in SETS if (b := info.sets.get(s)) is not None}
  shares = {s: removed_share(results, layer, s)
            for s in differences.CONTROL_SETS if s in info.sets}
  return Cell(layer, float(relative_depths(len(order))[order.index(layer)]), info.num_neurons,
              sets, removed={s: share for s, (share, _) in shares.items()},
              removed_na={s: why for s, (_, why) in shares.items() if why is not None})


def _robustness(report: RobustnessReport) -> RunRobustness:
  auto = report.autoattack
  if auto is not None:
    auto = AutoAttackResult(auto.version, auto.eps, auto.norm, auto.accuracy,
                            tuple(c for c, v in auto.checks.items() if v.flagged), auto.checks)
  return RunRobustness(
      report.num_images, report.split or "test", report.clean_accuracy,
      {n: AttackResult(a.accuracy, a.options["eps"], a.options["norm"], a.options.get("steps"))
       for n, a in report.attacks.items()}, auto)


def _detectors(dissection: DissectionResults) -> Detectors:
  return Detectors(dissection.settings["iou_threshold"],
                   tuple(sorted(set(dissection.concepts.categories))),
                   {l: {s: dict(info.sets[s].detectors_per_category)
                        for s in ("real", "adversarial")}
                    for l, info in dissection.layers.items()})


def _step_notes(steps: dict) -> list[str]:
  """A note when the files of one run come from different checkpoints."""
  known = {f: s for f, s in steps.items() if s is not None}
  if len(set(known.values())) <= 1:
    return []
  return ["its files come from different checkpoints (" + ", ".join(
      f"{f}: step {s}" for f, s in known.items()) + ")"]


def _run(workdir: str, name: str, files: dict) -> ComparedRun:
  """One run's entry: what its files hold, and a note where one is missing."""
  results, report = files["analysis"], files["robustness"]
  dissection, explain = files["dissection"], files["explain"]
  about = results.run.to_json() if results is not None else {
      "model": report.model, "dataset": report.dataset,
      "checkpoint_step": report.checkpoint_step}
  notes = list(files["notes"])
  if results is None:
    notes.append(f"not analysed: run `python -m interp_jax.analyze --workdir={workdir}`")
  if report is None or report.autoattack is None:
    notes.append("no AutoAttack: run `python -m interp_jax.attack --workdir="
                 f"{workdir} --attacks=pgd,autoattack` for its robust accuracy")
  notes += _step_notes({
      "analysis": results.run.checkpoint_step if results is not None else None,
      "robustness.json": report.checkpoint_step if report is not None else None,
      "dissection": dissection.run.checkpoint_step if dissection and dissection.run else None,
      "explain": explain.run.checkpoint_step if explain and explain.run else None})
  analysis = None
  if results is not None:
    s = results.settings
    analysis = RunAnalysis(s["num_images"], s["attack"], s["eps"], s.get("norm", "linf"),
                           s["steps"], s["k"], results.accuracy, results.attack.success_rate)
  robustness = _robustness(report) if report is not None else None
  robust = None
  if robustness and robustness.autoattack:
    robust = Robust(robustness.autoattack.accuracy, "autoattack")
  elif analysis:
    robust = Robust(analysis.accuracy.adversarial, "analysis")
  return ComparedRun(
      name, workdir, about.get("model"), about.get("dataset"), about.get("checkpoint_step"),
      files["import"], tuple(notes), analysis, robustness, robust,
      _detectors(dissection) if dissection else None,
      DetectionSummary.of(explain) if explain else None)


def _names(workdirs: list[str]) -> list[str]:
  """Each run's name: its folder's name, or the path as given where two share one."""
  base = [os.path.basename(os.path.normpath(w)) for w in workdirs]
  return [b if base.count(b) == 1 else w for b, w in zip(base, workdirs)]


def _differ_notes(runs: list[ComparedRun], analyses: dict) -> list[str]:
  """Where the runs were measured differently, so a column compares unlike numbers (the
  images' digest only where every analysis recorded one and their number agrees)."""
  notes = []
  for key in _SETTINGS:
    values = {n: r.settings.get(key) for n, r in analyses.items()}
    if key == "images_digest" and (None in values.values() or len(
        {r.settings["num_images"] for r in analyses.values()}) > 1):
      continue
    if len({json.dumps(v) for v in values.values()}) > 1:
      notes.append(f"the analyses differ in {key} (" + ", ".join(
          f"{n}: {v}" for n, v in values.items()) + ")")
  datasets = {r.name: r.dataset for r in runs}
  if len(set(datasets.values())) > 1:
    notes.append("the runs use different data sets (" + ", ".join(
        f"{n}: {d}" for n, d in datasets.items()) + ")")
  autos = {r.name: (r.robustness.num_images, r.robustness.autoattack.eps,
                    r.robustness.autoattack.version)
           for r in runs if r.robustness and r.robustness.autoattack}
  if len(set(autos.values())) > 1:
    notes.append("AutoAttack ran with different images, eps or version (" + ", ".join(
        f"{n}: {v[0]} images, eps {v[1]:.4g}, version {v[2]}" for n, v in autos.items()) + ")")
  return notes


def _figure(runs: list[ComparedRun], analyses: dict) -> Figure | None:
  """The plotted points: robust accuracy against adversarial consistency at each
  model's last analysed layer (depth 1.0, where class-selective units live), beside
  that set's chance level; a run without a mean there is left out."""
  points = []
  for r in runs:
    results = analyses.get(r.name)
    if results is None or r.robust is None:
      continue
    layer = analysed_layers(results)[-1]
    adversarial = results.layers[layer].sets["adversarial"]
    if adversarial.mean is None:
      continue
    points.append(Point(r.name, layer, adversarial.mean, adversarial.chance.mean,
                        r.robust.accuracy, r.robust.source))
  return Figure(comparison_page.FIGURE, tuple(points)) if points else None


def read_comparison(workdirs: list[str]) -> Comparison:
  """Reads every run's files into the comparison (comparison_results.py).

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
  layers = {n: analysed_layers(analyses[n]) if n in analyses else None for n in names}
  matched = match_layers(layers, {n: r.run.model for n, r in analyses.items()})
  notes = _differ_notes(runs, analyses) + _unmatched_notes(matched, layers)
  rows = tuple(Row(m["label"], m["matched_by"], m["depth"],
                   {n: _cell(analyses[n], l) if l else None for n, l in m["layers"].items()})
               for m in matched)
  present = {s for r in analyses.values() for info in r.layers.values() for s in info.sets}
  return Comparison(tuple(runs), tuple(s for s in SETS if s in present), rows,
                    _figure(runs, analyses), tuple(notes))


def compare_runs(workdirs: list[str], out_dir: str) -> tuple[Comparison, str]:
  """Reads the runs and writes out_dir/index.html, comparison.json and the figure;
  returns (the comparison, the page's path). Nothing is written on a UserError."""
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise UserError(f"--out={out_dir} is a file; name a folder for the page")
  comparison = read_comparison(workdirs)
  return comparison, comparison_page.write(comparison, out_dir)
