"""The static HTML report of one analysis: DIR/analysis/index.html and its figures.

    write_report(results, images, "runs/standard/analysis")

Every figure the page references is written next to it under figures/, so the
folder can be copied or served as it is.
"""

import html
import json
import os

import numpy as np

from interp_jax.report import figures

GROUPS = (
    ("most_consistent", "Most consistent on real images",
     lambda s: -np.asarray(s["real"]["per_neuron"])),
    ("least_consistent", "Least consistent on real images",
     lambda s: np.asarray(s["real"]["per_neuron"])),
    ("largest_drop", "Largest drop from real to adversarial images",
     lambda s: np.asarray(s["adversarial"]["per_neuron"]) - np.asarray(s["real"]["per_neuron"])),
)


def _fmt(v, digits=3):
  return "n/a" if v is None else f"{v:.{digits}f}"


def _select(info: dict, order_key, count: int) -> list[int]:
  """The `count` live neurons first in order_key's order (ties: lower index)."""
  alive = np.flatnonzero(np.asarray(info["alive"], bool))
  keys = order_key(info["sets"])[alive]
  return [int(alive[i]) for i in np.argsort(keys, kind="stable")[:count]]


def _grid(info, neurons, images, adv_cache, tiles, path) -> None:
  names = images.class_names
  real_ids = [info["sets"]["real"]["topk_indices"][n][:tiles] for n in neurons]
  adv_ids = [info["sets"]["adversarial"]["topk_indices"][n][:tiles] for n in neurons]
  flat_real = np.concatenate(real_ids)
  real = images.source.get(flat_real)["image"].astype(np.float32) / 255.0
  adv = np.stack([adv_cache[i] for i in np.concatenate(adv_ids)])
  shape = (len(neurons), tiles) + real.shape[1:]
  real_caps = [[names[images.labels[i]] for i in ids] for ids in real_ids]
  adv_caps = [[f"{names[images.labels[i]]}->{names[images.predicted_adv[i]]}" for i in ids]
              for ids in adv_ids]
  rows = [f"#{n}\nreal {info['sets']['real']['per_neuron'][n]:.2f}\n"
          f"adv {info['sets']['adversarial']['per_neuron'][n]:.2f}" for n in neurons]
  figures.neuron_grid(rows, real.reshape(shape), adv.reshape(shape), real_caps, adv_caps, path)


def write_report(results: dict, images, out_dir: str, tiles: int = 8,
                 neurons_per_group: int = 4) -> str:
  """Writes index.html and figures/ into out_dir; returns the page's path."""
  fig_dir = os.path.join(out_dir, "figures")
  os.makedirs(fig_dir, exist_ok=True)
  layers = results["layers"]
  tiles = min(tiles, results["settings"]["k"])
  figures.layer_summary(results, os.path.join(fig_dir, "summary.png"))
  chosen = {(layer, group): _select(info, order_key, neurons_per_group)
            for layer, info in layers.items() for group, _, order_key in GROUPS}
  # Redo the attack once for every adversarial image any grid shows.
  needed = sorted({i for (layer, _), neurons in chosen.items() for n in neurons
                   for i in layers[layer]["sets"]["adversarial"]["topk_indices"][n][:tiles]})
  adv_cache = dict(zip(needed, images.adversarial(np.array(needed, np.int64))))
  parts = []
  for layer, info in layers.items():
    figures.layer_histogram(layer, info, os.path.join(fig_dir, f"hist_{layer}.png"))
    grids = []
    for group, title, _ in GROUPS:
      neurons = chosen[(layer, group)]
      if not neurons:
        continue
      name = f"grid_{layer}_{group}.png"
      _grid(info, neurons, images, adv_cache, tiles, os.path.join(fig_dir, name))
      grids.append(f"<h4>{html.escape(title)}</h4><img src='figures/{name}' class='grid'>")
    parts.append(
        f"<section><h3>{html.escape(layer)}</h3>"
        f"<img src='figures/hist_{layer}.png' class='hist'>{''.join(grids)}</section>")

  rows = "".join(
      f"<tr><td>{html.escape(l)}</td><td>{i['num_alive']} / {i['num_neurons']}</td>"
      + "".join(f"<td>{_fmt(i['sets'][s]['mean'])}</td>"
                for s in ("real", "adversarial", "mixed", "adversarial_by_prediction"))
      + f"<td>{_fmt(i['chance']['mean'])} &plusmn; {_fmt(i['chance']['std'])}</td>"
      f"<td>{_fmt(i['topk_overlap']['mean'])}</td><td>{_fmt(i['feature_cosine'])}</td></tr>"
      for l, i in layers.items())
  s, run, acc = results["settings"], results["run"], results["accuracy"]
  page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Neuron consistency: {html.escape(run['model'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
img.grid {{ max-width: 100%; }} img.hist {{ width: 420px; }}
.note {{ color: #555; font-size: 0.92em; max-width: 60em; }}
section {{ border-top: 1px solid #ddd; margin-top: 1.5em; }}
</style></head><body>
<h1>Neuron consistency of {html.escape(run['model'])} on {html.escape(run['dataset'])}</h1>
<p>Checkpoint step {run['checkpoint_step']} of <code>{html.escape(run['workdir'])}</code>.
{s['num_images']} test images; attack {html.escape(s['attack'])} ({html.escape(s['norm'])},
eps = {s['eps']:.4f}, {s['steps']} steps); top-{s['k']} images per neuron;
class similarity: {html.escape(s['similarity'])}; activation: spatial {html.escape(s['activation'])}.</p>
<p><b>Accuracy</b>: clean {acc['clean']:.3f}, under attack {acc['adversarial']:.3f}.</p>
<h2>Consistency per layer</h2>
<p class="note">consis(n) = p<sup>T</sup>Ap, where p is the label histogram of the k images
that excite neuron n most: 1 when they share one class. Adversarial images are labelled
with the class of their clean source (what a person sees); the last consistency column
labels them with the class the model now predicts. Means are over live neurons (those
that fire on some real image). Overlap: the share of a neuron's top real images whose
adversarial versions stay in its top images. Cosine: mean cosine similarity of the
layer's features of an image and of its adversarial version.</p>
<table><tr><th>layer</th><th>live</th><th>real</th><th>adversarial</th><th>real + adv</th>
<th>adv, by prediction</th><th>chance</th><th>top-k overlap</th><th>feature cosine</th></tr>
{rows}</table>
<img src="figures/summary.png">
<h2>Layers</h2>
<p class="note">Each grid row is one neuron (its index, and its consistency on real and
adversarial images): first its top real images with their classes, then its top
adversarial images with their true class and the class the model predicts.</p>
{''.join(parts)}
</body></html>
"""
  path = os.path.join(out_dir, "index.html")
  with open(path, "w") as f:
    f.write(page)
  return path


def save_analysis(results: dict, images, out_dir: str, tiles: int, neurons_per_group: int) -> str:
  """Validates results, writes out_dir/results.json and the page; returns the page's path."""
  from interp_jax.report.schema import validate
  validate(results)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "results.json"), "w") as f:
    json.dump(results, f)
  return write_report(results, images, out_dir, tiles, neurons_per_group)
