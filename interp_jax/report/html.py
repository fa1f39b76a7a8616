"""The static HTML report of one analysis: DIR/analysis/index.html and its figures.

    write_report(results, grids, "runs/standard/analysis")   # grids: analysis.neuron_grids

Every figure the page references is written next to it under figures/, so the
folder can be copied or served as it is.
"""

import html
import json
import os

from interp_jax.report import figures

SET_TITLES = (("real", "real"), ("adversarial", "adversarial"), ("mixed", "real + adv"),
              ("adversarial_by_prediction", "adv, by prediction"),
              ("successful", "successful attacks"), ("shared", "shared adv set"))


PAGE_STYLE = """body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; display: block; overflow-x: auto; max-width: 100%; }
img { max-width: 100%; }
td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
img.hist { width: 420px; }
.note { color: #555; font-size: 0.92em; max-width: 60em; }
.warn { background: #fff4e0; border-left: 4px solid #b70; padding: 0.5em 0.8em; max-width: 60em; }
ul.findings { list-style: none; padding-left: 0.5em; } ul.findings li { margin-bottom: 0.8em; }
section { border-top: 1px solid #ddd; margin-top: 1.5em; }"""



_SUCCESS_RULE = {"changed": "whose prediction the attack changed",
                 "right_to_wrong": "of images classified right that the attack made wrong"}


def _successful_text(settings, attack) -> str:
  """The successful set's size, in the words of the rule that made it."""
  rule = settings.get("successful", "changed")
  n, rate = attack.num_successful, attack.success_rate
  if rule == "right_to_wrong":
    return (f"the attack turned {n} images from right to wrong ({rate:.1%} of all, "
            f"{attack.turned_wrong:.1%} of those classified right)"
            if attack.turned_wrong is not None else
            f"the attack turned {n} images from right to wrong ({rate:.1%})")
  return f"the attack changed the prediction of {n} images ({rate:.1%})"


def write_page(out_dir: str, title: str, body: str) -> str:
  """out_dir/index.html: `body` under the pages' shared head and style; returns its path."""
  page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>'
          f"{html.escape(title)}</title>\n<style>\n{PAGE_STYLE}\n</style></head><body>\n"
          f"{body}</body></html>\n")
  path = os.path.join(out_dir, "index.html")
  with open(path, "w") as f:
    f.write(page)
  return path


def _fmt(v, digits=3):
  return "n/a" if v is None else f"{v:.{digits}f}"


def _sets(layers: dict) -> list:
  first = next(iter(layers.values())).sets
  return [(s, t) for s, t in SET_TITLES if s in first]


def score_table(layers: dict, purity: bool = False) -> str:
  """Per layer and set: the mean over included neurons, its chance level and count."""
  sets = _sets(layers)
  head = "".join(f"<th>{html.escape(t)}</th>" for _, t in sets)
  rows = []
  for l, info in layers.items():
    cells = []
    for s, _ in sets:
      block = info.sets[s].purity if purity else info.sets[s]
      cells.append(f"<td>{_fmt(block.mean)}<br><small>chance {_fmt(block.chance.mean)}"
                   f" &middot; {info.sets[s].num_included}/{info.num_neurons}"
                   "</small></td>")
    extra = ("" if purity else f"<td>{_fmt(info.topk_overlap.mean)}<br><small>"
             f"{info.topk_overlap.num_neurons} neurons</small></td>"
             f"<td>{_fmt(info.feature_cosine)}</td>")
    rows.append(f"<tr><td>{html.escape(l)}</td>{''.join(cells)}{extra}</tr>")
  tail = "" if purity else "<th>top-k overlap</th><th>feature cosine</th>"
  return f"<table><tr><th>layer</th>{head}{tail}</tr>{''.join(rows)}</table>"


def excluded_table(layers: dict) -> str:
  """Per layer and set: how many neurons were left out, and why."""
  sets = _sets(layers)
  head = "".join(f"<th>{html.escape(t)}</th>" for _, t in sets)
  rows = "".join(
      f"<tr><td>{html.escape(l)}</td>" + "".join(
          f"<td>{info.sets[s].excluded.fewer_than_k} + "
          f"{info.sets[s].excluded.tied}</td>" for s, _ in sets) + "</tr>"
      for l, info in layers.items())
  return f"<table><tr><th>layer</th>{head}</tr>{rows}</table>"


def comparison_text(layers: dict) -> str:
  items = []
  for l, info in layers.items():
    for c in info.comparisons.values():
      items.append(f"<li>{html.escape(l)}, real against {html.escape(c.other_set)}: "
                   f"{_fmt(c.real)} and {_fmt(c.other)} over the {c.num_neurons} neurons "
                   "included in both</li>")
  return f"<ul class='note'>{''.join(items)}</ul>"


