"""ResNet-18 (CIFAR stem) on CIFAR-10 (TFDS `cifar10`, array_record under data_dir).

    python -m interp_jax.train --config=configs/cifar10_resnet18.py:standard \
        --workdir=runs/cifar10_resnet18 --config.dataset.data_dir=~/tensorflow_datasets

    python -m interp_jax.reproduce --config=configs/cifar10_resnet18.py \
        --workdir=runs/cifar10_reproduce --config.dataset.data_dir=~/tensorflow_datasets

Meant for a GPU or TPU: SGD with Nesterov momentum, 100 epochs of batch 128,
the standard augmentation (a random crop of the image padded by 4 pixels and
a horizontal flip), and the budget of the CIFAR-10 robustness literature
(Madry et al. 2018; Rice et al. 2020): L-inf eps 8/255, trained with PGD-10
of step 2/255 from a random start; the analysis attacks at the same eps.
The consistent loss acts on the penultimate features ("pool", before the
classifier), where classes live; its lambda is chosen on the validation
hold-out (10% of train) by the selection stage of `reproduce`.
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
  c.consistency.layers = ("pool",)
  c.augment = "crop_flip"
  c.augment_pad = 4
  c.adv.eps = 8 / 255
  c.adv.steps = 10
  c.adv.step_size = 2 / 255
  c.adv.random_start = True
  c.num_train_steps = 35_200  # 100 epochs of the 45,000 images left beside validation
  c.log_every_steps = 100
  c.eval_every_steps = 3_900
  c.checkpoint_every_steps = 3_900
  return select_variant(c, variant)
