"""The fields every config has, with their defaults; configs/*.py override a few.

Kept in the package (not in configs/) so a config file works from any
directory: `from interp_jax.default_config import base_config`.
"""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.variant = "standard"
  c.seed = 0

  c.dataset = ml_collections.ConfigDict()
  c.dataset.name = "concept_shapes"
  c.dataset.data_dir = ""        # "" = TFDS's default (~/tensorflow_datasets); image_folder: ROOT;
                                 # idx: the folder of MNIST's four IDX files
  c.dataset.prepared_dir = ""    # image_folder only: where the converted copy goes ("" = TFDS's)
  c.dataset.image_size = 32      # images are resized (center crop) to this square
  c.dataset.resize = 0           # > 0: shorter side resized to this, then the center
                                 # image_size square cut (ImageNet: 256 then 224)
  c.dataset.classes = ""         # image_folder: "imagenet1k" keeps the 1000-class label
                                 # space when a wnid folder holds only some classes
  c.dataset.seed = 0             # concept_shapes only: the generator's seed
  c.dataset.num_train = 20_000   # concept_shapes only
  c.dataset.num_test = 4_000     # concept_shapes only
  c.dataset.num_validation = 4_000   # concept_shapes only: its own seed stream
  c.dataset.holdout_fraction = 0.1  # others without a validation split: round(fraction * N)
  c.dataset.holdout_seed = 0        # of train held out, chosen by content (data/validation.py)

  c.model = ml_collections.ConfigDict()
  c.model.name = "small_cnn"
  c.model.options = ml_collections.ConfigDict({"widths": (16, 32, 64), "hidden": 128})

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adamw"     # adamw or sgd (nesterov momentum)
  c.optimizer.learning_rate = 3e-3
  c.optimizer.weight_decay = 1e-4
  c.optimizer.momentum = 0.9     # sgd only
  c.optimizer.warmup_steps = 100
  c.optimizer.final_lr_fraction = 0.01

  # The training objective (training/objective.py). `variant` picks the terms: standard
  # (clean CE only), adv (+ CE under adv.attack) or adv_consistent (+ lambda d).
  c.adv = ml_collections.ConfigDict()
  c.adv.attack = "pgd"           # fgsm, bim, pgd, least_likely or mi_fgsm
  c.adv.eps = 8 / 255
  c.adv.step_size = 0.0          # 0 = the attack's default, eps / 4
  c.adv.steps = 10
  c.adv.norm = "linf"
  c.adv.random_start = True      # pgd and mi_fgsm
  c.adv.eps_warmup_steps = 0     # ramp eps linearly from 0 over these steps (a curriculum)
  c.adv.eval_images = 1_000      # test images attacked at each evaluation (0 = all)

  c.loss = ml_collections.ConfigDict()
  c.loss.clean_weight = 1.0
  c.loss.adv_weight = 1.0

  c.consistency = ml_collections.ConfigDict()
  c.consistency.layers = ("conv3",)   # names from the model's layer_names; "logits" counts
  c.consistency.distance = "l2"       # l2, cosine, kl_logits or logit_pairing
  c.consistency.weight = 1.0          # lambda (used by the adv_consistent variant)
  c.consistency.anchor_clean = False  # True: no gradient through the clean features, so
                                      # the term pulls phi(x') toward phi(x) and not back

  # Selection (python -m interp_jax.select): the grid of consistent losses tried on
  # the validation split and the rule that picks one, declared before any result.
  c.selection = ml_collections.ConfigDict()
  c.selection.weights = (0.5, 1.0, 2.0, 4.0)       # lambda values
  c.selection.forms = ("anchored", "symmetric")    # anchor_clean True / False (the paper's)
  c.selection.layers = ()                          # () = consistency.layers only
  c.selection.max_clean_drop = 0.10                # eligible: validation clean accuracy at
                                                   # most this below standard's, and PGD
                                                   # accuracy not below adv's; then the
                                                   # highest adversarial consistency wins
  c.selection.seeds = 0                            # seeds per run (0 = the protocol's: 1, or
                                                   # 2 under protocol 2); with more than one,
                                                   # the rule reads standard errors
                                                   # (reproduction/selection.py)

  c.augment = ""                 # "" or crop_flip: random crop of the image padded by
  c.augment_pad = 4              # augment_pad pixels, then a random horizontal flip

  c.batch_size = 128             # global, over all devices and hosts
  c.eval_batch_size = 512
  c.eval_split = "test"          # the split training logs its evaluation on
  c.num_train_steps = 1_500
  c.log_every_steps = 50
  c.eval_every_steps = 500
  c.checkpoint_every_steps = 500  # a multiple of log_every_steps
  c.keep_checkpoints = 2
  return c


VARIANTS = ("standard", "adv", "adv_consistent")


def select_variant(config: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
  """standard (no attack), adv (the attack, lambda = 0) or adv_consistent.

  Only `config.variant` changes: the attack and lambda stay as the config set
  them, so one config (and its overrides) serves all three variants.
  """
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
  config.variant = variant
  return config
