"""matplotlib figures of the analysis, saved as PNG files (Agg: no display needed)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

REAL, ADV, MIXED, BYPRED = "#1f77b4", "#d62728", "#7f7f7f", "#ff7f0e"


def layer_summary(results: dict, path: str) -> None:
  """Mean consistency per layer on each set, beside the chance baseline."""
  layers = list(results["layers"])
  x = np.arange(len(layers))
  fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(layers) + 2), 3.6))
  for name, colour, label in (("real", REAL, "real"), ("adversarial", ADV, "adversarial"),
                              ("mixed", MIXED, "real + adversarial"),
                              ("adversarial_by_prediction", BYPRED,
                               "adversarial, by predicted class")):
    ax.plot(x, [results["layers"][l]["sets"][name]["mean"] for l in layers], "o-",
            color=colour, label=label)
  ax.plot(x, [results["layers"][l]["chance"]["mean"] for l in layers], "k--", label="chance")
  ax.set_xticks(x, layers)
  ax.set_ylim(0, 1.02)
  ax.set_ylabel("mean consistency")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc="best")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def layer_histogram(layer: str, info: dict, path: str) -> None:
  """Distribution of consis(n) over a layer's live neurons, real against adversarial."""
  alive = np.asarray(info["alive"], bool)
  fig, ax = plt.subplots(figsize=(4.2, 3.0))
  bins = np.linspace(0, 1, 21)
  for name, colour in (("real", REAL), ("adversarial", ADV)):
    scores = np.asarray(info["sets"][name]["per_neuron"])[alive]
    ax.hist(scores, bins=bins, color=colour, alpha=0.55, label=f"{name} (mean {scores.mean():.2f})")
  ax.axvline(info["chance"]["mean"], color="k", ls="--", lw=1, label="chance")
  ax.set_title(f"{layer}: {int(alive.sum())} live neurons", fontsize=10)
  ax.set_xlabel("consistency")
  ax.set_ylabel("neurons")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def neuron_grid(rows, real_images, adv_images, real_captions, adv_captions, path: str) -> None:
  """One row per neuron: its top real images, then its top adversarial images.

  Args:
    rows: row titles, one per neuron.
    real_images, adv_images: [neurons, tiles, H, W, C] floats in [0, 1].
    real_captions, adv_captions: [neurons][tiles] strings.
  """
  n, t = len(rows), real_images.shape[1]
  fig, axes = plt.subplots(n, 2 * t, figsize=(1.05 * 2 * t, 1.35 * n + 0.4), squeeze=False)
  for i in range(n):
    for j in range(2 * t):
      ax = axes[i, j]
      adv = j >= t
      img = (adv_images if adv else real_images)[i, j % t]
      ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
      ax.set_xticks([])
      ax.set_yticks([])
      for side in ax.spines.values():
        side.set_color(ADV if adv else REAL)
        side.set_linewidth(2)
      ax.set_title((adv_captions if adv else real_captions)[i][j % t], fontsize=6, pad=2)
    axes[i, 0].set_ylabel(rows[i], fontsize=7, rotation=0, ha="right", va="center")
  fig.text(0.3, 0.995, "top real images", color=REAL, ha="center", va="top", fontsize=9)
  fig.text(0.75, 0.995, "top adversarial images (true -> predicted)", color=ADV, ha="center",
           va="top", fontsize=9)
  fig.tight_layout(rect=(0, 0, 1, 0.97))
  fig.savefig(path, dpi=100)
  plt.close(fig)
