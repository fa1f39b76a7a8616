"""Attacking several models at once (the 2017 paper's ensemble optimisation).

    both = ensemble((model_a.apply, model_b.apply), weights=(0.5, 0.5))
    x_adv = pgd(both, (variables_a, variables_b), x, y, key, eps=8/255)

The result is itself an apply_fn over a tuple of variables, so every attack
takes it unchanged. mode="logits" attacks the weighted mean of the logits;
mode="loss" attacks the weighted mean of the members' cross-entropies
(Liu et al. 2017 compare both). Either way the ensemble predicts with the
mean logits.
"""

import dataclasses
from typing import Callable

import jax

from interp_jax import losses
from interp_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Ensemble:
  """Hashable (it is a static argument of the jitted attacks)."""
  apply_fns: tuple[Callable, ...]
  weights: tuple[float, ...]
  mode: str = "logits"

  def _members(self, variables, x):
    if len(variables) != len(self.apply_fns):
      raise ValueError(f"{len(self.apply_fns)} models but {len(variables)} variable sets")
    return [fn(v, x) for fn, v in zip(self.apply_fns, variables)]

  def __call__(self, variables, x) -> jax.Array:
    return sum(w * z for w, z in zip(self.weights, self._members(variables, x)))

  def attack_loss(self, variables, x, y) -> jax.Array:
    if self.mode == "logits":
      return losses.cross_entropy(self(variables, x), y)
    return sum(w * losses.cross_entropy(z, y)
               for w, z in zip(self.weights, self._members(variables, x)))


def ensemble(apply_fns, weights=None, mode: str = "logits") -> Ensemble:
  """An apply_fn over a tuple of variables; weights default to equal and are normalised."""
  apply_fns = tuple(apply_fns)
  if not apply_fns:
    raise UserError("an ensemble needs at least one model")
  weights = (1.0,) * len(apply_fns) if weights is None else tuple(float(w) for w in weights)
  if len(weights) != len(apply_fns) or min(weights) < 0 or sum(weights) <= 0:
    raise UserError(f"ensemble weights must be {len(apply_fns)} non-negative numbers "
                    f"with a positive sum, got {weights}")
  if mode not in ("logits", "loss"):
    raise UserError(f"unknown ensemble mode {mode!r}; use 'logits' or 'loss'")
  total = sum(weights)
  return Ensemble(apply_fns, tuple(w / total for w in weights), mode)


