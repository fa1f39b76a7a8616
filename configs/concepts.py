"""small_cnn on the built-in concept_shapes data set: the demo and the tests' model.

    python -m interp_jax.train --config=configs/concepts.py:standard --workdir=runs/standard
    python -m interp_jax.train --config=configs/concepts.py:adv_consistent --workdir=runs/cons
    make demo        # configs/concepts.py:demo: one seed of the three variants, analysed
                     # (decides nothing)
    make reproduce   # configs/concepts.py: protocol 2, selection on validation (grid v2),
                     # then five seeds

Override any field with --config.FIELD=VALUE, for example
--config.num_train_steps=300 or --config.dataset.image_size=48.

Chosen for the demo's budget (three trainings and their analyses in about ten
minutes on two CPU cores; measured 8:31 and 8:47 from fresh clones with no
compiled program cached, without the eps curve): 1,000 steps for every
variant; the training attack is PGD with 2 steps of 1.25 eps at eps = 4/255,
ramped up over the first 300 steps (at 8/255 this small network kept only
54-74% clean accuracy after 1,000 steps); the consistent loss acts on fc1, the
penultimate dense layer where classes live, anchored on the clean features
(the term pulls phi(x') toward phi(x) and not back), with lambda = 2.

How the consistent loss was chosen under protocol 1: on the validation
split, by the rule and grid declared in interp_jax/default_config.py
(config.selection) before any result, with the selection stage of protocol 1
(python -m interp_jax.select --workdir=runs/reproduce/selection; seed 0, one
run per candidate, 4,000 validation images, PGD-10 at 4/255, fc1):

    run              clean  attacked  adversarial consistency
    standard         0.921   0.064    0.680
    adv              0.850   0.406    0.694
    anchored   0.5   0.858   0.393    0.696   below adv under attack
    anchored   1     0.855   0.408    0.698   eligible
    anchored   2     0.858   0.425    0.721   eligible: chosen
    anchored   4     0.699   0.329    0.686   clean drop > 0.10; below adv
    symmetric  0.5   0.851   0.410    0.690   eligible
    symmetric  1     0.847   0.419    0.678   eligible
    symmetric  2     0.819   0.408    0.688   clean drop > 0.10
    symmetric  4     0.821   0.445    0.676   clean drop > 0.10

The paper's symmetric form stays below adv at every lambda of the grid on
this seed.

Grid v2 (protocol 2, `make reproduce`), declared here on 2026-12-03 AFTER
protocol 1's test results on concept_shapes were seen (README): it is not a
blind declaration, and the page says so. It was read off the validation
table above alone: the anchored form only (the symmetric one is still trained
at the chosen lambda as adv_symmetric, and stayed below adv on validation),
and lambda 1, 2, 3, the eligible range of that table (1 and 2) and the gap to
4, where clean accuracy fell by 0.16. Three candidates at protocol 2's two
seeds each keep `make reproduce` within its 90 minutes on 2 cores; protocol
1's grid of eight candidates would need about 20 more minutes. Protocol 1,
as it ran: --config.criteria.protocol=1 --config.selection.forms='("anchored",
"symmetric")' --config.selection.weights='(0.5,1.0,2.0,4.0)'.
Protocol 2's selection on grid v2 (seeds 0 and 1) chose lambda 3 on one
machine and lambda 2 on another, whose rounding trained other models (README);
the demo (`demo` below) keeps protocol 1's lambda 2, the setting its quoted
figures are of. (An earlier choice of the same setting had been read off the
test split; this selection replaces it and happens to agree.) The demo trains seed
0, the seed the selection trained: its test numbers come from the winning run,
one more reason why one seed decides nothing.
"""

from interp_jax.default_config import base_config, select_variant


def get_config(arg: str = "standard"):
  """A variant's training config (standard, adv, adv_consistent) with the protocol's
  sections; "demo": the demo's experiment (`make demo`)."""
  c = base_config()
  c.num_train_steps = 1_000
  c.adv.eps = 4 / 255
  c.adv.steps = 2
  c.adv.step_size = 1.25 * c.adv.eps
  c.adv.eps_warmup_steps = 300
  c.consistency.layers = ("fc1",)
  c.consistency.weight = 2.0
  c.consistency.anchor_clean = True
  c.selection.forms = ("anchored",)     # grid v2 (docstring); protocol 1 ran the default's
  c.selection.weights = (1.0, 2.0, 3.0)
  c.criteria.protocol = 2               # `make reproduce`; protocol 1: the docstring
  if arg == "demo":
    return demo(c)
  return select_variant(c, arg)


def demo(c):
  """One seed of standard, adv and adv_consistent at lambda 2 (protocol 1's choice; the
  demo's quoted figures are of it), without a selection: it shows the pipeline and
  decides nothing. Within its time on two CPU cores: protocol 1's analysis of the
  whole test split (protocol 2's seven-point eps sweep and AutoAttack would add their
  passes, and decide nothing on one seed either), no consistency-against-eps curve
  (its three extra attacked passes over the test split took 83 s of 631) and tracing
  on 500 test images."""
  c.criteria.protocol = 1
  c.reproduction.seeds = 1
  c.reproduction.selection = False
  c.reproduction.variants = ("standard", "adv", "adv_consistent")
  c.analysis.eps_curve = ()
  c.tracing.num_images = 500
  return c
