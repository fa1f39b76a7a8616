"""The training objective of METHOD.md section 3, read from a config.

    L = w_clean * CE(f(x), y) + w_adv * CE(f(x'), y)
        + lambda * sum_{l in S} d(phi_l(x), phi_l(x'))

x' = attack(x, y) is made on the fly against the current parameters, with
BatchNorm in inference mode and no gradient through the attack. attack =
"none" is standard training (only the clean term); lambda = 0 is adversarial
training without the consistent term. `config.variant` (standard, adv,
adv_consistent) chooses which terms a run uses.
"""

import dataclasses

import ml_collections

from interp_jax import attacks, losses
from interp_jax.default_config import VARIANTS
from interp_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Objective:
  attack: str | None = None          # a name of attacks.REGISTRY, or None
  eps: float = 8 / 255
  step_size: float | None = None     # None: the attack's default (eps / 4)
  steps: int = 10
  norm: str = "linf"
  random_start: bool = True          # pgd and mi_fgsm only
  eps_warmup_steps: int = 0          # eps (and step size) ramp up linearly over these steps
  clean_weight: float = 1.0
  adv_weight: float = 1.0
  layers: tuple[str, ...] = ()
  distance: str = "l2"
  weight: float = 0.0                # lambda
  anchor_clean: bool = False         # stop the gradient through phi(x): pull only x' to x

  @property
  def consistent(self) -> bool:
    return self.attack is not None and self.weight > 0 and bool(self.layers)

  @property
  def attack_spec(self) -> attacks.AttackSpec | None:
    """The training attack as an attacks.AttackSpec (validated there), or None."""
    if self.attack is None:
      return None
    return attacks.AttackSpec(self.attack, self.eps, self.norm, self.steps, self.step_size,
                              self.random_start)

  def gradient_passes(self) -> int:
    """Input-gradient passes of the attack per train step (0 without one)."""
    return 0 if self.attack is None else self.attack_spec.gradient_passes


def from_config(config: ml_collections.ConfigDict, layer_names=None) -> Objective:
  """Checks config.adv, config.loss and config.consistency; raises UserError."""
  adv, cons = config.adv, config.consistency
  if config.variant not in VARIANTS:
    raise UserError(f"unknown config.variant {config.variant!r}; use {', '.join(VARIANTS)}")
  try:  # the bounds live in the attack checks; the message names the config section
    attacks.AttackSpec.from_section(adv)
  except UserError as e:
    raise UserError(f"config.adv: {e}") from None
  attack = None if config.variant == "standard" else adv.attack
  weight = float(cons.weight) if config.variant == "adv_consistent" else 0.0
  if attack is not None and not adv.eps > 0:
    raise UserError(f"config.adv: eps must be positive for adversarial training, got {adv.eps}")
  if adv.eps_warmup_steps < 0:
    raise UserError(f"config.adv.eps_warmup_steps must be >= 0, got {adv.eps_warmup_steps}")
  if cons.distance not in losses.DISTANCES:
    raise UserError(f"unknown config.consistency.distance {cons.distance!r}; "
                    f"use one of {', '.join(losses.DISTANCES)}")
  layers = tuple(cons.layers)
  if layer_names is not None and attack is not None and weight > 0:  # only if used
    unknown = [l for l in layers if l not in layer_names]
    if unknown:
      raise UserError(f"config.consistency.layers has {unknown}, which the model does not "
                      f"have; its layers are {', '.join(layer_names)}")
  if cons.distance in losses.LOGIT_ONLY and set(layers) - {"logits"}:
    raise UserError(f"distance {cons.distance} compares logits; set "
                    "config.consistency.layers=('logits',)")
  if cons.weight < 0:
    raise UserError(f"config.consistency.weight must be >= 0, got {cons.weight}")
  return Objective(
      attack=attack, eps=float(adv.eps), step_size=float(adv.step_size) or None,
      steps=int(adv.steps), norm=adv.norm, random_start=bool(adv.random_start),
      eps_warmup_steps=int(adv.eps_warmup_steps),
      clean_weight=float(config.loss.clean_weight), adv_weight=float(config.loss.adv_weight),
      layers=layers, distance=cons.distance, weight=weight,
      anchor_clean=bool(cons.anchor_clean))
