"""The reproduction's page: DIR/report/index.html, summary.json and figures/.

The three models side by side: a table each, their consistency histograms
overlaid per layer, the top-image grids of each model's decisive layer, and
the computed statement of every finding.
"""

import html
import json
import os
import shutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLOURS = {"standard": "#1f77b4", "adv": "#2ca02c", "adv_consistent": "#d62728"}


def _histograms(layer: str, results: dict, path: str) -> None:
  """Per layer: real and adversarial panels, the three models overlaid."""
  fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.0), sharey=True)
  bins = np.linspace(0, 1, 21)
  for ax, which in zip(axes, ("real", "adversarial")):
    for variant, res in results.items():
      info = res["layers"][layer]
      scores = np.asarray(info["sets"][which]["per_neuron"])[np.asarray(info["alive"], bool)]
      ax.hist(scores, bins=bins, histtype="step", lw=2, color=COLOURS[variant],
              label=f"{variant} ({scores.mean():.2f})")
    ax.axvline(next(iter(results.values()))["layers"][layer]["chance"]["mean"], color="k",
               ls="--", lw=1, label="chance")
    ax.set_title(f"{layer}: {which} images", fontsize=10)
    ax.set_xlabel("consistency")
    ax.legend(fontsize=7)
  axes[0].set_ylabel("neurons")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _accuracy(summary: dict, path: str) -> None:
  fig, ax = plt.subplots(figsize=(5.2, 3.0))
  kinds = ("clean", "fgsm", "pgd")
  x = np.arange(len(kinds))
  for i, (variant, m) in enumerate(summary["models"].items()):
    ax.bar(x + (i - 1) * 0.27, [m[k] for k in kinds], 0.27, yerr=[m[f"{k}_std"] for k in kinds],
           color=COLOURS[variant], label=variant)
  ax.set_xticks(x, ["clean", "under FGSM", "under PGD"])
  ax.set_ylim(0, 1)
  ax.set_ylabel("test accuracy")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _table(variant: str, m: dict, out_dir: str, spread: bool) -> str:
  """A model's accuracies and per-layer measures; `spread` adds +/- one sd over seeds."""
  def cell(mean, sd):
    return f"{mean:.3f}" + (f" &plusmn; {sd:.3f}" if spread else "")

  rows = "".join(
      f"<tr><td>{html.escape(l)}</td>"
      + "".join(f"<td>{cell(i['sets'][s], i['sets_std'][s])}</td>"
                for s in ("real", "adversarial", "mixed", "adversarial_by_prediction"))
      + f"<td>{i['chance_mean']:.3f}</td><td>{i['topk_overlap']:.3f}</td>"
      f"<td>{i['feature_cosine']:.3f}</td></tr>"
      for l, i in m["layers"].items())
  analysis_page = os.path.relpath(os.path.join(m["workdirs"][0], "analysis", "index.html"),
                                  out_dir)
  return (f"<h3 style='color:{COLOURS[variant]}'>{variant}</h3>"
          f"<p>accuracy: clean {cell(m['clean'], m['clean_std'])}, under FGSM "
          f"{cell(m['fgsm'], m['fgsm_std'])}, under PGD {cell(m['pgd'], m['pgd_std'])} &nbsp; "
          f"(<a href='{html.escape(analysis_page)}'>full analysis</a>"
          f"{' of the first seed' if spread else ''})</p>"
          "<table><tr><th>layer</th><th>real</th><th>adversarial</th><th>real + adv</th>"
          "<th>adv, by prediction</th><th>chance</th><th>top-k overlap</th>"
          f"<th>feature cosine</th></tr>{rows}</table>")


def eps_text(eps: float) -> str:
  """4/255 for budgets on the 8-bit grid, else the number."""
  steps = eps * 255
  return f"{round(steps)}/255" if abs(steps - round(steps)) < 1e-6 else f"{eps:.4g}"


