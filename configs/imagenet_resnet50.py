"""ResNet-50 (ImageNet stem) on ImageNet (TFDS `imagenet2012`, array_record under data_dir).

    python -m interp_jax.train --config=configs/imagenet_resnet50.py:standard \
        --workdir=gs://BUCKET/imagenet_resnet50 --config.dataset.data_dir=gs://BUCKET/tfds

For a TPU pod (launch/ has the scripts): batch 1024, SGD, 90 epochs.
"""

from interp_jax.default_config import base_config, select_variant


def get_config(variant: str = "standard"):
  c = base_config()
  c.dataset.name = "imagenet2012"
  c.dataset.image_size = 224
  c.model.name = "resnet50"
  c.model.options = {"stem": "imagenet"}
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.4   # 0.1 per 256 images
  c.optimizer.weight_decay = 1e-4
  c.optimizer.warmup_steps = 6_250
  c.batch_size = 1024
  c.eval_batch_size = 1000
  c.num_train_steps = 112_600       # 90 epochs of 1,281,167 images
  c.log_every_steps = 100
  c.eval_every_steps = 12_500
  c.checkpoint_every_steps = 2_500
  c.keep_checkpoints = 3
  return select_variant(c, variant)
