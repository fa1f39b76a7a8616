"""small_cnn on the built-in concept_shapes data set: the demo and the tests' model.

    python -m interp_jax.train --config=configs/concepts.py:standard --workdir=runs/standard

Override any field with --config.FIELD=VALUE, for example
--config.num_train_steps=300 or --config.dataset.image_size=48.
"""

import ml_collections

VARIANTS = ("standard",)


def get_config(variant: str = "standard") -> ml_collections.ConfigDict:
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r} of configs/concepts.py; "
                     f"choose one of {', '.join(VARIANTS)}")
  c = ml_collections.ConfigDict()
  c.variant = variant
  c.seed = 0

  c.dataset = ml_collections.ConfigDict()
  c.dataset.name = "concept_shapes"
  c.dataset.data_dir = ""        # "" = TFDS's default (~/tensorflow_datasets)
  c.dataset.prepared_dir = ""    # image_folder only: where the converted copy goes
  c.dataset.image_size = 32
  c.dataset.seed = 0             # concept_shapes only: the generator's seed
  c.dataset.num_train = 20_000
  c.dataset.num_test = 4_000

  c.model = ml_collections.ConfigDict()
  c.model.name = "small_cnn"
  c.model.options = ml_collections.ConfigDict({"widths": (16, 32, 64), "hidden": 128})

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adamw"
  c.optimizer.learning_rate = 3e-3
  c.optimizer.weight_decay = 1e-4
  c.optimizer.momentum = 0.9     # sgd only
  c.optimizer.warmup_steps = 100
  c.optimizer.final_lr_fraction = 0.01

  c.batch_size = 128
  c.eval_batch_size = 500
  c.num_train_steps = 1_500
  c.log_every_steps = 50
  c.eval_every_steps = 500
  c.checkpoint_every_steps = 500
  c.keep_checkpoints = 2
  return c
