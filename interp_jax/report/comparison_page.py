"""The comparison of models: comparison.json, its page and figure, and its printout.

    page = write(comparison, "runs/compare")   # index.html, comparison.json, FIGURE
    print(text(comparison))                    # the same tables as plain text

`comparison` is reproduction/comparison_results.py's Comparison, whose
docstring documents comparison.json; its JSON is validated against SCHEMA
(shares within [0, 1], the enumerated reasons and sources) before anything is
written. Every file the page references is
written beside it, except the runs' own pages, linked only where they exist.
"""

import html
import json
import os

from interp_jax.report import figures
from interp_jax.report.html import write_page

FIGURE = "robust_vs_consistency.png"
SET_TITLES = {"real": "real", "adversarial": "own adversarial",
              "successful": "successful attacks", "shared": "shared adversarial"}

_P = {"type": ["number", "null"], "minimum": 0, "maximum": 1}  # a share; null where undefined
_NUM = {"type": ["number", "null"]}
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
_OBJ = lambda required, props, extra=False: {  # noqa: E731
    "type": "object", "required": required, "properties": props, "additionalProperties": extra}
_AUTO = _OBJ(["version", "eps", "norm", "accuracy", "flagged", "checks"], {
    "version": {"type": "string"}, "eps": {"type": "number"}, "norm": {"type": "string"},
    "accuracy": _P, "flagged": {"type": "array", "items": {"type": "string"}},
    "checks": {"type": "object", "additionalProperties": _OBJ(
        ["flagged", "value", "message"], {"flagged": {"type": "boolean"}, "value": {},
                                          "message": {"type": "string"}})}})
_ROBUSTNESS = _OBJ(["num_images", "split", "clean", "attacks", "autoattack"], {
    "num_images": {"type": ["integer", "null"]}, "split": {"type": "string"}, "clean": _P,
    "attacks": {"type": "object", "additionalProperties": _OBJ(
        ["accuracy", "eps", "norm", "steps"], {"accuracy": _P, "eps": {"type": "number"},
                                               "norm": {"type": "string"},
                                               "steps": {"type": ["integer", "null"]}})},
    "autoattack": {"anyOf": [{"type": "null"}, _AUTO]}})
_ANALYSIS = _OBJ(["num_images", "attack", "eps", "norm", "steps", "k", "accuracy",
                  "success_rate"], {
    "num_images": {"type": "integer"}, "attack": {"type": "string"},
    "eps": {"type": "number"}, "norm": {"type": "string"}, "steps": {"type": "integer"},
    "k": {"type": "integer"}, "accuracy": {"type": "object", "required": ["clean", "adversarial"],
                                           "additionalProperties": _P},
    "success_rate": _P})
_RUN = _OBJ(["name", "workdir", "model", "dataset", "checkpoint_step", "imported", "notes",
             "analysis", "robustness", "robust", "detectors", "detection"], {
    "name": {"type": "string"}, "workdir": {"type": "string"},
    "model": {"type": ["string", "null"]}, "dataset": {"type": ["string", "null"]},
    "checkpoint_step": {"type": ["integer", "null"]},
    "imported": {"anyOf": [{"type": "null"}, _OBJ(["arch", "checkpoint", "sha256", "mean",
                                                    "std"], {
        "arch": {"type": "string"}, "checkpoint": {"type": "string"},
        "sha256": {"type": "string"}, "mean": {"type": "array", "items": {"type": "number"}},
        "std": {"type": "array", "items": {"type": "number"}}})]},
    "notes": {"type": "array", "items": {"type": "string"}},
    "analysis": {"anyOf": [{"type": "null"}, _ANALYSIS]},
    "robustness": {"anyOf": [{"type": "null"}, _ROBUSTNESS]},
    "robust": {"anyOf": [{"type": "null"}, _OBJ(["accuracy", "source"], {
        "accuracy": _P, "source": {"enum": ["autoattack", "analysis"]}})]},
    "detectors": {"anyOf": [{"type": "null"}, _OBJ(["iou_threshold", "categories", "layers"], {
        "iou_threshold": {"type": "number"},
        "categories": {"type": "array", "items": {"type": "string"}},
        "layers": {"type": "object", "additionalProperties": _OBJ(
            ["real", "adversarial"], {"real": _COUNTS, "adversarial": _COUNTS})}})]},
    "detection": {"anyOf": [{"type": "null"}, _OBJ(["layer", "attacks"], {
        "layer": {"type": "string"}, "attacks": {"type": "object", "additionalProperties": _OBJ(
            ["auc", "auc_successful"], {"auc": _P, "auc_successful": _P})}})]}})
