"""python -m interp_jax.analyze --workdir=DIR [--config.k=50 --config.attack=pgd ...]

Loads the checkpoint in DIR, attacks the test split, and measures per layer
how consistent each neuron is on real, adversarial and mixed images, with the
companion measures of METHOD.md section 1, the successful-attack subset, the
consistency-versus-eps curve and, with --config.source_workdir=OTHER, a shared
adversarial set made against OTHER's model (the same inputs for every model).
Writes DIR/analysis/results.json (schema: interp_jax/report/schema.py) and
DIR/analysis/index.html. Override any field of the `analysis` section
(default_config.py) with --config.FIELD=VALUE.
"""

from absl import app, flags
from interp_jax import cli, default_config

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training workdir (holds checkpoints/).")
flags.DEFINE_string("data_dir", None, "Where the run's data set lives, if it moved.")


cli.define_config_dict("config", default_config.analysis_config(),
                       "Analysis settings: the `analysis` section of default_config.py.")


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  with cli.user_errors():
    from interp_jax.reproduction.stages import analyze_workdir
    results, page = analyze_workdir(FLAGS.workdir, FLAGS.config, FLAGS.data_dir)
  from interp_jax.report import console
  print(console.analysis_text(results, page))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
