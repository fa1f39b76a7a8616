"""Model registry: a config names a model, `create` builds it.

    model = models.create("small_cnn", num_classes=9)        # or config.model
    model.layer_names                                       # ("conv1", ..., "logits")
    logits, feats = models.apply_with_features(model, variables, x, ["conv3"])

Every model is a Flax Linen module `__call__(x, train=False) -> logits`,
keeps BatchNorm statistics in the `batch_stats` collection (running averages
at inference) and records its named layers with `record`.
"""

import functools

from interp_jax.errors import UserError
from interp_jax.models.common import apply_with_features, record
from interp_jax.models.resnet import ResNet
from interp_jax.models.small_cnn import SmallCNN
from interp_jax.models.vgg import VGG

REGISTRY = {
    "small_cnn": SmallCNN,
    "resnet18": functools.partial(ResNet, stage_sizes=(2, 2, 2, 2)),
    "resnet34": functools.partial(ResNet, stage_sizes=(3, 4, 6, 3)),
    "resnet50": functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), bottleneck=True),
    "vgg11": functools.partial(VGG, depth=11),
    "vgg16": functools.partial(VGG, depth=16),
}


def create(name: str, num_classes: int, **kwargs):
  """The registered model `name`; kwargs are its fields (widths, stem, ...)."""
  if name not in REGISTRY:
    raise UserError(f"unknown model {name!r}; choose one of {sorted(REGISTRY)}")
  try:
    return REGISTRY[name](num_classes=num_classes, **kwargs)
  except TypeError as e:
    raise UserError(f"bad option for model {name!r}: {e}") from None


__all__ = ["REGISTRY", "ResNet", "SmallCNN", "VGG", "apply_with_features", "create", "record"]
