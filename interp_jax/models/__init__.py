"""Model registry: a config names a model, `create` builds it.

    model = models.create("small_cnn", num_classes=9)        # or config.model
    model.layer_names                                       # ("conv1", ..., "logits")
    logits, feats = models.apply_with_features(model, variables, x, ["conv3"])
    model = models.create("resnet50", 1000, stem="imagenet",  # normalises [0, 1] input
                          input_mean=(0.485, 0.456, 0.406), input_std=(0.229, 0.224, 0.225))
    model = models.create("wide_resnet", 10, depth=28, width=10)   # WRN-28-10

Every model is a Flax Linen module `__call__(x, train=False) -> logits`,
keeps BatchNorm statistics in the `batch_stats` collection (running averages
at inference) and records its named layers with `record`. `input_mean` and
`input_std` wrap it in `Normalized` (same variables, same layer names).
PyTorch checkpoints of these models import with torch_import.py.

A model function of your own, `models.cpu_fast(apply_fn)`, gets the zoo's
cheaper CPU gradients without changes (cpu_rewrite.py); `models.adapt` does
this for a user's module.

    common.py          `record` and apply_with_features: the layer contract
    small_cnn.py, alexnet.py, vgg.py, resnet.py, cifar_resnet.py, preact_resnet.py,
    wide_resnet.py     the zoo
    normalize.py       Normalized: per-channel input statistics inside the model
    adapter.py         adapt(module, variables, x): any Flax module on the contract
    cpu_rewrite.py     cheaper input gradients on XLA's CPU backend
    torch_import.py    PyTorch checkpoints into the zoo (torch_checkpoint.py reads a
                       checkpoint as arrays, torch_unpickle.py its zip without torch)
"""

import functools

from interp_jax.errors import UserError
from interp_jax.models.alexnet import AlexNet
from interp_jax.models.cifar_resnet import CifarResNet
from interp_jax.models.common import apply_with_features, record
from interp_jax.models.cpu_rewrite import cpu_fast
from interp_jax.models.normalize import Normalized, check_statistics
from interp_jax.models.adapter import OwnModel, adapt
from interp_jax.models.preact_resnet import PreActResNet
from interp_jax.models.resnet import ResNet
from interp_jax.models.small_cnn import SmallCNN
from interp_jax.models.vgg import VGG
from interp_jax.models.wide_resnet import WideResNet

REGISTRY = {
    "small_cnn": SmallCNN,
    "alexnet": AlexNet,
    "resnet18": functools.partial(ResNet, stage_sizes=(2, 2, 2, 2)),
    "resnet34": functools.partial(ResNet, stage_sizes=(3, 4, 6, 3)),
    "resnet50": functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), bottleneck=True),
    # CIFAR ResNets with option-A shortcuts (He et al. 2016, section 4.2)
    "resnet20": functools.partial(CifarResNet, depth=20),
    "resnet32": functools.partial(CifarResNet, depth=32),
    "resnet44": functools.partial(CifarResNet, depth=44),
    "resnet56": functools.partial(CifarResNet, depth=56),
    "vgg11": functools.partial(VGG, depth=11),
    "vgg16": functools.partial(VGG, depth=16),
    # robust CIFAR models: Wong et al. 2020; Madry/TRADES and DeepMind WRNs (depth, width)
    "preact_resnet18": functools.partial(PreActResNet, stage_sizes=(2, 2, 2, 2)),
    "wide_resnet": WideResNet,
}


def create(name: str, num_classes: int, **kwargs):
  """The registered model `name`; kwargs are its fields (widths, stem, ...).

  `input_mean` / `input_std` (per channel) make the model normalise its
  input itself, `(x - mean) / std`, so it takes images in [0, 1].
  """
  if name not in REGISTRY:
    raise UserError(f"unknown model {name!r}; choose one of {sorted(REGISTRY)}")
  mean, std = kwargs.pop("input_mean", None), kwargs.pop("input_std", None)
  try:
    model = REGISTRY[name](num_classes=num_classes, **kwargs)
  except TypeError as e:
    raise UserError(f"bad option for model {name!r}: {e}") from None
  if mean is None and std is None:
    return model
  mean, std = tuple(mean or (0.0,)), tuple(std or (1.0,))
  try:
    check_statistics(mean, std)
  except ValueError as e:
    raise UserError(str(e)) from None
  return Normalized(model, tuple(map(float, mean)), tuple(map(float, std)))


__all__ = ["REGISTRY", "AlexNet", "CifarResNet", "Normalized", "OwnModel", "PreActResNet",
           "ResNet", "SmallCNN", "VGG", "WideResNet", "adapt", "apply_with_features", "cpu_fast",
           "create", "record"]
