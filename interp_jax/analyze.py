"""python -m interp_jax.analyze --workdir=DIR [--config.k=50 --config.attack=pgd ...]

Loads the checkpoint in DIR, attacks the test split, and measures per layer
how consistent each neuron is on real, adversarial and mixed images, with the
companion measures of METHOD.md section 1, the successful-attack subset, the
consistency-versus-eps curve and, with --config.source_workdir=OTHER, a shared
adversarial set made against OTHER's model (the same inputs for every model). Writes DIR/analysis/results.json
(schema: interp_jax/report/schema.py) and DIR/analysis/index.html.
Override any field of analysis.default_config() with --config.FIELD=VALUE.
"""

import json
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
  from interp_jax.training.restore import load_trained
  import jax
  run = load_trained(workdir, data_dir)
  shared_from = None
  if cfg.source_workdir:
    same = os.path.realpath(cfg.source_workdir) == os.path.realpath(workdir)
    shared_from = run if same else load_trained(cfg.source_workdir, data_dir)
  results, grids = analysis.analyze(run, cfg, shared_from=shared_from, progress=progress)
  page = os.path.join(workdir, "analysis", "index.html")
  if jax.process_index() == 0:  # every process holds the results; one writes them
    robustness = None   # the attack command's, shown on the page (AutoAttack's section)
    if os.path.exists(os.path.join(workdir, "robustness.json")):
      with open(os.path.join(workdir, "robustness.json")) as f:
        robustness = json.load(f)
    page = report.save_analysis(results, grids, os.path.join(workdir, "analysis"), robustness)
  return results, page


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  with cli.user_errors():
    results, page = run_analysis(FLAGS.workdir, FLAGS.config, FLAGS.data_dir)
  acc = results["accuracy"]
  print(f"accuracy: clean {acc['clean']:.3f}, adversarial {acc['adversarial']:.3f}"
        + (f", shared set {acc['shared']:.3f}" if "shared" in acc else "")
        + f"; the attack changed {results['attack']['success_rate']:.1%} of the predictions")
  print("consistency: mean over the neurons included in each set (their number), chance level")
  names = [s for s in ("real", "adversarial", "successful", "shared")
           if s in next(iter(results["layers"].values()))["sets"]]
  print(f"{'layer':<8}" + "".join(f"{n:>20}" for n in names) + f"{'overlap':>9}{'cosine':>8}")
  fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
  for layer, info in results["layers"].items():
    cells = "".join(
        f"{fmt(info['sets'][n]['mean']) + ' (' + str(info['sets'][n]['num_included']) + ') '}"
        f"{fmt(info['sets'][n]['chance']['mean'])}".rjust(20) for n in names)
    print(f"{layer:<8}{cells}{fmt(info['topk_overlap']['mean']):>9}"
          f"{fmt(info['feature_cosine']):>8}")
  print(f"report: {page}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
