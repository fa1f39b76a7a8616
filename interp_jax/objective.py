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

  def attack_options(self) -> dict:
    """Keyword arguments for attacks.by_name(self.attack)."""
    options = {"eps": self.eps, "norm": self.norm}
    if self.attack == "fgsm":
      return options
    options.update(steps=self.steps, step_size=self.step_size)
    if self.attack in ("pgd", "mi_fgsm"):
      options["random_start"] = self.random_start
    return options

  def gradient_passes(self) -> int:
    """Input-gradient passes of the attack per train step (0 without one)."""
    if self.attack is None:
      return 0
    return 1 if self.attack == "fgsm" else self.steps


def from_config(config: ml_collections.ConfigDict, layer_names=None) -> Objective:
  """Checks config.adv, config.loss and config.consistency; raises UserError."""
  adv, cons = config.adv, config.consistency
  if config.variant not in ("standard", "adv", "adv_consistent"):
    raise UserError(f"unknown config.variant {config.variant!r}; use standard, adv or "
                    "adv_consistent")
  attacks.by_name(adv.attack)
  attack = None if config.variant == "standard" else adv.attack
  weight = float(cons.weight) if config.variant == "adv_consistent" else 0.0
  if adv.norm not in attacks.NORMS:
    raise UserError(f"unknown config.adv.norm {adv.norm!r}; use one of {attacks.NORMS}")
  if attack is not None and not 0.0 < adv.eps <= (1.0 if adv.norm == "linf" else 1e3):
    raise UserError(f"config.adv.eps must be in (0, 1] for linf, got {adv.eps}")
  if adv.eps_warmup_steps < 0:
    raise UserError(f"config.adv.eps_warmup_steps must be >= 0, got {adv.eps_warmup_steps}")
  if adv.steps < 1:
    raise UserError(f"config.adv.steps must be a positive integer, got {adv.steps}")
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