NA_REASONS = ("near chance", "no paired neurons", "no chance level")  # why a share is n/a
_CELL = _OBJ(["layer", "depth", "num_neurons", "sets", "removed", "removed_na"], {
    "layer": {"type": "string"}, "depth": {"type": "number", "minimum": 0, "maximum": 1},
    "num_neurons": {"type": "integer", "minimum": 1},
    "sets": {"type": "object", "required": ["real"], "additionalProperties": _OBJ(
        ["mean", "chance", "chance_std", "num_included"], {
            "mean": _P, "chance": _P, "chance_std": {"type": ["number", "null"], "minimum": 0},
            "num_included": {"type": "integer", "minimum": 0}})},
    "removed": {"type": "object", "additionalProperties": _NUM},
    "removed_na": {"type": "object", "additionalProperties": _OBJ(
        ["reason", "detail"], {"reason": {"enum": list(NA_REASONS)},
                               "detail": {"type": "string"}})}})
_ROW = _OBJ(["label", "matched_by", "depth", "models"], {
    "label": {"type": "string"}, "matched_by": {"enum": ["name", "relative depth"]},
    "depth": {"type": ["number", "null"]},
    "models": {"type": "object", "additionalProperties": {"anyOf": [{"type": "null"}, _CELL]}}})
_POINT = _OBJ(["name", "layer", "consistency", "chance", "robust_accuracy", "source"], {
    "name": {"type": "string"}, "layer": {"type": "string"},
    "consistency": {"type": "number", "minimum": 0, "maximum": 1}, "chance": _P,
    "robust_accuracy": _P, "source": {"enum": ["autoattack", "analysis"]}})
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "interp_jax comparison of models",
    **_OBJ(["runs", "sets", "rows", "figure", "notes"], {
        "runs": {"type": "array", "minItems": 2, "items": _RUN},
        "sets": {"type": "array", "items": {"enum": list(SET_TITLES)}},
        "rows": {"type": "array", "items": _ROW},
        "figure": {"anyOf": [{"type": "null"}, _OBJ(["file", "points"], {
            "file": {"const": FIGURE}, "points": {"type": "array", "items": _POINT}})]},
        "notes": {"type": "array", "items": {"type": "string"}}})}


def validate(saved: dict) -> None:
  """Raises jsonschema.ValidationError when a comparison's JSON (Comparison.to_json(), what
  comparison.json holds) does not follow SCHEMA."""
  import jsonschema
  jsonschema.validate(saved, SCHEMA)


def _num(v, digits=3) -> str:
  return "n/a" if v is None else f"{v:.{digits}f}"


def _attacks(runs) -> list[str]:
  """Every attack of any run's robustness.json, in first-seen order."""
  names = []
  for r in runs:
    for a in (r.robustness.attacks if r.robustness else {}):
      names += [a] if a not in names else []
  return names


def _accuracy_cells(r, attacks: list[str]) -> list[str]:
  """One run's accuracy columns as text: analysis clean and attacked, then robustness.json."""
  a, rob = r.analysis, r.robustness
  auto = rob.autoattack if rob else None
  cells = [_num(a.accuracy.clean) if a else "n/a",
           _num(a.accuracy.adversarial) if a else "n/a",
           _num(rob.clean) if rob else "n/a"]
  cells += [_num(rob.attacks[n].accuracy) if rob and n in rob.attacks else "n/a"
            for n in attacks]
  cells.append(_num(auto.accuracy) if auto else "n/a")
  cells.append(("FLAGGED: " + ", ".join(auto.flagged) if auto.flagged else "none")
               if auto else "n/a")
  return cells


def _accuracy_head(comparison) -> list[str]:
  analysed = [r.analysis for r in comparison.runs if r.analysis]
  attack = analysed[0].attack.upper() if analysed else "attack"
  return (["clean (analysis)", f"{attack} (analysis)", "clean (robustness.json)"]
          + _attacks(comparison.runs) + ["AutoAttack", "masking checks"])