def training_text(config: dict) -> str:
  """One sentence on how the three models were trained, from the config."""
  adv, cons = config["adv"], config["consistency"]
  warmup = (f", eps ramped up over {adv['eps_warmup_steps']} steps"
            if adv["eps_warmup_steps"] else "")
  anchor = ", anchored on the clean features" if cons["anchor_clean"] else ""
  return (f"Training: {config['model']['name']} on {config['dataset']['name']}, "
          f"{config['num_train_steps']} steps of batch {config['batch_size']} "
          f"({config['optimizer']['name']}, learning rate {config['optimizer']['learning_rate']:g}). "
          f"adv and adv_consistent train on {adv['attack']} ({adv['steps']} steps, "
          f"eps {eps_text(adv['eps'])}{warmup}); adv_consistent adds lambda = {cons['weight']:g} x "
          f"{cons['distance']} distance at {', '.join(cons['layers'])}{anchor}.")


def write(summary: dict, results: dict, out_dir: str) -> str:
  """Writes summary.json, figures/ and index.html into out_dir; returns the page's path."""
  fig_dir = os.path.join(out_dir, "figures")
  os.makedirs(fig_dir, exist_ok=True)
  with open(os.path.join(out_dir, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  _accuracy(summary, os.path.join(fig_dir, "accuracy.png"))
  layer = summary["layer"]
  hists = []
  for l in next(iter(results.values()))["layers"]:
    _histograms(l, results, os.path.join(fig_dir, f"hist_{l}.png"))
    hists.append(f"<img src='figures/hist_{l}.png'>")
  grids = []
  for variant, m in summary["models"].items():
    src = os.path.join(m["workdirs"][0], "analysis", "figures", f"grid_{layer}_largest_drop.png")
    if os.path.exists(src):
      name = f"grid_{variant}_{layer}.png"
      shutil.copyfile(src, os.path.join(fig_dir, name))
      grids.append(f"<h4 style='color:{COLOURS[variant]}'>{variant}</h4>"
                   f"<img src='figures/{name}' class='grid'>")
  statements = "".join(
      f"<li><b>{html.escape(s['finding'])}: "
      f"<span style='color:{'#2a7' if s['holds'] else '#c33'}'>"
      f"{'holds' if s['holds'] else 'does not hold'}</span></b><br>"
      f"{html.escape(s['evidence'])}</li>" for s in summary["statements"])
  spread = len(summary["seeds"]) > 1
  tables = "".join(_table(v, m, out_dir, spread) for v, m in summary["models"].items())
  page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>interp_jax: the paper's findings</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.2em; }}
td, th {{ border: 1px solid #ccc; padding: 3px 9px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
li {{ margin-bottom: 0.8em; }} img.grid {{ max-width: 100%; }}
.note {{ color: #555; font-size: 0.92em; max-width: 62em; }}
</style></head><body>
<h1>Towards interpretable networks with adversarial examples: the three findings</h1>
<p class="note">Three models of the same config: standard training, adversarial training
(adv) and adversarial training with the consistent loss (adv_consistent), each analysed
with the same attack ({html.escape(str(summary['analysis']['attack']))}, eps =
{eps_text(summary['eps'])}, {summary['analysis']['steps']} steps) and top-{summary['analysis']['k']}
images per neuron; seeds {summary['seeds']}. Findings are read at layer
<b>{html.escape(layer)}</b>, where the consistent loss acts. Statements are computed from the
numbers with fixed criteria (summary.json, "criteria").</p>
<p class="note">{html.escape(training_text(summary['config']))}</p>
<h2>Findings</h2><ol>{statements}</ol>
<h2>Accuracy</h2><img src="figures/accuracy.png">
<h2>Consistency per model</h2>{tables}
<h2>Consistency histograms</h2>{''.join(hists)}
<h2>Neurons whose consistency fell most under attack ({html.escape(layer)})</h2>
<p class="note">Each row: a neuron's top real images, then its top adversarial images
(true class -&gt; predicted class).</p>{''.join(grids)}
</body></html>
"""
  path = os.path.join(out_dir, "index.html")
  with open(path, "w") as f:
    f.write(page)
  return path
