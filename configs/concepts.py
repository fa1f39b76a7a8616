"""small_cnn on the built-in concept_shapes data set: the demo and the tests' model.

    python -m interp_jax.train --config=configs/concepts.py:standard --workdir=runs/standard

Override any field with --config.FIELD=VALUE, for example
--config.num_train_steps=300 or --config.dataset.image_size=48.
"""

from interp_jax.default_config import base_config, select_variant


def get_config(variant: str = "standard"):
  return select_variant(base_config(), variant)