def _set_cell(cell, s: str) -> tuple[str, str]:
  """(mean (count), chance ± std) of one set in one cell, 'n/a' where absent."""
  b = cell.sets.get(s) if cell else None
  if b is None:
    return "n/a", "n/a"
  if b.chance is None:  # the analysis has a chance level wherever the set has k images
    return f"{_num(b.mean)} ({b.num_included})", "n/a (< k images)"
  spread = "" if b.chance_std is None else f" ± {b.chance_std:.3f}"
  return f"{_num(b.mean)} ({b.num_included})", _num(b.chance) + spread


def _removed_cell(cell, s: str) -> tuple[str, str | None]:
  """(the share, or 'n/a'; the reason it is n/a, or None)."""
  if cell is None:
    return "n/a", None
  why = cell.removed_na.get(s)
  return _num(cell.removed.get(s)), why and why.reason


def _removed(cell, sets) -> str:
  return " / ".join(_num(cell.removed.get(s) if cell else None, 2) for s in sets)


def architecture(r) -> str:
  """The run's architecture as a reader names it: the imported --arch, else the model."""
  return (r.imported.arch if r.imported else None) or r.model or "?"


def na_notes(comparison) -> list[str]:
  """One line per reason a removed share is n/a, naming the models, layers and sets."""
  where = {}
  for row in comparison.rows:
    for name, cell in row.models.items():
      reasons = {}
      for s, why in (cell.removed_na if cell else {}).items():
        reasons.setdefault((why.reason, why.detail), []).append(SET_TITLES[s])
      for (reason, detail), sets in reasons.items():
        where.setdefault((reason, detail, ", ".join(sets)), {}).setdefault(
            name, []).append(cell.layer)
  return [f"{reason} for {sets} at " + "; ".join(
      f"{name} {', '.join(dict.fromkeys(layers))}" for name, layers in who.items())
      + f": {detail}" for (reason, detail, sets), who in where.items()]


def text(comparison) -> str:
  """The accuracy table, the consistency table and the notes, as plain text."""
  runs, width = comparison.runs, max(12, *(len(r.name) + 2 for r in comparison.runs))
  attacks = _attacks(runs)
  head = _accuracy_head(comparison)
  lines = ["accuracy", f"{'model':<{width}}" + "".join(f"{h:>{max(len(h), 7) + 2}}"
                                                       for h in head[:-1]) + "  masking checks"]
  for r in runs:
    cells = _accuracy_cells(r, attacks)
    lines.append(f"{r.name:<{width}}" + "".join(
        f"{c:>{max(len(h), 7) + 2}}" for c, h in zip(cells[:-1], head)) + f"  {cells[-1]}")
  sets = list(comparison.sets)
  control = [s for s in sets if s != "real"]
  lines += ["", "consistency: mean over the included neurons (their number) / chance ± its std; "
            "removed: (real - set) / (real - chance), paired neurons, for " + " / ".join(control)]
  lines.append(f"{'row':<12}{'matched by':<16}{'model':<{width}}{'layer':<10}" + "".join(
      f"{SET_TITLES[s]:>32}" for s in sets) + "   removed")
  for row in comparison.rows:
    for name, cell in row.models.items():
      cells = "".join(f"{' / '.join(_set_cell(cell, s)):>32}" for s in sets)
      lines.append(f"{row.label:<12}{row.matched_by:<16}{name:<{width}}"
                   f"{cell.layer if cell else 'n/a':<10}{cells}   {_removed(cell, control)}")
  lines += [f"removed n/a: {n}" for n in na_notes(comparison)]
  for r in runs:
    lines += [f"{r.name}: {n}" for n in r.notes]
  lines += [f"note: {n}" for n in comparison.notes]
  return "\n".join(lines)


def figure(points, path: str) -> None:
  """Robust accuracy against consistency on own adversarial images, a point per model
  (filled where robust accuracy is AutoAttack's, hollow where the analysis attack's),
  joined by a dotted line to the model's chance level (the set's: a tick); the legend,
  outside the axes, names each model and its layer, so close points stay readable."""
  plt = figures.plt
  fig, ax = plt.subplots(figsize=(7.6, 4.0))
  for i, p in enumerate(points):
    auto, x, y = p.source == "autoattack", p.consistency, p.robust_accuracy
    if p.chance is not None:
      ax.plot([p.chance, x], [y, y], ":", color=f"C{i}", lw=1)
      ax.plot(p.chance, y, "|", color=f"C{i}", ms=10, mew=1.5)
    ax.plot(x, y, "o", ms=8, color=f"C{i}", mfc=f"C{i}" if auto else "white", mew=1.8,
            label=f"{p.name} ({p.layer})")
  ax.plot([], [], "ko", label="robust accuracy: AutoAttack")
  ax.plot([], [], "ko", mfc="white", label="robust accuracy: analysis attack")
  ax.plot([], [], "k|", ms=10, mew=1.5, label="chance level of the set")
  ax.set_xlabel("consistency on own adversarial images, last analysed layer (depth 1)")
  ax.set_ylabel("robust accuracy")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
  ax.margins(0.08)
  low, high = ax.get_ylim()
  ax.set_ylim(max(low, -0.02), min(high, 1.02))  # accuracies: no room below 0 or above 1
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


