"""The fields every config has, with their defaults; configs/*.py override a few.

One config describes one experiment (big_vision's habit): what is trained, and
in its sections how it is analysed (`analysis`), dissected (`dissection`),
traced (`tracing`), decided (`criteria`) and reproduced (`reproduction`). Every
default lives here, once; the modules that read a section check it
(analysis/settings.py, analysis/dissection.py, analysis/tracing.py,
reproduction/protocol.py). Kept in the package (not in configs/) so a config
file works from any directory: `from interp_jax.default_config import base_config`.

    python -m interp_jax.reproduce --config=configs/concepts.py --config.analysis.k=20
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

  # How the runs are measured and the findings decided (read by analyze, select and
  # reproduce; training ignores them, and so does the check that a run may be reused).
  c.analysis = analysis_config()
  c.dissection = dissection_config()
  c.tracing = tracing_config()
  c.criteria = criteria_config()
  c.reproduction = reproduction_config()
  return c


# The sections a run's training does not read: a run saved under other values of them
# is the same run (reproduction/reuse.py).
EVALUATION_SECTIONS = ("analysis", "dissection", "tracing", "criteria", "reproduction")


def section(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """config's evaluation section `name`, or its default for a config built without it
  (a run saved before the sections existed)."""
  return config[name] if name in config else globals()[f"{name}_config"]()


def attack_fields(c: ml_collections.ConfigDict, attack: str = "pgd", eps: float = -1.0,
                  steps: int = 10, step_size: float = 0.0, norm: str = "linf") -> None:
  """The fields of an evaluation's attack, on section c; attacks.AttackSpec.from_section
  reads them (eps < 0 means the run's training eps, resolved there)."""
  c.attack = attack             # any name of attacks.REGISTRY
  c.eps = eps                   # < 0: the run's training eps (config.adv.eps)
  c.step_size = step_size       # 0 = eps / 4
  c.steps = steps
  c.norm = norm


ATTACK_FIELDS = ("attack", "eps", "step_size", "steps", "norm")

# NetDissect's (Bau et al. 2017) constants; measures/concept_iou.py uses them as defaults.
QUANTILE = 0.995        # T_n: the top 0.5% of a unit's activations
DETECTOR_IOU = 0.04     # a unit is a detector of its best concept above this IoU


def analysis_config() -> ml_collections.ConfigDict:
  """Consistency of every neuron on real and adversarial images (analysis/)."""
  c = ml_collections.ConfigDict()
  attack_fields(c)
  c.k = 50                      # top images per neuron
  c.layers = ()                 # () = every named layer but the logits
  c.activation = "max"          # a conv channel's activation on an image: spatial max or mean
  c.similarity = "auto"         # auto (hierarchy when the data ship a tree), identity,
  c.similarity_tree = ""        # hierarchy, wordnet; similarity_tree: a JSON class tree
  c.wordnet_dir = ""            # WordNet 3.0 ("" = $INTERP_JAX_WORDNET, NLTK's data,
                                # /usr/share/wordnet): for wnid-named classes
  c.split = "test"              # the split analysed (selection reads "validation")
  c.num_images = 0              # N images of it, chosen by content (0 = all)
  c.test_share = 0.0            # > 0: the run's own share of the test split, drawn by content
                                # keyed by the run's seed (share_of): a fraction in (0, 1),
                                # or a count >= 1, capped at the split (0 = the whole split,
                                # or num_images)
  c.successful = "changed"      # the successful set: "changed" (the attack changed the
                                # prediction) or "right_to_wrong" (a correct image made wrong)
  c.batch_size = 256            # split over the devices
  c.seed = 0
  c.chance_draws = 200          # random k-subsets for the chance baseline's spread
  c.source_workdir = ""         # a run whose adversarial images every model is scored on
  c.adversarial = "attack"      # the model's adversarial set: "attack" (the attack above) or
                                # "autoattack" (each image's AutoAttack worst case, read from
                                # DIR/adversarial/autoattack.npz of `attack --attacks=autoattack
                                # --save_images`, which must hold every analysed image)
  c.eps_curve = (0.0, 0.25, 0.5, 1.0, 2.0)  # multiples of eps for consistency vs eps; () = none
  c.eps_curve_layer = ""        # "" = the decisive layer (where the consistent loss acts)
  c.report_neurons = 4          # neurons per group in the report's image grids
  c.report_tiles = 8            # top images shown per neuron and set
  return c


def dissection_config() -> ml_collections.ConfigDict:
  """Network dissection, real against adversarial images (analysis/dissection.py). Its
  attack is the analysis's in a reproduction, so both see the same adversarial images."""
  c = ml_collections.ConfigDict()
  c.layers = ()                 # () = every layer with a spatial map
  c.broden = ""                 # a Broden-format directory; "" = the run's own masks
  c.broden_split = ""           # "" = every row of its index.csv
  c.split = "test"              # the run's split used as probe (concept_shapes)
  c.quantile = QUANTILE
  c.bins = 2048                 # histogram bins of the quantile (its error: range / bins)
  c.iou_threshold = DETECTOR_IOU
  c.batch_size = 256
  c.units_shown = 6             # units drawn per layer on the page
  c.tiles = 6                   # top images per unit
  attack_fields(c)              # the adversarial versions
  c.seed = 0
  return c


def tracing_config() -> ml_collections.ConfigDict:
  """Predictions traced to neurons, and detection by them (analysis/tracing.py)."""
  c = ml_collections.ConfigDict()
  c.layer = ""                  # "" = the decisive layer (where the consistent loss acts)
  c.ablation = "zero"           # zero, or mean (over cfg.reference_images training images)
  c.reference_images = 512
  c.profile_split = "train"     # the neurons' profiles come from this split, never the scored one
  c.profile_images = 4000       # chosen by content
  c.num_images = 1000           # test images scored for detection, chosen by content
  c.top = 10                    # influential neurons per input for the detection score
  c.attacks = ("fgsm", "pgd", "adaptive")  # at the analysis eps; PGD with the analysis
                                # steps; adaptive: that PGD against CE - weight x D (the
                                # detector's score), an attacker who knows the detector
  c.adaptive_weight = 10.0      # declared before any result: D in [0, 1] against CE
  c.images = ()                 # test-split indices to explain beside the chosen examples
  c.neurons_shown = 5
  c.tiles = 6
  c.batch_size = 100
  c.neuron_chunk = 0            # 0 = every neuron in one vmap
  c.seed = 0
  return c


def criteria_config() -> ml_collections.ConfigDict:
  """The thresholds of the three statements, fixed before any result
  (reproduction/findings.py); `protocol` says which protocol decides."""
  c = ml_collections.ConfigDict()
  c.protocol = 1              # 1 or 2: which protocol decides (module docstring)
  # (1) measurable: real-image consistency of the standard model above chance by
  #     this many standard deviations of the chance baseline (and real - chance > 0
  #     over seeds). Protocol 2: on the lower bound of real - chance.
  c.measurable_sigmas = 3.0
  # (2) exposed: adversarial images remove at least this share of the standard
  #     model's above-chance consistency on real images (and real - adversarial
  #     > 0 over seeds). Protocol 2: on the lower bound of the per-seed share.
  c.exposed_share = 0.25
  # (3) repaired: adv_consistent beats the standard model and the adv model on
  #     `repair_measure` over seeds (protocol 1 only): "adversarial" = consistency
  #     on each model's own adversarial images (the paper's claim, declared before
  #     the protocol's first run), or "exposure" = the share of above-chance
  #     consistency the attack removes (lower is better). Its clean accuracy is at
  #     most `max_clean_drop` below the standard model's, and its accuracy under
  #     attack at least `min_robust_gain` above (with the gain's interval above
  #     zero). Protocol 2: the drop's upper bound, the gain's lower bound.
  c.repair_measure = "adversarial"
  c.max_clean_drop = 0.10
  c.min_robust_gain = 0.20
  c.confidence = 0.95         # of every interval over seeds
  c.min_seeds = 5             # fewer seeds decide nothing (METHOD.md: >= 5)
  # Protocol 2 only (ignored by protocol 1):
  c.test_share = 2000.0       # each seed's share of the test split (analysis.test_share):
                              # a fraction, or a count of images (capped at the split):
                              # 2,000 is half of concept_shapes' test split and a fifth of
                              # MNIST's, a standard error of at most 1.1 points on an
                              # accuracy per seed
  c.match_rate = 0.5          # (3b) the attack success rate the models are compared at
  c.match_measure = "mean"    # (3b) of the eps sweep: "mean" (each eps's included
                              # neurons) or "paired_mean" (those included at every eps)
  # (3b) the eps sweep, in multiples of the analysis eps (analysis.eps_curve): dense at
  # small eps, where standard models break, and up to 3 x eps for robust ones (4 x 0.3,
  # MNIST's L-inf budget, would leave the image cube); it must start at 0.
  c.match_factors = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 3.0)
  c.robust_attack = "autoattack"  # the robust-gain evaluation: "autoattack" (each image's
                                  # worst case over robust_version's stages) or "pgd20"
                                  # (20 steps of 2.5 eps / 20 from a random start)
  c.robust_version = "standard"   # AutoAttack's version (attacks.VERSIONS)
  c.robust_images = 200       # images of each seed's test share it attacks, chosen by
                              # content (0 = the whole share): 1,000 over five seeds.
                              # AutoAttack on 200 digits of a robust MNIST model took
                              # 230 s on 2 CPU cores; the gain it decides is read against
                              # min_robust_gain (0.20), far above 200 images' noise
  c.robust_stages = ()        # () = the version's stages; a subset, for quick tests
  c.robust_steps = 0          # 0 = the evaluation's own steps; fewer, for quick tests
  return c


def reproduction_config() -> ml_collections.ConfigDict:
  """What `python -m interp_jax.reproduce` trains (reproduction/experiment.py)."""
  c = ml_collections.ConfigDict()
  c.seeds = 5                   # reported seeds of every variant (criteria.min_seeds decide)
  c.selection = True            # choose the consistent loss on validation first (False:
                                # take config.consistency as it is)
  c.variants = ("standard", "adv", "adv_consistent", "adv_symmetric")  # adv_symmetric: the
                                # paper's symmetric loss at the chosen lambda
  c.inspect = True              # dissect and explain each model of the first reported seed
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
