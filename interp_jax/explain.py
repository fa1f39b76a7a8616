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

import json
import os

from absl import app, flags
from interp_jax import cli
from interp_jax.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training workdir with an analysis (analyze first).")
flags.DEFINE_string("data_dir", None, "Where the run's data set lives, if it moved.")


def _default():
  from interp_jax.analysis.tracing import default_config
  return default_config()


cli.define_config_dict("config", _default(), "Tracing settings (analysis.tracing).")


def _read(path):
  with open(path) as f:
    return json.load(f)


def run_explain(workdir: str, cfg, data_dir=None) -> tuple[dict, str]:
  """Explains workdir's model (checks cfg first); returns the results and the page's path."""
  from interp_jax.reproduction.inspection import explain_run
  from interp_jax.training.restore import load_trained
  path = os.path.join(workdir, "analysis", "results.json")
  if not os.path.exists(path):
    raise UserError(f"{path} does not exist; run python -m interp_jax.analyze "
                    f"--workdir={workdir} first")
  run = load_trained(workdir, data_dir)
  dis_path = os.path.join(workdir, "dissection", "results.json")
  dissection = _read(dis_path) if os.path.exists(dis_path) else None
  if dissection and dissection.get("run", {}).get("checkpoint_step") != run.step:
    dissection = None  # of an older checkpoint: its concepts describe other units
  return explain_run(run, cfg, _read(path), dissection)


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  with cli.user_errors():
    results, page = run_explain(FLAGS.workdir, FLAGS.config, FLAGS.data_dir)
  det = results["detection"]
  print(f"layer {results['layer']}; accuracy " +
        ", ".join(f"{k} {v:.3f}" for k, v in results["accuracy"].items()))
  for name, e in det["attacks"].items():
    succ = "n/a" if e["auc_successful"] is None else f"{e['auc_successful']:.3f}"
    print(f"detection of {name}: ROC AUC {e['auc']:.3f} (all), {succ} (fooled against correct)")
  for ex in results["examples"]:
    top = ", ".join(f"#{n['neuron']} ({n['pd']:.3f})" for n in ex["neurons"][:3])
    print(f"{ex['kind']}: test image {ex['test_index']}, top neurons {top}")
  print(f"report: {page}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
