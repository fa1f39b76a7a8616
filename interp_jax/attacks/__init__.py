"""Adversarial attacks with one contract: f(apply_fn, variables, x, y, key, **options).

    from interp_jax import attacks
    x_adv = attacks.pgd(model.apply, variables, x, y, key, eps=8/255, steps=10)
    x_adv = attacks.by_name("mi_fgsm")(model.apply, variables, x, y, key, eps=8/255)

Attacks: fgsm, bim, pgd (L-inf and L2, targeted or not), least_likely (ILLC),
mi_fgsm (momentum). `ensemble` turns several models into one apply_fn.
`AttackSpec` is one attack with its options, validated once and callable.
"""

from interp_jax.attacks.ensemble import Ensemble, ensemble
from interp_jax.attacks.gradient import (attack_loss, bim, fgsm, least_likely,
                                         least_likely_class, mi_fgsm, pgd)
from interp_jax.attacks.projections import NORMS, project, random_point, to_ball_and_box
from interp_jax.attacks.spec import REGISTRY, AttackSpec, by_name

__all__ = ["AttackSpec", "Ensemble", "NORMS", "REGISTRY", "attack_loss", "bim", "by_name", "ensemble",
           "fgsm", "least_likely", "least_likely_class", "mi_fgsm", "pgd", "project",
           "random_point", "to_ball_and_box"]
