"""matplotlib figures of the analysis, saved as PNG files (Agg: no display needed)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

REAL, ADV, MIXED, BYPRED = "#1f77b4", "#d62728", "#7f7f7f", "#ff7f0e"


SET_STYLE = (("real", REAL, "real"), ("adversarial", ADV, "adversarial"),
             ("mixed", MIXED, "real + adversarial"),
             ("adversarial_by_prediction", BYPRED, "adversarial, by predicted class"),
             ("successful", "#9467bd", "successful attacks only"),
             ("shared", "#8c564b", "shared adversarial set"))


def layer_summary(layers: dict, path: str) -> None:
  """Mean consistency per layer (name -> LayerResult) on each set (solid), beside its
  chance level (dotted)."""
  names = list(layers)
  x = np.arange(len(names))
  fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(names) + 3), 3.8))
  for name, colour, label in SET_STYLE:
    sets = [layers[l].sets.get(name) for l in names]
    if any(s is None for s in sets):
      continue
    ax.plot(x, [_nan(s.mean) for s in sets], "o-", color=colour, label=label)
    ax.plot(x, [_nan(s.chance.mean) for s in sets], ":", color=colour, lw=1)
  ax.plot([], [], "k:", lw=1, label="chance level (same colour)")
  ax.set_xticks(x, names)
  ax.set_ylim(0, 1.02)
  ax.set_ylabel("mean consistency")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _nan(v):
  return np.nan if v is None else v


def layer_histogram(layer: str, info, path: str) -> None:
  """Distribution of consis(n) over the neurons of a LayerResult included in each set,
  real against adversarial."""
  fig, ax = plt.subplots(figsize=(4.2, 3.0))
  bins = np.linspace(0, 1, 21)
  for name, colour in (("real", REAL), ("adversarial", ADV)):
    s = info.sets[name]
    scores = np.asarray(s.per_neuron, float)[np.asarray(s.included, bool)]
    ax.hist(scores, bins=bins, color=colour, alpha=0.55,
            label=f"{name}: {scores.size} neurons, mean {np.mean(scores) if scores.size else 0:.2f}")
  ax.axvline(_nan(info.sets["real"].chance.mean), color="k", ls="--", lw=1, label="chance")
  ax.set_title(f"{layer}: {info.num_neurons} neurons", fontsize=10)
  ax.set_xlabel("consistency")
  ax.set_ylabel("neurons")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def eps_curves(curves: dict, path: str, colours: dict | None = None, norm: str = "linf") -> None:
  """Consistency on adversarial images (left) and accuracy (right) against eps, per model.

  curves: {model name: an EpsCurve (a run's, or a reproduction's means over seeds)}.
  The consistency drawn is the paired mean, over the neurons included at every
  eps (dotted: over the neurons included at each eps).
  """
  fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.0))
  for i, (name, curve) in enumerate(curves.items()):
    points = curve.points
    eps = [p.eps * (255 if norm == "linf" else 1) for p in points]
    colour = (colours or {}).get(name, f"C{i}")
    axes[0].plot(eps, [_nan(p.paired_mean) for p in points], "o-", color=colour,
                 label=f"{name} ({curve.num_paired:.0f} neurons)")
    axes[0].plot(eps, [_nan(p.mean) for p in points], ":", color=colour, lw=1)
    axes[1].plot(eps, [p.accuracy for p in points], "o-", color=colour, label=name)
  layer = next(iter(curves.values())).layer
  axes[0].set_title(f"{layer}: consistency on adversarial images", fontsize=10)
  axes[1].set_title("accuracy under the attack", fontsize=10)
  for ax in axes:
    ax.set_xlabel("eps (x 1/255)" if norm == "linf" else f"eps ({norm})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  axes[1].set_ylim(0, 1)
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
  t = real_images.shape[1]
  _mosaic([np.concatenate([r, a]) for r, a in zip(real_images, adv_images)], rows, path,
          [list(r) + list(a) for r, a in zip(real_captions, adv_captions)],
          frames=[REAL] * t + [ADV] * t,
          groups=(("top real images", REAL),
                  ("top adversarial images (true -> predicted)", ADV)))


def _mosaic(rows: list, titles: list, path: str, tile_captions=None, header: str = "",
            frames=None, groups=()) -> None:
  """Rows of equally sized tiles [T, H, W, C] pasted into one image, a title per row.

  The tiles are pasted into one canvas drawn on a single axes: a subplot per
  tile made each grid slow to draw (matplotlib builds every axes in full).
  frames: a colour per column, drawn around its tiles. groups: (header, colour)
  per equal share of the columns, with a gap between shares (real | adversarial).
  """
  h, w = rows[0].shape[1:3]
  frame, caption, gap = 2, 12, 14
  width = max(len(r) for r in rows)
  if groups and width % len(groups):
    raise ValueError(f"{width} columns do not split into {len(groups)} equal groups")
  share = width // max(len(groups), 1)
  cell_w, cell_h = w + 2 * frame + 4, h + 2 * frame + caption
  canvas = np.ones((len(rows) * cell_h, width * cell_w + gap * max(len(groups) - 1, 0), 3),
                   np.float32)
  inch = 0.95 / cell_w                          # a tile cell is ~1 inch wide
  left, top = 1.6, 0.3 if header or groups else 0.05
  fig_w, fig_h = canvas.shape[1] * inch, canvas.shape[0] * inch
  fig = plt.figure(figsize=(fig_w + left, fig_h + top))
  ax = fig.add_axes((left / (fig_w + left), 0, fig_w / (fig_w + left), fig_h / (fig_h + top)))
  for i, row in enumerate(rows):
    for j, img in enumerate(row):
      x0, y0 = j * cell_w + (j // share) * gap, i * cell_h + caption  # no groups: 0
      if frames is not None:
        canvas[y0:y0 + h + 2 * frame, x0:x0 + w + 2 * frame] = matplotlib.colors.to_rgb(
            frames[j])
      canvas[y0 + frame:y0 + frame + h, x0 + frame:x0 + frame + w] = img  # grey broadcasts
      if tile_captions is not None and j < len(tile_captions[i]):
        ax.text(x0 + frame + w / 2, y0 - 1, tile_captions[i][j], fontsize=6, ha="center",
                va="bottom")
    ax.text(-3, i * cell_h + caption + frame + h / 2, titles[i], fontsize=7, ha="right",
            va="center")
  ax.imshow(canvas, interpolation="nearest")
  ax.set_axis_off()
  if header:
    fig.text(0.5, 0.995, header, ha="center", va="top", fontsize=9)
  for g, (text, colour) in enumerate(groups):  # each header centred over its share
    middle = (g * share * cell_w + g * gap + share * cell_w / 2) * inch
    fig.text((left + middle) / (fig_w + left), 0.995, text, color=colour, ha="center",
             va="top", fontsize=9)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _resize_mask(mask: np.ndarray, shape) -> np.ndarray:
  """Nearest-neighbour resize of [T, h, w] bool masks to the images' [H, W]."""
  t, h, w = mask.shape
  rows = (np.arange(shape[0]) * h) // shape[0]
  cols = (np.arange(shape[1]) * w) // shape[1]
  return mask[:, rows][:, :, cols]


