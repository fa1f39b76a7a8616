"""Adversarial attacks with one contract: f(apply_fn, variables, x, y, key, **options).

    from interp_jax import attacks
    x_adv = attacks.pgd(model.apply, variables, x, y, key, eps=8/255, steps=10)
    x_adv = attacks.by_name("mi_fgsm")(model.apply, variables, x, y, key, eps=8/255)
    result = attacks.autoattack(model.apply, variables, x, y, key, eps=8/255)

Modules:
  gradient     fgsm, bim, pgd (L-inf and L2, targeted or not), least_likely (ILLC),
               mi_fgsm (momentum)
  auto_pgd     APGD on CE, DLR or targeted DLR (apgd, apgd_targeted)
  boundary     FAB, minimal perturbations at the decision boundary (fab, targeted or not)
  random_search  Square, a score-based random search that takes no gradient (square)
  worst_case   AutoAttack: each image's worst case over a version's stages (autoattack)
  masking      the checks against gradient masking reported beside it
  ensemble     several models as one apply_fn
  spec         AttackSpec: one attack with its options, validated once and callable
  batches      attacking a data source batch by batch, as every evaluation does: per-image
               keys from pixels, one jitted step (attacks, forward with features), the
               loop with progress, the host-side accumulator
  projections, checks, loop: norm balls; input checks; the loop that drives a jitted step
"""

from interp_jax.attacks import masking
from interp_jax.attacks.auto_pgd import apgd, apgd_targeted, dlr_loss, dlr_targeted_loss
from interp_jax.attacks.worst_case import (STAGES, VERSIONS, AutoAttackResult, autoattack,
                                           plan as autoattack_plan)
from interp_jax.attacks.ensemble import Ensemble, ensemble
from interp_jax.attacks.boundary import fab
from interp_jax.attacks.gradient import (attack_loss, bim, fgsm, least_likely,
                                         least_likely_class, mi_fgsm, pgd)
from interp_jax.attacks.projections import NORMS, project, random_point, to_ball_and_box
from interp_jax.attacks.spec import REGISTRY, AttackSpec, by_name
from interp_jax.attacks.random_search import square

__all__ = ["AttackSpec", "AutoAttackResult", "Ensemble", "NORMS", "REGISTRY", "STAGES",
           "VERSIONS", "apgd", "apgd_targeted", "attack_loss", "autoattack", "autoattack_plan",
           "bim", "by_name", "dlr_loss", "dlr_targeted_loss", "ensemble", "fab", "fgsm",
           "least_likely", "least_likely_class", "masking", "mi_fgsm", "pgd", "project",
           "random_point", "square", "to_ball_and_box"]
