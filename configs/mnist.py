"""small_cnn on MNIST: its original IDX files, TFDS `mnist` (array_record) or an image folder.

    make reproduce-mnist       # the protocol on ../shared/data/mnist (MNIST_DIR=...), or:
    python -m interp_jax.reproduce --config=configs/mnist.py --workdir=runs/mnist \
        --config.dataset.name=idx --config.dataset.data_dir=../shared/data/mnist
        # the four *-ubyte[.gz] files, or ROOT/MNIST/raw
    ... --config.dataset.name=mnist --config.dataset.data_dir=~/tensorflow_datasets
    ... --config.dataset.name=image_folder --config.dataset.data_dir=ROOT  # ROOT/train|test/<digit>/

Decided by protocol 2 (interp_jax/reproduction/findings.py), declared before
any real-digit test number existed; summary.json records the commit.

A budget for 2 CPU cores, chosen on the validation hold-out (6,000 training
digits chosen by content; the test split was never read). The rule, fixed
before the runs: eps = 0.3 (Madry et al. 2018's budget) if the adv model keeps
at least 70% accuracy under PGD-20 (2.5 eps / 20 from a random start) on
validation within the budget, otherwise the largest eps of 0.3, 0.2, 0.1,
0.075, 0.05 where it does. The budget: 1,000 steps of batch 128 (the protocol's
30 trainings and their analyses within 90 minutes on 2 cores). Measured
(attack --split=validation --attacks=pgd --steps=20 --num_images=2000; adv
variant, 1,000 steps, eps ramped up over the first 300; seconds of training
with two runs sharing the 2 cores):

    width        training attack             eps    clean  PGD-20  train s
    (32, 64)/128 PGD-2, step 1.25 eps        0.3    0.960  0.000   211 (alone)
    (16, 32)/64  PGD-5, step 2.5 eps / 5     0.3    0.892  0.096   282
    (16, 32)/64  PGD-5                       0.2    0.923  0.250   281
    (32, 64)/128 PGD-3, step 2.5 eps / 3     0.2    0.950  0.234   438
    (16, 32)/64  PGD-5                       0.1    0.951  0.592   341
    (16, 32)/64  FGSM-RS, step 1.25 eps      0.1    0.954  0.489   159
    (16, 32)/64  FGSM-RS                     0.075  0.958  0.631   130
    (16, 32)/64  FGSM-RS                     0.05   0.963  0.762   158

So eps = 0.05, far below the literature's 0.3: within this budget no setting
kept 70% at 0.1 or more. The training attack is fast adversarial training
(Wong et al. 2020: one FGSM step of 1.25 eps from a uniform random start, here
PGD with one step); PGD-20 on validation shows no catastrophic overfitting
(0.762 against 0.000 for the two-step PGD at 0.3, whose own attack it
resisted at 0.70). AutoAttack (standard) on 200 validation digits of that
model: 0.680 (APGD-CE broke 53, APGD-T 1, FAB-T and Square none; no check
against gradient masking flagged), 230 s. On a GPU, use Madry's budget:
--config.adv.eps=0.3 --config.adv.steps=40 --config.adv.step_size=0.01
--config.num_train_steps=20000 --config.model.options.widths='(32,64)'.

The consistent loss acts on fc1, anchored on the clean features. Its lambda
is chosen on validation from a grid two orders of magnitude wide, the
anchored form only (the symmetric one is trained at the chosen lambda as
adv_symmetric): a lambda chosen on concept_shapes cut MNIST's clean accuracy
to 68%, since its useful scale follows the scale of the features and of eps.
"""

from interp_jax.default_config import base_config, select_variant


def get_config(variant: str = "standard"):
  c = base_config()
  c.dataset.name = "mnist"
  c.dataset.image_size = 28
  c.model.options = {"widths": (16, 32), "hidden": 64}
  c.adv.eps = 0.05
  c.adv.steps = 1
  c.adv.step_size = 1.25 * 0.05
  c.adv.random_start = True
  c.adv.eps_warmup_steps = 300
  c.consistency.layers = ("fc1",)
  c.consistency.anchor_clean = True
  c.selection.weights = (0.1, 1.0, 10.0)
  c.selection.forms = ("anchored",)
  c.num_train_steps = 1_000
  c.eval_every_steps = 1_000
  c.checkpoint_every_steps = 500
  c.criteria.protocol = 2
  c.analysis.steps = 20                 # PGD-20 in the analysis (the budget above's check)
  return select_variant(c, variant)
