"""Checks against gradient masking: what to read beside every robust accuracy.

    verdicts = masking.run_checks(model.apply, variables, x, y, result)
    for name, v in verdicts.items():
      print(name, "FLAGGED" if v.flagged else "ok", v.message)

A defence can look robust because gradients are useless, not because it is
(Athalye, Carlini and Wagner 2018). Each check returns a Verdict (flagged, the
value it measured, and one sentence):

  zero_gradients     images whose input gradient (CE or DLR) vanishes, exactly
                     zero in float32: gradient attacks cannot move them
  probabilities      the model outputs a probability vector, not logits: the
                     CE gradient of a softmax saturates
  nondeterministic   two forward passes on the same images differ: a random
                     defence needs the "rand" evaluation (expectation over
                     transformation)
  square_breaks      the black-box Square broke more than 0.2% of the images
                     every white-box attack left robust
  transfer           white-box robust accuracy above the accuracy on images
                     attacked against another model (given): a stronger
                     attack exists that the white-box attacks did not find

The first four are AutoAttack's own checks (its checks.py), as functions
of arrays; the last is the test of Athalye et al. that AutoAttack cannot
make alone.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from interp_jax import losses
from interp_jax.attacks.auto_pgd import dlr_loss, random_logits
from interp_jax.records import Record, record

SQUARE_ALPHA = 0.002   # AutoAttack's tolerance for Square's extra breaks
RANDOM_ALPHA = 1e-4    # largest L2 change of normalised outputs between two passes
PROBABILITY_ALPHA = 1e-5


@record
class Verdict(Record):
  """One check's outcome (robustness.json's autoattack.checks)."""
  flagged: bool
  value: Any        # what it measured (a count, a share, a gap; None when it did not run)
  message: str


def _verdict(flagged, value, message) -> Verdict:
  return Verdict(bool(flagged), value, message)


def zero_gradients(apply_fn, variables, x, y) -> Verdict:
  """Images classified right whose CE or DLR input gradient vanishes: exactly zero in float32.

  Only those are attacked. (A misclassified image whose true class ranks third has a
  DLR of exactly 1 and no gradient, which says nothing of the model.) CE's gradient
  underflows where a logit margin is large (saturated softmax); DLR's is scale-free,
  so a zero there means the model is flat around x.
  """
  x = jnp.asarray(x)
  right = np.asarray(jnp.argmax(apply_fn(variables, x), -1) == jnp.asarray(y))
  names = {"ce": losses.cross_entropy}
  if jax.eval_shape(apply_fn, variables, x[:1]).shape[-1] >= 3:
    names["dlr"] = dlr_loss
  counts = {}
  for name, loss in names.items():
    g = jax.grad(lambda z: loss(apply_fn(variables, z), y).sum())(x)
    zero = np.abs(np.asarray(g).reshape(len(x), -1)).sum(1) == 0
    counts[name] = int((zero & right).sum())
  flagged = any(counts.values())
  said = ", ".join(f"{c} for {n.upper()}" for n, c in counts.items())
  return _verdict(flagged, counts,
                  f"zero input gradients on images classified right ({said}, of "
                  f"{int(right.sum())}): gradient attacks cannot move those images"
                  if flagged else f"each of the {int(right.sum())} images classified right "
                                  f"has a nonzero input gradient")


def probabilities(apply_fn, variables, x) -> Verdict:
  """The outputs look like probabilities (in [0, 1], rows summing to 1)."""
  z = np.asarray(apply_fn(variables, jnp.asarray(x)), np.float64)
  flagged = (z.max() < 1 + PROBABILITY_ALPHA and z.min() > -PROBABILITY_ALPHA
             and bool(np.all(np.abs(z.sum(-1) - 1) < PROBABILITY_ALPHA)))
  return _verdict(flagged, float(np.abs(z.sum(-1) - 1).max()),
                  "the outputs are probabilities: give the model's logits" if flagged
                  else "the outputs are logits")


def nondeterministic(apply_fn, variables, x, passes: int = 5) -> Verdict:
  """Largest change of the L2-normalised outputs over `passes` forward passes, run as called."""
  outs = []
  for _ in range(passes):
    z = np.asarray(apply_fn(variables, jnp.asarray(x)), np.float64)
    outs.append(z / (np.linalg.norm(z, axis=-1, keepdims=True) + 1e-10))
  diff = max(float(np.linalg.norm(a - b, axis=-1).max()) for a in outs for b in outs)
  flips = any((a.argmax(-1) != outs[0].argmax(-1)).any() for a in outs)
  flagged = flips or diff > RANDOM_ALPHA
  return _verdict(flagged, diff,
                  "the forward pass is random: evaluate with expectation over "
                  "transformation" if flagged else "the forward pass is deterministic")


def square_breaks(result) -> Verdict:
  """Share of images the black-box Square broke after the white-box stages before it."""
  if "square" not in result.stages:
    return _verdict(False, None, "Square did not run")
  share = float((result.broken_by == "square").mean())
  flagged = share > SQUARE_ALPHA
  return _verdict(flagged, share,
                  f"Square broke {share:.2%} of the images the gradient attacks left robust: "
                  "their gradients mislead" if flagged
                  else f"Square broke {share:.2%} of the images (tolerance {SQUARE_ALPHA:.1%})")


def transfer(white_box_accuracy: float, transfer_accuracy: float | None,
             source: str = "another model") -> Verdict:
  """White-box robust accuracy higher than accuracy on images attacked against `source`."""
  if transfer_accuracy is None:
    return _verdict(False, None, "no transfer set was given")
  gap = float(white_box_accuracy - transfer_accuracy)
  flagged = gap > 0
  return _verdict(flagged, gap,
                  f"images attacked against {source} fool the model more often than its own "
                  f"white-box attacks ({transfer_accuracy:.2%} < {white_box_accuracy:.2%})"
                  if flagged else
                  f"the white-box attacks beat the transfer attack from {source} "
                  f"({white_box_accuracy:.2%} <= {transfer_accuracy:.2%})")


def run_checks(apply_fn, variables, x, y, result=None, transfer_accuracy=None,
               transfer_source: str = "another model", sample: int = 256,
               random: bool = False) -> dict[str, Verdict]:
  """Every check, on the first `sample` images of x (and on an AutoAttack result).

  random: the model is random by design, apply_fn(variables, x, key) (AutoAttack's rand
  version): the gradient and output checks read one fixed draw per image, and the
  randomness is reported, not flagged.
  """
  xs, ys = np.asarray(x[:sample], np.float32), np.asarray(y[:sample], np.int32)
  if random:
    # Image i's draw: key(seed) folded with i, whatever the number of images.
    draws = lambda seed, n: jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(
        jnp.arange(n))
    fixed = lambda v, z: random_logits(apply_fn, v, z, draws(0, len(z)))
    passes = itertools.count(1)   # each pass its own draws, the same in every run
    changing = nondeterministic(
        lambda v, z: random_logits(apply_fn, v, z, draws(next(passes), len(z))), variables, xs)
    changing = _verdict(False, changing.value,
                        "the forward pass is random by design (largest change "
                        f"{changing.value:.3g}): evaluated with expectation over "
                        "transformation")
    out = {"zero_gradients": zero_gradients(fixed, variables, xs, ys),
           "probabilities": probabilities(fixed, variables, xs),
           "nondeterministic": changing}
  else:
    out = {"zero_gradients": zero_gradients(apply_fn, variables, xs, ys),
           "probabilities": probabilities(apply_fn, variables, xs),
           "nondeterministic": nondeterministic(apply_fn, variables, xs)}
  if result is not None:
    out["square_breaks"] = square_breaks(result)
    out["transfer"] = transfer(result.accuracy, transfer_accuracy, transfer_source)
  return out
