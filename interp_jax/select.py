"""python -m interp_jax.select --workdir=DIR [--config=configs/concepts.py]
                             [--config.analysis.k=50 ...]

Chooses the consistent loss on the validation split: trains standard, adv
and every candidate of config.selection (lambda x form x layers), analyses
each on validation images with config.analysis and applies the rule declared
in the config, at config.criteria.protocol's seeds (reproduction/selection.py).
Writes DIR/selection.json (reproduction/selection.py's SelectionResult):
    {"layer", "split": "validation", "grid": config.selection, "seeds": [..], "rule": str,
     "analysis": {...}, "standard": RUN, "adv": RUN,
     "candidates": [{"name", "form", "weight", "layers", "eligible", "reasons", **RUN;
                     with seeds instead of RUN's own: "runs": [RUN per seed],
                     "clean_drop", "attack_deficit", "gap": {"mean", "se"}, "tied"}],
     "choice": {"name", "form", "weight", "layers"} or null}
    RUN = {"clean", "attacked", "adversarial_consistency"} on validation images; one seed:
          also "workdir", "real_consistency", "included"; with seeds, a run's means over
          them and "per_seed": [RUN],
and DIR/selection.html. Finished runs and analyses in DIR are reused.
"""

from absl import app, flags

from interp_jax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Where the candidate runs and selection.json go.")
cli.define_config_file("config", "configs/concepts.py",
                       "The experiment's config file (its sections: default_config.py).")


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  config = cli.require(FLAGS, "config")
  with cli.user_errors():
    from interp_jax.reproduction.selection import select
    out = select(config, FLAGS.workdir)
  from interp_jax.report import console
  print(console.selection_text(out))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
