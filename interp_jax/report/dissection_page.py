"""DIR/dissection: results.json, iou.npz and the page of a network dissection.

results.json (validated against SCHEMA; in Python a DissectionResults,
analysis/results.py):

    {"probe", "settings": {"probe", "num_images", "layers", "quantile", "bins",
                           "iou_threshold", "attack", "threshold_from"},
     "concepts": {"names": [...], "categories": [...], "pixel_share": [share of the
                  probe's pixels each concept covers]},
     "layers": {LAYER: {"units", "threshold": [T_n], "threshold_error": [bin width],
                        "sets": {"real" | "adversarial": {
                            "concept": [best concept per unit], "iou": [its IoU],
                            "detector": [IoU > iou_threshold], "num_detectors",
                            "detectors_per_category": {category: n},
                            "detectors_per_concept": {concept: n}, "mean_best_iou"}},
                        "changed": [{"unit", "real", "adversarial", "iou_real",
                                     "iou_adversarial"}],
                        "top_images": [[probe index] per unit]}}}

`changed` lists the units that detect a concept on real or adversarial images
but not the same one on both (null: no detector there). iou.npz holds the full
IoU matrices, key "LAYER/SET", [units, concepts].
"""

import html
import os

import numpy as np

from interp_jax.report import figures
from interp_jax.report.html import save_results, write_page

_SET = {"type": "object", "required": ["concept", "iou", "detector", "num_detectors",
                                       "detectors_per_category"]}
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "required": ["probe", "settings", "concepts", "layers"],
    "properties": {
        "concepts": {"type": "object", "required": ["names", "categories"]},
        "layers": {"type": "object", "minProperties": 1, "additionalProperties": {
            "type": "object",
            "required": ["units", "threshold", "threshold_error", "sets", "changed",
                         "top_images"],
            "properties": {"sets": {"type": "object", "required": ["real", "adversarial"],
                                    "additionalProperties": _SET},
                           "changed": {"type": "array", "items": {
                               "type": "object",
                               "required": ["unit", "real", "adversarial"]}}}}}}}


def category_table(results) -> str:
  cats = sorted(set(results.concepts.categories))
  head = "".join(f"<th>{html.escape(c)}<br><small>real / adv</small></th>" for c in cats)
  rows = []
  for layer, info in results.layers.items():
    real, adv = info.sets["real"], info.sets["adversarial"]
    cells = "".join(f"<td>{real.detectors_per_category.get(c, 0)} / "
                    f"{adv.detectors_per_category.get(c, 0)}</td>" for c in cats)
    rows.append(f"<tr><td>{html.escape(layer)}</td><td>{info.units}</td>{cells}"
                f"<td>{real.num_detectors} / {adv.num_detectors}</td>"
                f"<td>{real.mean_best_iou:.3f} / {adv.mean_best_iou:.3f}</td>"
                f"<td>{len(info.changed)}</td></tr>")
  return (f"<table><tr><th>layer</th><th>units</th>{head}<th>all detectors</th>"
          f"<th>mean best IoU</th><th>units whose concept changed</th></tr>{''.join(rows)}"
          "</table>")


def changed_list(info) -> str:
  if not info.changed:
    return "<p>No unit changed its concept.</p>"
  items = "".join(
      f"<li>#{c.unit}: {html.escape(str(c.real or 'none'))} ({c.iou_real:.3f}) &rarr; "
      f"{html.escape(str(c.adversarial or 'none'))} ({c.iou_adversarial:.3f})</li>"
      for c in info.changed)
  return f"<ul>{items}</ul>"


def _ceiling(results) -> str:
  """How high IoU can go: a unit firing on ~(1 - quantile) of the positions reaches at most
  that share / the concept's pixel share, on a concept larger than that."""
  c, q = results.concepts, 1 - results.settings["quantile"]
  parts = []
  for cat in sorted(set(c.categories)):
    shares = [s for s, k in zip(c.pixel_share, c.categories) if k == cat and s > 0]
    if shares:
      median = sorted(shares)[len(shares) // 2]
      parts.append(f"{cat}: median pixel share {median:.3f}, IoU at most "
                   f"~{min(1.0, q / median if median > q else median / q):.3f}")
  if not parts:
    return ""
  return ("A unit fires on about " + f"{q:.1%}" + " of the positions, so its IoU with a "
          "concept covering a larger share of the pixels cannot exceed their ratio; "
          "per category, " + "; ".join(parts) + ".")


def write(results, ious: dict, tiles, out_dir: str, title: str = "") -> str:
  """Validates a DissectionResults and writes results.json, iou.npz, figures/ and
  index.html; returns the page."""
  fig_dir = save_results(results, SCHEMA, out_dir)
  np.savez_compressed(os.path.join(out_dir, "iou.npz"), **ious)
  figures.detector_counts(results, os.path.join(fig_dir, "detectors.png"))
  sections = []
  for layer, info in results.layers.items():
    shown = [t for t in tiles if t.layer == layer]
    img = ""
    if shown:
      name = f"units_{layer}.png"
      figures.unit_overlays(shown, os.path.join(fig_dir, name))
      img = (f"<p class='note'>{len(shown)} units: those whose concept changed first, then "
             f"the best real-image detectors.</p><img src='figures/{name}' class='grid'>")
    sections.append(f"<section><h3>{html.escape(layer)}</h3>"
                    f"<h4>Units whose concept changed (real &rarr; adversarial, IoU)</h4>"
                    f"{changed_list(info)}{img}</section>")
  s = results.settings
  attack = s["attack"] if isinstance(s["attack"], str) else (
      f"{s['attack']['name']}, eps {s['attack']['eps']:.4f}")
  body = f"""<h1>Network dissection {html.escape(title)}</h1>
<p>Probe set <code>{html.escape(s['probe'])}</code>, {s['num_images']} images; adversarial
versions: {html.escape(attack)}.</p>
<p class="note">Each unit's threshold T<sub>n</sub> is the top {100 * (1 - s['quantile']):.1f}%
quantile of its activations over every position of the real probe images (read off a
{s['bins']}-bin histogram; results.json gives each unit's error bound). Its activation map,
upsampled to the masks, marks where it fires; IoU(unit, concept) is the overlap with the
concept's pixels summed over the probe set. A unit is a detector of its best concept when
that IoU exceeds {s['iou_threshold']}. Adversarial images are thresholded with the real
images' T<sub>n</sub>, so a changed concept means the unit fires elsewhere, not that its
scale moved.</p>
<p class="note">{html.escape(_ceiling(results))}</p>
<h2>Detectors per concept category, real / adversarial</h2>
{category_table(results)}
<img src="figures/detectors.png">
<h2>Layers</h2>
{''.join(sections)}
"""
  return write_page(out_dir, f"Dissection {title}", body)
