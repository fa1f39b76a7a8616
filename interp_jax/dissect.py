"""python -m interp_jax.dissect --workdir=DIR [--config.broden=BRODEN_DIR --config.layers=...]

Network dissection of DIR's model (METHOD.md section 5) on real probe images
and on their adversarial versions: each unit's top 0.5% threshold, its IoU
with every concept, its detector concept on both. The probe set is the run's
own concept masks (concept_shapes' test split) or a Broden-format directory.
Writes DIR/dissection/results.json (schema: interp_jax/report/dissection_page.py),
iou.npz and index.html.
"""

from absl import app, flags
from interp_jax import cli, default_config

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training workdir (holds checkpoints/).")
flags.DEFINE_string("data_dir", None, "Where the run's data set lives, if it moved.")


cli.define_config_dict("config", default_config.dissection_config(),
                       "Dissection settings: the `dissection` section of default_config.py.")


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  with cli.user_errors():
    from interp_jax.reproduction.stages import dissect_workdir
    results, page = dissect_workdir(FLAGS.workdir, FLAGS.config, FLAGS.data_dir)
  from interp_jax.report import console
  print(console.dissection_text(results, page))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
