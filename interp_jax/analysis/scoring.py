"""Score: from the extracted top-k lists, each set's consistency, chance level and controls.

    scored = score(extracted, plan, k=50, key=jax.random.key(0), draws=200)
    scored.layers["fc1"].sets["adversarial"].mean      # results.py's types

A neuron enters a set's statistics only where its top-k on that set is well
defined (consistency.topk_is_defined): the ones that fire on fewer than k
images of the set, or tie at the k-th place, are excluded and counted, per
set, so a neuron silent on real images but fired by adversarial ones counts
in the adversarial set. Each set's chance level comes from the labels that
set is scored with (the predicted classes for adversarial_by_prediction).
Comparisons of two sets of one model use the neurons included in both.
"""

import jax
import jax.numpy as jnp
import numpy as np

from interp_jax.analysis import results as R
from interp_jax.measures import consistency

SETS = ("real", "adversarial", "mixed", "adversarial_by_prediction", "successful", "shared")
# Pairs of sets compared neuron by neuron, over the neurons included in both.
COMPARISONS = (("real", "adversarial"), ("real", "successful"), ("real", "shared"))
HIST_BINS = 20


def _none_if_nan(v: float):
  return None if v is None or not np.isfinite(v) else float(v)


def _stats(scores: np.ndarray, included: np.ndarray) -> dict:
  live = scores[included]
  return {"mean": float(live.mean()) if live.size else None,
          "median": float(np.median(live)) if live.size else None}


def _per_neuron(scores: np.ndarray, included: np.ndarray) -> tuple:
  return tuple(round(float(s), 6) if ok else None for s, ok in zip(scores, included))


def _chance(mean_std) -> R.Chance:
  return R.Chance(*(_none_if_nan(v) for v in mean_std))


def score_set(topk, labels_by_id: np.ndarray, chances: dict, matrices: dict, main: str,
              k: int) -> tuple[R.SetScore, np.ndarray]:
  """One set of one layer: (its SetScore, the unrounded score of each neuron).

  Args:
    topk: a consistency.TopK of k + 1 slots.
    labels_by_id: the label each image id of the set is scored with.
    chances: similarity name -> (mean, std) of the set's chance level.
    matrices: similarity name -> [C, C]; `main` is reported at the top level,
      "identity" (class purity) under `purity`.
  """
  values, ids = np.asarray(topk.values), np.asarray(topk.indices)
  included = np.asarray(consistency.topk_is_defined(values, k))
  # Left out because it fires on fewer than k images (ties at 0) or the set has at
  # most k images; the rest tie above zero at the k-th place.
  fewer = ~included & ((values[:, k - 1] <= 0) | ~np.isfinite(values[:, k]))
  top = np.where(np.isfinite(values[:, :k]), ids[:, :k], 0)
  scores, purity = (np.asarray(consistency.neuron_consistency(jnp.asarray(labels_by_id[top]),
                                                              matrices[name]))
                    for name in (main, "identity"))
  counts, edges = np.histogram(scores[included], bins=HIST_BINS, range=(0.0, 1.0))
  return R.SetScore(
      included=tuple(included.tolist()), num_included=int(included.sum()),
      excluded=R.Excluded(fewer_than_k=int(fewer.sum()), tied=int((~included & ~fewer).sum())),
      **_stats(scores, included),
      histogram=R.Histogram(tuple(edges.round(6).tolist()), tuple(counts.tolist())),
      per_neuron=_per_neuron(scores, included),
      topk_indices=tuple(tuple(row[np.isfinite(v)].tolist())
                         for row, v in zip(ids[:, :k], values[:, :k])),
      chance=_chance(chances[main]),
      purity=R.Purity(**_stats(purity, included), per_neuron=_per_neuron(purity, included),
                      chance=_chance(chances["identity"]))), scores


def _paired(a: R.SetScore, b: R.SetScore, scores_a, scores_b, other: str) -> R.Comparison:
  both = np.asarray(a.included) & np.asarray(b.included)
  return R.Comparison(num_neurons=int(both.sum()),
                      real=float(scores_a[both].mean()) if both.any() else None,
                      other=float(scores_b[both].mean()) if both.any() else None,
                      other_set=other)


