"""small_cnn on MNIST (TFDS `mnist`, prepared in array_record under data_dir).

    python -m interp_jax.train --config=configs/mnist.py:standard --workdir=runs/mnist \
        --config.dataset.data_dir=~/tensorflow_datasets
"""

from interp_jax.default_config import base_config, select_variant


def get_config(variant: str = "standard"):
  c = base_config()
  c.dataset.name = "mnist"
  c.dataset.image_size = 28
  c.model.options = {"widths": (32, 64), "hidden": 128}
  c.num_train_steps = 3_000
  c.eval_every_steps = 1_000
  c.checkpoint_every_steps = 1_000
  return select_variant(c, variant)
