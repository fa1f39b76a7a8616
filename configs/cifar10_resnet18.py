"""ResNet-18 (CIFAR stem) on CIFAR-10 (TFDS `cifar10`, array_record under data_dir).

    python -m interp_jax.train --config=configs/cifar10_resnet18.py:standard \
        --workdir=runs/cifar10_resnet18 --config.dataset.data_dir=~/tensorflow_datasets

Meant for a GPU or TPU: SGD with Nesterov momentum, 100 epochs of batch 128.
"""

from interp_jax.default_config import base_config, select_variant


def get_config(variant: str = "standard"):
  c = base_config()
  c.dataset.name = "cifar10"
  c.dataset.image_size = 32
  c.model.name = "resnet18"
  c.model.options = {"stem": "cifar"}
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.1
  c.optimizer.weight_decay = 5e-4
  c.optimizer.warmup_steps = 1_000
  c.num_train_steps = 39_100  # 100 epochs of 50,000 images
  c.log_every_steps = 100
  c.eval_every_steps = 3_900
  c.checkpoint_every_steps = 3_900
  return select_variant(c, variant)
