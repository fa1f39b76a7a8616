"""python -m interp_jax.reproduce --workdir=DIR [--config=configs/concepts.py]
                                [--config.reproduction.seeds=5 --config.analysis.k=50 ...]

The protocol that decides the paper's three findings (METHOD.md, "How a
finding is decided"):
  1. selection (config.reproduction.selection, on by default): the consistent
     loss is chosen from config.selection's grid on the validation split by the
     rule the config declares (python -m interp_jax.select; DIR/selection/),
     reusing what DIR/selection already holds; off takes the config's setting
     as it is;
  2. standard, adv, adv_consistent (the chosen loss) and adv_symmetric (the
     paper's symmetric form at the chosen lambda) are trained for
     config.reproduction.seeds seeds (after a selection, seeds other than the
     selection's own, so the winner's luck on validation does not carry into
     the test numbers), each analysed on the test split with the same attack
     and settings, and measured under FGSM;
  3. each finding is decided by the paired differences over seeds and their
     95% t-intervals, with the thresholds of config.criteria fixed beforehand.
Fewer than criteria.min_seeds (5) seeds decide nothing: their statements
say "undecided". criteria.protocol = 2 decides by protocol 2
(reproduction/findings.py): thresholds on interval bounds, each seed on its own
test share, finding 3 on the successful attacks and at matched attack success,
two seeds per selection candidate, the robust gain by the declared evaluation.

Every setting is a section of the config (default_config.py: analysis, criteria,
dissection, tracing, reproduction), overridden as --config.SECTION.FIELD=VALUE.
Writes DIR/report/summary.json (its schema: report/reproduction.py) and
DIR/report/index.html.
"""

import time

from absl import app, flags

from interp_jax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Where the runs and the report go.")
cli.define_config_file("config", "configs/concepts.py",
                       "The experiment's config file (its sections: default_config.py).")


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  config = cli.require(FLAGS, "config")
  start = time.perf_counter()
  with cli.user_errors():
    from interp_jax.reproduction.experiment import reproduce
    summary = reproduce(config, FLAGS.workdir)
  from interp_jax.report import console
  print(console.reproduction_text(summary, FLAGS.workdir, time.perf_counter() - start))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
