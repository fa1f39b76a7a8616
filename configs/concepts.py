"""small_cnn on the built-in concept_shapes data set: the demo and the tests' model.

    python -m interp_jax.train --config=configs/concepts.py:standard --workdir=runs/standard
    python -m interp_jax.train --config=configs/concepts.py:adv_consistent --workdir=runs/cons
    python -m interp_jax.reproduce --workdir=runs/demo     # all three variants, analysed

Override any field with --config.FIELD=VALUE, for example
--config.num_train_steps=300 or --config.dataset.image_size=48.

Chosen for the demo's budget (three trainings and their analyses in about
ten minutes on two CPU cores): 1,000 steps for every variant; the training
attack is PGD with 2 steps of 1.25 eps at eps = 4/255, ramped up over the
first 300 steps (at 8/255 this small network kept only 54-74% clean accuracy
after 1,000 steps); the consistent loss acts on fc1, the penultimate dense
layer where classes live, with lambda = 10 because squared fc1 differences
average only ~0.03 (lambda = 1 left the term at ~2% of the loss).
"""

from interp_jax.default_config import base_config, select_variant


def get_config(variant: str = "standard"):
  c = base_config()
  c.num_train_steps = 1_000
  c.adv.eps = 4 / 255
  c.adv.steps = 2
  c.adv.step_size = 1.25 * c.adv.eps
  c.adv.eps_warmup_steps = 300
  c.consistency.layers = ("fc1",)
  c.consistency.weight = 10.0
  return select_variant(c, variant)
