"""python -m interp_jax.dissect --workdir=DIR [--config.broden=BRODEN_DIR --config.layers=...]

Network dissection of DIR's model (METHOD.md section 5) on real probe images
and on their adversarial versions: each unit's top 0.5% threshold, its IoU
with every concept, its detector concept on both. The probe set is the run's
own concept masks (concept_shapes' test split) or a Broden-format directory.
Writes DIR/dissection/results.json (schema: interp_jax/report/dissection_page.py),
iou.npz and index.html.
"""

from absl import app, flags
from interp_jax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training workdir (holds checkpoints/).")
flags.DEFINE_string("data_dir", None, "Where the run's data set lives, if it moved.")


def _default():
  from interp_jax.analysis.dissection import default_config
  return default_config()


cli.define_config_dict("config", _default(), "Dissection settings (analysis.dissection).")


def run_dissection(workdir: str, cfg, data_dir=None) -> tuple[dict, str]:
  """Dissects workdir's model (checks cfg first); returns the results and the page's path."""
  from interp_jax.reproduction.inspection import dissect_run
  from interp_jax.training.restore import load_trained
  return dissect_run(load_trained(workdir, data_dir), cfg)


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  with cli.user_errors():
    results, page = run_dissection(FLAGS.workdir, FLAGS.config, FLAGS.data_dir)
  cats = sorted(set(results["concepts"]["categories"]))
  print("detectors per concept category, real / adversarial")
  print(f"{'layer':<10}{'units':>6}" + "".join(f"{c:>14}" for c in cats) + f"{'changed':>9}")
  for layer, info in results["layers"].items():
    r, a = info["sets"]["real"], info["sets"]["adversarial"]
    cells = "".join(f"{r['detectors_per_category'].get(c, 0):>8} / "
                    f"{a['detectors_per_category'].get(c, 0):<3}" for c in cats)
    print(f"{layer:<10}{info['units']:>6}{cells}{len(info['changed']):>9}")
  print(f"report: {page}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