def overlay(images: np.ndarray, fired: np.ndarray, concept: np.ndarray | None = None):
  """Images [T, H, W, 3] with where the unit fires tinted red and the concept's outline green."""
  fired = _resize_mask(fired, images.shape[1:3])[..., None]
  # Where it fires: the image under a strong red tint; elsewhere the image faded to grey.
  grey = images.mean(-1, keepdims=True)
  out = np.where(fired, 0.35 * images + 0.65 * np.array([1.0, 0.05, 0.05]),
                 0.25 * images + 0.35 * grey + 0.3)
  if concept is not None and concept.any():
    c = _resize_mask(concept, images.shape[1:3])
    inner = c.copy()
    inner[:, 1:-1, 1:-1] = c[:, 1:-1, 1:-1] & c[:, :-2, 1:-1] & c[:, 2:, 1:-1] & c[:, 1:-1, :-2] \
        & c[:, 1:-1, 2:]
    out = np.where((c & ~inner)[..., None], np.array([0.1, 0.9, 0.2]), out)
  return out.astype(np.float32)


def unit_overlays(units, path: str) -> None:
  """Per unit two rows: its top probe images with where it fires (red) and its concept's
  outline (green), then the same images' adversarial versions with where it fires there."""
  rows, titles = [], []
  for u in units:
    rows.append(overlay(u.real, u.real_fired, u.concept_mask))
    rows.append(overlay(u.adversarial, u.adversarial_fired, u.concept_mask))
    titles += [f"{u.layer} #{u.unit}\nreal: {u.real_label.replace(' (', chr(10) + '(')}",
               f"adversarial:\n{u.adversarial_label.replace(' (', chr(10) + '(')}"]
  _mosaic(rows, titles, path, header="red: where the unit fires (> T_n); green: its "
          "real-image concept")


def detector_counts(results, path: str) -> None:
  """Detectors per concept category and layer of a DissectionResults, real (solid) against
  adversarial (hatched)."""
  layers = list(results.layers)
  cats = sorted(set(results.concepts.categories))
  fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(layers) * len(cats) / 2), 3.2))
  width = 0.8 / (2 * len(cats))
  colours = plt.get_cmap("tab10")
  for c, cat in enumerate(cats):
    for s, (name, hatch) in enumerate((("real", ""), ("adversarial", "//"))):
      xs = np.arange(len(layers)) + (2 * c + s - len(cats) + 0.5) * width
      ys = [results.layers[l].sets[name].detectors_per_category.get(cat, 0) for l in layers]
      ax.bar(xs, ys, width, color=colours(c), hatch=hatch, edgecolor="white" if not hatch
             else "black", label=f"{cat}, {name}")
  ax.set_xticks(np.arange(len(layers)), layers)
  ax.set_ylabel("detectors (IoU > threshold)")
  ax.legend(fontsize=7, ncol=len(cats))
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def roc_curves(attacks: dict, path: str) -> None:
  """The detector's ROC curve per attack (name -> DetectionEntry; clean images negative,
  adversarial positive)."""
  fig, ax = plt.subplots(figsize=(4, 4))
  for name, entry in attacks.items():
    ax.plot(entry.roc.fpr, entry.roc.tpr, label=f"{name} (AUC {entry.auc:.3f})")
  ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
  ax.set_xlabel("false positive rate (clean flagged)")
  ax.set_ylabel("true positive rate (adversarial flagged)")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def explained(example, path: str) -> None:
  """An image and, per influential neuron, its PD and its top analysed images."""
  rows = [example.image[None]] + [t for t in example.tiles]
  titles = ["input"] + [
      f"#{n.neuron} PD {n.pd:.3f}\nconsis {_fmt_num(n.consistency)}"
      f"\n{n.concept or n.profile_class}" for n in example.neurons]
  captions = [[""]] + list(example.captions)
  _mosaic(rows, titles, path, captions)


def _fmt_num(v):
  return "n/a" if v is None else f"{v:.2f}"