_TD = "<td style='white-space:nowrap'>"


def _table(head: list[str], rows: list[list[str]]) -> str:
  th = "".join(f"<th>{h}</th>" for h in head)
  return f"<table><tr>{th}</tr>" + "".join(
      "<tr>" + "".join(f"{_TD}{c}</td>" for c in r) + "</tr>" for r in rows) + "</table>"


def _run_link(r, out_dir: str) -> str:
  """The run's name, linked to its analysis page when that page exists."""
  page = os.path.join(r.workdir, "analysis", "index.html")
  if not os.path.exists(page):
    return html.escape(r.name)
  return f"<a href='{html.escape(os.path.relpath(page, out_dir))}'>{html.escape(r.name)}</a>"


def _removed_html(cell, s: str) -> str:
  value, reason = _removed_cell(cell, s)
  return f"removed {value}" + ("" if reason is None else f": {html.escape(reason)}")


def _consistency_table(comparison) -> str:
  sets = comparison.sets
  runs = {r.name: r for r in comparison.runs}
  several = len({architecture(r) for r in runs.values()}) > 1  # name each run's architecture
  head = (["row", "model", "layer (depth)"]
          + [f"{SET_TITLES[s]}<br><small>mean (neurons) &middot; chance &plusmn; std"
             + ("" if s == "real" else " &middot; share removed") + "</small>" for s in sets])
  rows = []
  for row in comparison.rows:
    span = f"<td rowspan='{len(row.models)}'>"  # the row's label and matching, once
    first = (f"{span}<b>{html.escape(row.label)}</b><br><small>by {row.matched_by}"
             "</small></td>")
    for i, (name, cell) in enumerate(row.models.items()):
      where = f"{html.escape(cell.layer)} ({cell.depth:.2f})" if cell else "not analysed"
      arch = architecture(runs[name])
      model = html.escape(name) + (f"<br><small>{html.escape(arch)}</small>"
                                   if several and arch != name else "")
      cells = [where] + ["{}<br><small>chance {}".format(*_set_cell(cell, s))
                         + ("" if s == "real" else "<br>" + _removed_html(cell, s))
                         + "</small>" for s in sets]
      rows.append("<tr>" + (first if i == 0 else "")
                  + f"<td style='text-align:left'>{model}</td>"
                  + "".join(f"{_TD}{c}</td>" for c in cells) + "</tr>")
  header = "".join(f"<th style='text-align:left'>{h}</th>" if h == "model" else f"<th>{h}</th>"
                   for h in head)
  notes = na_notes(comparison)
  na = ("<p class='note'>Share removed n/a:</p><ul class='note'>" + "".join(
      f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>") if notes else ""
  return f"<table><tr>{header}</tr>{''.join(rows)}</table>{na}"


def _detectors_html(runs) -> str:
  have = [r for r in runs if r.detectors]
  if not have:
    return "<p class='note'>No run holds a dissection (python -m interp_jax.dissect).</p>"
  cats = sorted({c for r in have for c in r.detectors.categories})
  rows = [[html.escape(r.name), html.escape(l)] + [
      f"{sets['real'].get(c, 0)} / {sets['adversarial'].get(c, 0)}" for c in cats]
      for r in have for l, sets in r.detectors.layers.items()]
  missing = [r.name for r in runs if not r.detectors]
  return (_table(["model", "layer"] + [f"{html.escape(c)}<br><small>real / adv</small>"
                                       for c in cats], rows)
          + (f"<p class='note'>Not dissected: {html.escape(', '.join(missing))}.</p>"
             if missing else ""))


def _detection_html(runs) -> str:
  have = [r for r in runs if r.detection]
  if not have:
    return "<p class='note'>No run holds a tracing (python -m interp_jax.explain).</p>"
  attacks = list(dict.fromkeys(a for r in have for a in r.detection.attacks))
  rows = [[html.escape(r.name), html.escape(r.detection.layer)] + [
      (f"{_num(e.auc)} / {_num(e.auc_successful)}"
       if (e := r.detection.attacks.get(a)) else "n/a") for a in attacks] for r in have]
  missing = [r.name for r in runs if not r.detection]
  return (_table(["model", "layer"] + [f"{html.escape(a)}<br><small>AUC all / fooled vs correct"
                                       "</small>" for a in attacks], rows)
          + (f"<p class='note'>Not traced: {html.escape(', '.join(missing))}.</p>"
             if missing else ""))


def _accuracy_html(comparison, out_dir: str) -> str:
  runs, attacks = comparison.runs, _attacks(comparison.runs)
  head = [html.escape(h) for h in _accuracy_head(comparison)]
  rows = [[_run_link(r, out_dir)] + [html.escape(c) for c in _accuracy_cells(r, attacks)]
          for r in runs]
  sizes = ", ".join(
      f"{html.escape(r.name)}: analysis {r.analysis.num_images if r.analysis else 'n/a'}"
      f", robustness.json {r.robustness.num_images if r.robustness else 'n/a'}"
      for r in runs)
  return _table(["model"] + head, rows) + f"<p class='note'>Images scored: {sizes}.</p>"


def _about(r) -> str:
  where = (f"{r.imported.arch} imported from {r.imported.checkpoint}"
           if r.imported else f"{r.model}, step {r.checkpoint_step}")
  return f"{r.name} ({where}, on {r.dataset})"


def write(comparison, out_dir: str) -> str:
  """Validates comparison (a Comparison), writes comparison.json, the figure and
  index.html into out_dir; returns the page's path."""
  saved = comparison.to_json()
  validate(saved)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "comparison.json"), "w") as f:
    json.dump(saved, f, indent=2)
  fig = comparison.figure
  if fig:
    figure(fig.points, os.path.join(out_dir, FIGURE))
  runs = comparison.runs
  notes = [f"{html.escape(r.name)}: {html.escape(n)}" for r in runs for n in r.notes]
  notes += [html.escape(n) for n in comparison.notes]
  body = f"""<h1>Models compared</h1>
<p>{len(runs)} runs, each read from its own files (nothing recomputed):
{', '.join(html.escape(_about(r)) for r in runs)}.
The numbers: <a href="comparison.json">comparison.json</a>.</p>
{''.join(f"<p class='warn'>{n}</p>" for n in notes)}
<h2>Accuracy</h2>
<p class="note">The analysis's accuracy is on its own test images under its own attack;
robustness.json holds the attack command's (each attack, and AutoAttack's robust accuracy:
each image's worst case over its stages). A flagged masking check says the robust accuracy
may come from masked gradients rather than robustness.</p>
{_accuracy_html(comparison, out_dir)}
{f'<img src="{FIGURE}">' if fig else "<p class='note'>No run has both an analysis and a robust accuracy: no figure.</p>"}
<p class="note">Robust accuracy (AutoAttack's where the run has it, filled, on the images of
robustness.json; else the analysis attack's, hollow) against the mean consistency on the
model's own adversarial images at its last analysed layer; the dotted line runs from that
set's chance level (the tick) to the model's consistency.</p>
<h2>Consistency per layer</h2>
<p class="note">consis(n) = p<sup>T</sup>Ap over the k images that excite neuron n most;
each cell is the mean over the neurons included in the set (their number) beside the set's
chance level, the expected consis of k images drawn at random from the set, &plusmn; its
std over such draws. Under each attack set, "removed" is the share of above-chance
real-image consistency the set removes, (real &minus; set) / (real &minus; chance), over
the neurons included in both; it is n/a "near chance" where real &minus; chance is at most
that std (the ratio would divide by noise), and n/a where no neuron is in both sets. Layers are matched by name
where the runs are of one architecture; across architectures by relative depth, since a
name says where a layer sits only within its own architecture: the i-th of a model's n
analysed layers is at depth i/(n&minus;1) (in brackets), the rows sit at the depths of the
model with the fewest analysed layers, and each takes each model's nearest layer (the
shallower on a tie). Depth 1.00 is each model's last analysed layer, its penultimate
when the logits are not analysed.</p>
{_consistency_table(comparison)}
<h2>Concept detectors (network dissection)</h2>
{_detectors_html(runs)}
<h2>Detecting adversarial inputs</h2>
{_detection_html(runs)}
"""
  return write_page(out_dir, "Models compared", body)
