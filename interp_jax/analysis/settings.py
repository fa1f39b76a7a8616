"""The analysis settings' checks, every one made before compute starts.

    cfg = default_config()      # the config's `analysis` section: default_config.py

    plan = check_for(cfg, run.config, run.meta, run.model.layer_names)

`check_for` needs only what a run is made of (its config, data description
and layer names) and the devices (the batch is split over them), so a command
that trains first validates the analysis before any training.
"""

import dataclasses

import jax
import numpy as np

from interp_jax import attacks
from interp_jax.measures import similarity
from interp_jax.default_config import analysis_config
from interp_jax.errors import UserError

default_config = analysis_config  # the config's `analysis` section (default_config.py)


@dataclasses.dataclass(frozen=True)
class Plan:
  """What check_for resolved: the attack, the layers and the class similarities."""
  attack: attacks.AttackSpec
  layers: tuple[str, ...]
  similarity: str                         # the name of the main similarity
  matrices: dict[str, np.ndarray]         # name -> [C, C]; always holds "identity"
  curve_layer: str
  num_images: int


def decisive_layer(config, layer_names) -> str:
  """Where the findings are read: the consistent loss's first non-logit layer."""
  for layer in config.consistency.layers:
    if layer != "logits":
      return layer
  return [n for n in layer_names if n != "logits"][-1]


def resolved_eps(cfg, config) -> float:
  """The analysis eps: cfg.eps, or the run's training eps when cfg.eps < 0."""
  return attacks.AttackSpec.from_section(cfg, config.adv.eps).eps


SUCCESS_RULES = ("changed", "right_to_wrong")


def share_size(n: int, share: float) -> int:
  """Images in a test share of a split of n: round(share * n) (>= 1) for a fraction in
  (0, 1), the count itself for a whole share >= 1 (all n when the split holds fewer:
  every seed then scores the same images); n for share 0."""
  if share == 0:
    return n
  if share < 0 or (share >= 1 and share != int(share)):
    raise UserError(f"test_share must be 0, a fraction in (0, 1) or a whole count of images, "
                    f"got {share}")
  return max(1, int(round(share * n))) if share < 1 else min(int(share), n)


ADVERSARIAL_SETS = ("attack", "autoattack")


def check_for(cfg, config, meta, layer_names) -> Plan:
  """Validates cfg against a run's config, data and layers; raises UserError."""
  spec = attacks.AttackSpec.from_section(cfg, config.adv.eps).check(meta.image_shape)
  eps = spec.eps
  if cfg.k < 1 or cfg.batch_size < 1 or cfg.chance_draws < 1:
    raise UserError("k, batch_size and chance_draws must be positive integers")
  if cfg.batch_size % jax.device_count():  # checked again where the batches are cut
    raise UserError(f"batch_size {cfg.batch_size} is not divisible by the "
                    f"{jax.device_count()} devices")
  if cfg.split not in meta.splits:
    raise UserError(f"the data set has no split {cfg.split!r}; it has {sorted(meta.splits)}")
  available = meta.splits[cfg.split]
  if cfg.test_share and (cfg.split != "test" or cfg.num_images):
    raise UserError("test_share draws a share of the test split: leave split at 'test' and "
                    "num_images at 0 with it")
  if cfg.successful not in SUCCESS_RULES:
    raise UserError(f"successful must be one of {', '.join(SUCCESS_RULES)}, got "
                    f"{cfg.successful!r}")
  num_images = min(cfg.num_images or share_size(available, cfg.test_share), available)
  if cfg.k >= num_images:
    raise UserError(f"k = {cfg.k} must be below the {num_images} images analysed")
  if cfg.adversarial not in ADVERSARIAL_SETS:
    raise UserError(f"adversarial must be one of {', '.join(ADVERSARIAL_SETS)}, got "
                    f"{cfg.adversarial!r}")
  if cfg.activation not in ("max", "mean"):
    raise UserError(f"unknown activation {cfg.activation!r}; use max or mean")
  layers = tuple(cfg.layers) or tuple(n for n in layer_names if n != "logits")
  unknown = [l for l in layers if l not in layer_names]
  if unknown:
    raise UserError(f"the model has no layer {unknown}; its layers are {', '.join(layer_names)}")
  curve_layer = cfg.eps_curve_layer or decisive_layer(config, layer_names)
  if cfg.eps_curve and curve_layer not in layer_names:
    raise UserError(f"eps_curve_layer {curve_layer!r} is not a layer of the model; its "
                    f"layers are {', '.join(layer_names)}")
  for factor in cfg.eps_curve:
    if factor < 0:
      raise UserError(f"eps_curve holds multiples of eps >= 0, got {factor}")
    spec.replace(eps=eps * factor).check(meta.image_shape)
  name = cfg.similarity
  if name == "auto":
    name = "hierarchy" if (meta.class_tree or cfg.similarity_tree) else "identity"
  matrices = {name: similarity.for_dataset(name, meta, cfg.similarity_tree, cfg.wordnet_dir),
              "identity": similarity.identity(meta.num_classes)}
  return Plan(spec, layers, name, matrices, curve_layer, num_images)
