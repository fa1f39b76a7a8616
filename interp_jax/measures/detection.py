"""Detecting adversarial inputs from the neurons a prediction rests on (METHOD.md section 4).

    profile = class_profiles(topk_ids, labels, num_classes)   # [N, K]: each neuron's classes
    score = disagreement(pd, predicted, profile, top=10)      # [B], high = suspicious
    auc = roc_auc(clean_scores, adversarial_scores)           # P(adv scores above clean)
    fpr, tpr, thresholds = roc_curve(clean_scores, adversarial_scores)

A neuron's *profile* is the class histogram of the images it fires on most
(its top-k on real images of a split the detector is not evaluated on). For an
input predicted as class c, the neurons with the highest prediction
difference PD(n, x, c) carry the decision; on a real image they are neurons
of class c, on an adversarial one the attack has pushed c through neurons
whose images are of other classes. The score is

    D(x) = 1 - sum_j w_j profile[n_j, c] / sum_j w_j,   w_j = max(PD(n_j, x, c), 0)

over the `top` neurons n_j; D = 1 when no neuron supports the prediction.
"""

import jax
import jax.numpy as jnp
import numpy as np


def class_profiles(topk_ids: np.ndarray, labels: np.ndarray, num_classes: int,
                   included: np.ndarray | None = None) -> np.ndarray:
  """[N, K]: the label histogram of each neuron's top-k images (uniform where not included)."""
  topk_ids, labels = np.asarray(topk_ids, np.int64), np.asarray(labels)
  counts = np.zeros((len(topk_ids), num_classes), np.float64)
  for n, ids in enumerate(topk_ids):
    ids = ids[(ids >= 0) & (ids < len(labels))]   # empty slots hold an id past the end
    np.add.at(counts[n], labels[ids], 1.0)
  profile = counts / np.maximum(counts.sum(1, keepdims=True), 1.0)
  if included is not None:
    profile[~np.asarray(included, bool)] = 1.0 / num_classes
  return profile


def disagreement(pd, predicted, profile, top: int = 10):
  """D(x) of the module docstring: [B] in [0, 1]."""
  pd, profile = jnp.asarray(pd), jnp.asarray(profile, jnp.float32)
  values, ids = jax.lax.top_k(pd, min(top, pd.shape[1]))
  w = jnp.maximum(values, 0.0)
  agree = profile[ids, jnp.asarray(predicted)[:, None]]          # [B, top]
  total = w.sum(1)
  return jnp.where(total > 0, 1.0 - (w * agree).sum(1) / jnp.where(total > 0, total, 1.0), 1.0)


def roc_auc(negative, positive) -> float:
  """Area under the ROC curve for `positive` scoring above `negative`: the Mann-Whitney
  statistic, ties counted one half (rank-based, O(n log n))."""
  neg, pos = np.asarray(negative, np.float64), np.asarray(positive, np.float64)
  if not len(neg) or not len(pos):
    raise ValueError("roc_auc needs at least one negative and one positive score")
  both = np.concatenate([neg, pos])
  order = np.argsort(both, kind="stable")
  ranks = np.empty(len(both), np.float64)
  sorted_scores = both[order]
  # Tied scores share the mean of their 1-based ranks s + 1 .. e.
  start = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
  end = np.r_[start[1:], len(both)]
  for s, e in zip(start, end):
    ranks[order[s:e]] = (s + e + 1) / 2.0
  rank_sum = ranks[len(neg):].sum()
  return float((rank_sum - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))


def roc_curve(negative, positive):
  """(fpr, tpr, thresholds): flagging scores >= each threshold, from the highest down;
  the first point is (0, 0) at +inf."""
  neg, pos = np.asarray(negative, np.float64), np.asarray(positive, np.float64)
  thresholds = np.r_[np.inf, np.unique(np.concatenate([neg, pos]))[::-1]]
  neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
  fpr = (len(neg) - np.searchsorted(neg_sorted, thresholds, "left")) / len(neg)
  tpr = (len(pos) - np.searchsorted(pos_sorted, thresholds, "left")) / len(pos)
  return fpr, tpr, thresholds