def _overlap(real: R.SetScore, adv: R.SetScore, k: int) -> R.TopkOverlap:
  """|T_k(real) & sources(T_k(adv))| / k per neuron, over the neurons included in both."""
  both = np.asarray(real.included) & np.asarray(adv.included)
  overlap = np.array([len(set(r) & set(a)) / k
                      for r, a in zip(real.topk_indices, adv.topk_indices)])
  return R.TopkOverlap(mean=float(overlap[both].mean()) if both.any() else None,
                       num_neurons=int(both.sum()), per_neuron=_per_neuron(overlap, both))


def _set_labels(ex) -> dict:
  """Per set: (label of each image id, the labels its chance level is drawn from)."""
  labels, pred_adv = ex.labels, ex.predicted["adversarial"]
  out = {"real": (labels, labels), "adversarial": (labels, labels),
         "mixed": (np.concatenate([labels, labels]),) * 2,
         "adversarial_by_prediction": (pred_adv, pred_adv),
         "successful": (labels, labels[ex.successful])}
  if "shared" in ex.predicted:
    out["shared"] = (labels, labels)
  return out


def _tally_of(set_name: str) -> str:
  return "adversarial" if set_name == "adversarial_by_prediction" else set_name


def score(ex, plan, *, k: int, key, draws: int, sets=None) -> R.Scored:
  """The layers, accuracy and attack success of an Extracted; see results.py.

  sets: score only these sets (the eps curve needs "adversarial" alone); each
  set's chance key is the same whichever sets are scored beside it.
  """
  set_labels = _set_labels(ex)
  keys = {s: jax.random.fold_in(key, i) for i, s in enumerate(set_labels)}
  if sets is not None:
    set_labels = {s: v for s, v in set_labels.items() if s in sets}
  chances = {s: {name: consistency.chance_consistency(jnp.asarray(drawn), k, a, keys[s], draws)
                 for name, a in plan.matrices.items()}
             for s, (_, drawn) in set_labels.items()}
  layers = {}
  for layer, tallies in ex.tallies.items():
    scored = {s: score_set(tallies[_tally_of(s)], by_id, chances[s], plan.matrices,
                           plan.similarity, k) for s, (by_id, _) in set_labels.items()}
    sets = {s: set_score for s, (set_score, _) in scored.items()}
    layers[layer] = R.LayerResult(
        num_neurons=len(next(iter(sets.values())).included),
        sets=sets,
        comparisons={f"{a}_vs_{b}": _paired(sets[a], sets[b], scored[a][1], scored[b][1], b)
                     for a, b in COMPARISONS if a in sets and b in sets},
        # Summed in sorted order: the mean does not depend on the order of the split.
        feature_cosine=float(np.sort(ex.cosine[layer]).astype(np.float64).mean()),
        topk_overlap=(_overlap(sets["real"], sets["adversarial"], k)
                      if "real" in sets and "adversarial" in sets else None))
  success = ex.successful
  accuracy = {s: float(np.mean(p == ex.labels)) for s, p in ex.predicted.items()}
  return R.Scored(
      layers=layers,
      accuracy=R.Accuracy(clean=accuracy["real"], adversarial=accuracy["adversarial"],
                          shared=accuracy.get("shared")),
      attack=R.Attack(success_rate=float(success.mean()), num_successful=int(success.sum()),
                      turned_wrong=turned_wrong(ex.labels, ex.predicted["real"],
                                                ex.predicted["adversarial"])))


def turned_wrong(labels, clean, adversarial):
  """Of the images classified correctly, the share whose adversarial version is classified
  wrongly: the attack's success rate on what it can break (None when none is correct)."""
  right = np.asarray(clean) == np.asarray(labels)
  if not right.any():
    return None
  return float(np.mean(np.asarray(adversarial)[right] != np.asarray(labels)[right]))
