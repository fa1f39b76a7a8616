"""One attack with its options, validated once: what training, analysis and evaluation share.

    spec = AttackSpec("pgd", eps=8/255, steps=10)     # a bad value raises ValueError here
    spec = AttackSpec.from_section(config.analysis, training_eps=config.adv.eps)
    spec.check(image_shape=(32, 32, 3))                # an L2 radius against the image size
    x_adv = spec(model.apply, variables, x, y, key)
    weaker = spec.replace(eps=spec.eps / 2)

The bounds themselves live in attacks/checks.py; a spec only gathers the
options every caller used to spell out, and passes each attack the ones it
takes (FGSM has no steps, BIM no random start, ILLC picks its own target,
APGD its own step size; Square reads `steps` as its number of queries).
"""

import dataclasses
import functools
import inspect

from interp_jax.attacks import checks
from interp_jax.attacks.auto_pgd import apgd, apgd_targeted
from interp_jax.attacks.boundary import fab
from interp_jax.attacks.gradient import bim, fgsm, least_likely, mi_fgsm, pgd
from interp_jax.attacks.random_search import square
from interp_jax.errors import UserError

# AutoAttack's stages are here one by one (an analysis may attack with APGD-T,
# say); their composition over a whole split is attacks.autoattack.
REGISTRY = {"fgsm": fgsm, "bim": bim, "pgd": pgd, "least_likely": least_likely,
            "mi_fgsm": mi_fgsm, "apgd_ce": functools.partial(apgd, loss="ce"),
            "apgd_dlr": functools.partial(apgd, loss="dlr"), "apgd_t": apgd_targeted,
            "fab": functools.partial(fab, targeted=False),
            "fab_t": functools.partial(fab, targeted=True), "square": square}


def by_name(name: str):
  if name not in REGISTRY:
    raise UserError(f"unknown attack {name!r}; choose one of {', '.join(REGISTRY)}")
  return REGISTRY[name]


@dataclasses.dataclass(frozen=True)
class AttackSpec:
  """An attack of REGISTRY and its budget; call it like the attack itself."""
  name: str = "pgd"
  eps: float = 8 / 255
  norm: str = "linf"
  steps: int = 10
  step_size: float | None = None     # None: the attack's default (eps / 4; FGSM: eps)
  random_start: bool = True          # pgd and mi_fgsm only
  targeted: bool = False             # y holds target classes

  def __post_init__(self):
    by_name(self.name)
    checks.check_options(self.eps, self.step_size, self.steps, self.norm)

  def check(self, image_shape) -> "AttackSpec":
    """Checks the budget against images of this (H, W, C) shape; returns self."""
    checks.check_options(self.eps, self.step_size, self.steps, self.norm, image_shape)
    return self

  def options(self) -> dict:
    """The keyword arguments this attack takes."""
    attack = by_name(self.name)
    accepted = inspect.signature(attack).parameters
    bound = getattr(attack, "keywords", {})  # a partial's (fab_t's targeted=True) stay
    every = {"eps": self.eps, "norm": self.norm, "steps": self.steps,
             "queries": self.steps, "step_size": self.step_size,
             "random_start": self.random_start, "targeted": self.targeted}
    return {k: v for k, v in every.items() if k in accepted and k not in bound}

  @property
  def gradient_passes(self) -> int:
    """Input-gradient passes per image, at most (ILLC adds one forward pass for its target;
    APGD-T and FAB-T run once per target; untargeted FAB's Jacobian of every class per
    step counts as one; Square takes none)."""
    if self.name == "square":
      return 0
    runs = inspect.signature(by_name(self.name)).parameters.get("targets")
    per_target = runs.default if runs is not None and self.name.endswith("_t") else 1
    return 1 if self.name == "fgsm" else int(self.steps) * per_target

  @classmethod
  def from_section(cls, section, training_eps: float | None = None) -> "AttackSpec":
    """The attack of a config section's fields (default_config.attack_fields: attack, eps,
    steps, step_size, norm, and random_start where the section has it).

    eps < 0 means the run's training eps (`training_eps`), resolved here and nowhere
    else (without one, a negative eps is out of bounds); a step size of 0 means the
    attack's default.
    """
    eps = float(section.eps)
    if eps < 0 and training_eps is not None:
      eps = float(training_eps)
    extra = {"random_start": bool(section.random_start)} if "random_start" in section else {}
    return cls(section.attack, eps, section.norm, int(section.steps),
               float(section.step_size) or None, **extra)

  def replace(self, **changes) -> "AttackSpec":
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict:
    return {"name": self.name, **self.options()}

  def __call__(self, apply_fn, variables, x, y, key=None, **overrides):
    """The attack's images; `overrides` (a traced eps, say) replace options for this call."""
    return by_name(self.name)(apply_fn, variables, x, y, key, **{**self.options(), **overrides})