def write_report(results, grids, out_dir: str, robustness=None) -> str:
  """Writes index.html and figures/ of an AnalysisResults into out_dir; returns the
  page's path.

  grids: the analysis's NeuronGrids (analysis.neuron_grids), drawn as they are;
  robustness: the run's RobustnessReport (robustness.json, the attack command's),
  whose AutoAttack section, when it has one, is shown beside the analysis attack's
  accuracy.
  """
  from interp_jax.report.robustness import autoattack_html
  fig_dir = os.path.join(out_dir, "figures")
  os.makedirs(fig_dir, exist_ok=True)
  layers = results.layers
  figures.layer_summary(layers, os.path.join(fig_dir, "summary.png"))
  curve = ""
  if results.eps_curve is not None:
    figures.eps_curves({results.run.model: results.eps_curve},
                       os.path.join(fig_dir, "eps_curve.png"), norm=results.settings["norm"])
    curve = ("<h2>Consistency against the attack's budget</h2>"
             "<img src='figures/eps_curve.png'>")
  parts = []
  for layer, info in layers.items():
    figures.layer_histogram(layer, info, os.path.join(fig_dir, f"hist_{layer}.png"))
    shown = []
    for g in (g for g in grids if g.layer == layer):
      name = f"grid_{layer}_{g.group}.png"
      figures.neuron_grid(g.rows, g.real, g.adversarial, g.real_captions,
                          g.adversarial_captions, os.path.join(fig_dir, name))
      shown.append(f"<h4>{html.escape(g.title)}</h4><img src='figures/{name}' class='grid'>")
    parts.append(
        f"<section><h3>{html.escape(layer)}</h3>"
        f"<img src='figures/hist_{layer}.png' class='hist'>{''.join(shown)}</section>")
  s, run, acc = results.settings, results.run, results.accuracy
  shared_acc = (f", on the shared adversarial set {acc.shared:.3f}"
                if acc.shared is not None else "")
  attack_text = (f"adversarial set: each image's AutoAttack worst case ({html.escape(s['norm'])}, "
                 f"from the attack command's autoattack.npz; the eps curve, if any, uses "
                 f"{html.escape(s['attack'])} with eps = {s['eps']:.4f})"
                 if s.get("adversarial") == "autoattack" else
                 f"attack {html.escape(s['attack'])} ({html.escape(s['norm'])}, "
                 f"eps = {s['eps']:.4f}, {s['steps']} steps)")
  body = f"""<h1>Neuron consistency of {html.escape(run.model)} on {html.escape(run.dataset)}</h1>
<p>Checkpoint step {run.checkpoint_step} of <code>{html.escape(run.workdir)}</code>.
{s['num_images']} test images; {attack_text}; top-{s['k']} images per neuron;
class similarity: {html.escape(s['similarity'])}; activation: spatial {html.escape(s['activation'])}.</p>
<p><b>Accuracy</b>: clean {acc.clean:.3f}, under attack {acc.adversarial:.3f}{shared_acc};
{_successful_text(s, results.attack)}</p>
{autoattack_html(robustness.autoattack) if robustness and robustness.autoattack else ""}
<h2>Consistency per layer</h2>
<p class="note">consis(n) = p<sup>T</sup>Ap, where p is the label histogram of the k images
that excite neuron n most: 1 when they share one class. Adversarial images are labelled
with the class of their clean source (what a person sees); "by prediction" labels them
with the class the model now predicts. "successful attacks" keeps only the adversarial
images {_SUCCESS_RULE.get(s.get('successful', 'changed'), '')}; the shared set is made against another model
and is the same for every model compared. A neuron counts in a set only when its top-k
there is decided by its activations (its k-th best activation beats its (k+1)-th); each
cell gives the mean over those neurons, the set's chance level (k random images of the
set, labelled as the set is) and how many neurons were included. Overlap: the share of
a neuron's top real images whose adversarial versions stay in its top images.
Cosine: mean cosine similarity of the layer's features of an image and of its
adversarial version.</p>
{score_table(layers)}
<p class="note">Paired comparisons, over the neurons included in both sets:</p>
{comparison_text(layers)}
<h3>Class purity (identity similarity)</h3>
{score_table(layers, purity=True)}
<h3>Neurons left out per set</h3>
<p class="note">fire on fewer than k images of the set + tie at the k-th place; their top-k
would be decided by the order in which the images are stored.</p>
{excluded_table(layers)}
<img src="figures/summary.png">
{curve}
<h2>Layers</h2>
<p class="note">Each grid row is one neuron (its index, and its consistency on real and
adversarial images): first its top real images with their classes, then its top
adversarial images with their true class and the class the model predicts.</p>
{''.join(parts)}
"""
  return write_page(out_dir, f"Neuron consistency: {run.model}", body)


def save_results(results, schema: dict, out_dir: str) -> str:
  """Validates typed results' JSON against `schema` (jsonschema.ValidationError when it
  does not follow it), writes out_dir/results.json and makes out_dir/figures; returns
  that folder."""
  import jsonschema
  saved = results.to_json()
  jsonschema.validate(saved, schema)
  fig_dir = os.path.join(out_dir, "figures")
  os.makedirs(fig_dir, exist_ok=True)
  with open(os.path.join(out_dir, "results.json"), "w") as f:
    json.dump(saved, f)
  return fig_dir


def save_analysis(results, grids, out_dir: str, robustness=None) -> str:
  """Validates an AnalysisResults, writes out_dir/results.json and the page
  (write_report); returns the page's path."""
  from interp_jax.report.schema import RESULTS_SCHEMA
  save_results(results, RESULTS_SCHEMA, out_dir)
  return write_report(results, grids, out_dir, robustness)
