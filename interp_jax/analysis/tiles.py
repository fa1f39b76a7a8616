"""The images the report shows: per layer, a few chosen neurons with their top images.

    grids = neuron_grids(results, source, labels, predicted_adv, adversarial_of, class_names)

Computed here, with the analysis, so the report only draws: it never calls JAX.
"""

import dataclasses

import numpy as np

# (group, title, order): neurons are ranked by order(real scores, adversarial scores), ascending.
GROUPS = (
    ("most_consistent", "Most consistent on real images", lambda real, adv: -real),
    ("least_consistent", "Least consistent on real images", lambda real, adv: real),
    ("largest_drop", "Largest drop from real to adversarial images", lambda real, adv: adv - real),
)


@dataclasses.dataclass
class NeuronGrid:
  """One figure: a row per neuron, its top real images, then its top adversarial ones."""
  layer: str
  group: str
  title: str
  rows: list                  # a title per neuron
  real: np.ndarray            # [neurons, tiles, H, W, C] float32 in [0, 1]
  adversarial: np.ndarray     # the same shape
  real_captions: list         # [neurons][tiles] strings
  adversarial_captions: list


def choose(info, order, count: int) -> list[int]:
  """The `count` neurons of a LayerResult first in `order` among those included in
  both real and adversarial sets (ties: the lower index)."""
  real, adv = info.sets["real"], info.sets["adversarial"]
  both = np.flatnonzero(np.asarray(real.included) & np.asarray(adv.included))
  keys = order(np.asarray(real.per_neuron, float), np.asarray(adv.per_neuron, float))
  return [int(both[i]) for i in np.argsort(keys[both], kind="stable")[:count]]


def neuron_grids(results, source, labels, predicted_adv, adversarial_of, class_names,
                 tiles: int = 8, count: int = 4) -> list[NeuronGrid]:
  """The grids of every layer and group of an AnalysisResults.

  Args:
    adversarial_of: ids [m] -> the analysed adversarial images [m, H, W, C] in [0, 1].
  """
  tiles = min(tiles, results.settings["k"])
  chosen = {(layer, group): choose(info, order, count)
            for layer, info in results.layers.items() for group, _, order in GROUPS}
  top = lambda layer, which, n: results.layers[layer].sets[which].topk_indices[n][:tiles]
  needed = sorted({i for (layer, _), ns in chosen.items() for n in ns
                   for i in top(layer, "adversarial", n)})
  cache = dict(zip(needed, adversarial_of(np.array(needed, np.int64)))) if needed else {}
  out = []
  for (layer, group), neurons in chosen.items():
    if not neurons:
      continue
    sets = results.layers[layer].sets
    real_ids = [top(layer, "real", n) for n in neurons]
    adv_ids = [top(layer, "adversarial", n) for n in neurons]
    real = source.get(np.concatenate(real_ids))["image"].astype(np.float32) / 255.0
    adv = np.stack([cache[i] for i in np.concatenate(adv_ids)])
    shape = (len(neurons), tiles) + real.shape[1:]
    out.append(NeuronGrid(
        layer, group, dict((g, t) for g, t, _ in GROUPS)[group],
        [f"#{n}\nreal {sets['real'].per_neuron[n]:.2f}\n"
         f"adv {sets['adversarial'].per_neuron[n]:.2f}" for n in neurons],
        real.reshape(shape), adv.reshape(shape),
        [[class_names[labels[i]] for i in ids] for ids in real_ids],
        [[f"{class_names[labels[i]]}->{class_names[predicted_adv[i]]}" for i in ids]
         for ids in adv_ids]))
  return out
