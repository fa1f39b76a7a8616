"""python -m interp_jax.analyze --workdir=DIR [--config.k=50 --config.attack=pgd ...]

Loads the checkpoint in DIR, attacks the test split, and measures per layer
how consistent each neuron is on real, adversarial and mixed images, with the
companion measures of METHOD.md section 1. Writes DIR/analysis/results.json
(schema: interp_jax/report/schema.py) and DIR/analysis/index.html.
Override any field of analysis.default_config() with --config.FIELD=VALUE.
"""

import os

from absl import app, flags
from interp_jax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training workdir (holds checkpoints/).")
flags.DEFINE_string("data_dir", None, "Where the run's data set lives, if it moved.")


def _default():
  from interp_jax.analysis import default_config
  return default_config()


cli.define_config_dict("config", _default(), "Analysis settings (analysis.default_config).")


def run_analysis(workdir: str, cfg, data_dir=None, progress=True) -> tuple[dict, str]:
  """Analyses workdir's checkpoint (analyze checks cfg before any compute);
  returns the results and the path of the HTML report."""
  from interp_jax import analysis, report
  from interp_jax.restore import load_trained
  run = load_trained(workdir, data_dir)
  results, images = analysis.analyze(run, cfg, progress=progress)
  page = report.save_analysis(results, images, os.path.join(workdir, "analysis"),
                              cfg.report_tiles, cfg.report_neurons)
  return results, page


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  with cli.user_errors():
    results, page = run_analysis(FLAGS.workdir, FLAGS.config, FLAGS.data_dir)
  print(f"accuracy: clean {results['accuracy']['clean']:.3f}, "
        f"adversarial {results['accuracy']['adversarial']:.3f}")
  print(f"{'layer':<8}{'real':>8}{'adv':>8}{'mixed':>8}{'by pred':>9}{'chance':>8}"
        f"{'overlap':>9}{'cosine':>8}")
  for layer, info in results["layers"].items():
    sets = info["sets"]
    print(f"{layer:<8}{sets['real']['mean']:>8.3f}{sets['adversarial']['mean']:>8.3f}"
          f"{sets['mixed']['mean']:>8.3f}{sets['adversarial_by_prediction']['mean']:>9.3f}"
          f"{info['chance']['mean']:>8.3f}{info['topk_overlap']['mean']:>9.3f}"
          f"{info['feature_cosine']:>8.3f}")
  print(f"report: {page}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
