"""DIR/explain: results.json and the page of prediction tracing and detection.

results.json (validated against SCHEMA; in Python a TracingResults,
analysis/results.py):

    {"layer", "ablation", "settings": {...},
     "profile": {"split", "num_images", "k", "num_included", "num_neurons"},
     "accuracy": {"clean" | ATTACK: float},
     "detection": {"score", "clean_mean",
                   "attacks": {ATTACK: {"auc", "auc_successful", "num_successful",
                                        "success_rate", "num_clean", "num_adversarial",
                                        "adversarial_mean", "roc": {"fpr", "tpr"}}}},
     "examples": [{"kind", "test_index", "label", "predicted", "score",
                   "neurons": [{"neuron", "pd", "consistency", "concept",
                                "profile_agreement", "profile_class"}]}]}

auc: clean test images (negative) against all their adversarial versions
(positive); auc_successful: correctly classified clean images against the
attacks that fooled the model. Labels are class indices.
"""

import html
import os

from interp_jax.report import figures
from interp_jax.report.html import save_results, write_page

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "required": ["layer", "ablation", "accuracy", "detection", "examples"],
    "properties": {
        "detection": {"type": "object", "required": ["attacks"], "properties": {
            "attacks": {"type": "object", "additionalProperties": {
                "type": "object", "required": ["auc", "auc_successful", "roc"],
                "properties": {"auc": {"type": "number", "minimum": 0, "maximum": 1}}}}}},
        "examples": {"type": "array", "items": {
            "type": "object", "required": ["kind", "test_index", "label", "predicted",
                                           "neurons"]}}}}


def _num(v, d=3):
  return "n/a" if v is None else f"{v:.{d}f}"


def detection_table(det) -> str:
  """A Detection's ROC AUCs, success rates and mean scores, a row per attack."""
  rows = "".join(
      f"<tr><td>{html.escape(a)}</td><td>{_num(e.auc)}</td><td>{_num(e.auc_successful)}"
      f" <small>({e.num_successful} fooled)</small></td><td>{e.success_rate:.1%}</td>"
      f"<td>{_num(det.clean_mean)} / {_num(e.adversarial_mean)}</td></tr>"
      for a, e in det.attacks.items())
  return ("<table><tr><th>attack</th><th>ROC AUC, all</th><th>ROC AUC, fooled vs correct</th>"
          "<th>success rate</th><th>mean D, clean / adversarial</th></tr>" + rows + "</table>")


def write(results, examples, out_dir: str, class_names, title: str = "") -> str:
  """Validates a TracingResults and writes results.json, figures/ and index.html; returns
  the page."""
  fig_dir = save_results(results, SCHEMA, out_dir)
  figures.roc_curves(results.detection.attacks, os.path.join(fig_dir, "roc.png"))
  parts = []
  for i, ex in enumerate(examples):
    name = f"example_{i}.png"
    figures.explained(ex, os.path.join(fig_dir, name))
    rows = "".join(
        f"<tr><td>#{n.neuron}</td><td>{n.pd:.4f}</td><td>{_num(n.consistency)}</td>"
        f"<td>{html.escape(n.concept or '-')}</td><td>{html.escape(n.profile_class)}"
        f"</td><td>{n.profile_agreement:.2f}</td></tr>" for n in ex.neurons)
    parts.append(
        f"<section><h3>{html.escape(ex.title)}</h3><table><tr><th>neuron</th><th>PD</th>"
        "<th>consistency</th><th>dissection concept</th><th>its images' main class</th>"
        f"<th>share of the predicted class</th></tr>{rows}</table>"
        f"<img src='figures/{name}' class='grid'></section>")
  acc = ", ".join(f"{k} {v:.3f}" for k, v in results.accuracy.items())
  num = next(iter(results.detection.attacks.values())).num_clean
  s = results.settings
  body = f"""<h1>Why a prediction was made {html.escape(title)}</h1>
<p>Layer <b>{html.escape(results.layer)}</b>; a neuron's prediction difference
PD(n, x, c) = P(c | x) &minus; P(c | x with n ablated to {html.escape(results.ablation)}),
c the predicted class. Accuracy on the {num} scored test images: {acc}.</p>
<h2>Detecting adversarial inputs</h2>
<p class="note">D(x) = 1 &minus; the PD-weighted share of the predicted class among the top
images of the input's {s['top']} most influential neurons (their images come from the
{html.escape(results.profile.split)} split, never from the scored images). Clean
test images are the negatives, their adversarial versions the positives. "adaptive" is
the analysis PGD run against CE &minus; {s['adaptive_weight']:g} &times; D: an attacker who
knows the detector (a detector is only as good as its AUC against such an attack).</p>
{detection_table(results.detection)}
<img src="figures/roc.png">
<h2>Examples</h2>
<p class="note">Each figure: the input, then one row per influential neuron (PD,
consistency on the analysed real images, and its dissection concept or else the main
class of its profile images) with its top analysed real images.</p>
{''.join(parts)}
"""
  return write_page(out_dir, f"Tracing {title}", body)
