"""python -m interp_jax.explain --workdir=DIR [--config.images=3,17 --config.layer=fc1 ...]

Traces predictions of DIR's model to the neurons that made them (METHOD.md
section 4): the prediction difference of every neuron of a layer for a clean
test image, its adversarial version, a misclassified image and the test
images asked for, each neuron with its top images, consistency and
dissection concept; and the ROC AUC of detecting FGSM and PGD images from
how far their influential neurons' classes disagree with the prediction.
Reads DIR/analysis/results.json (run analyze first) and, when present,
DIR/dissection/results.json. Writes DIR/explain/results.json (schema:
interp_jax/report/tracing_page.py) and index.html.
"""

from absl import app, flags
from interp_jax import cli, default_config

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training workdir with an analysis (analyze first).")
flags.DEFINE_string("data_dir", None, "Where the run's data set lives, if it moved.")


cli.define_config_dict("config", default_config.tracing_config(),
                       "Tracing settings: the `tracing` section of default_config.py.")


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  with cli.user_errors():
    from interp_jax.reproduction.stages import explain_workdir
    results, page = explain_workdir(FLAGS.workdir, FLAGS.config, FLAGS.data_dir)
  from interp_jax.report import console
  print(console.tracing_text(results, page))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
