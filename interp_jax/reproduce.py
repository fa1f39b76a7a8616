"""python -m interp_jax.reproduce --workdir=DIR [--config=configs/concepts.py] [--seeds=N]

Reproduces the paper's three findings end to end: trains the standard, adv
and adv_consistent variants of the config (reusing runs already finished in
DIR), analyses each with the same attack and settings, measures accuracy
under FGSM and PGD, and writes DIR/report/summary.json and
DIR/report/index.html with a table per model, overlaid consistency
histograms, top-image grids and one computed statement per finding.

The work is done by experiment.reproduce. Every model is also scored on the
successful attacks alone and on one shared adversarial set made against the
standard model. summary.json:
    {"layer": the decisive layer, "eps": the attack budget, "seeds": [..], "criteria": {...},
     "analysis": {the analysis settings}, "config": {the training config, variant aside},
     "models": {VARIANT: {"clean", "fgsm", "pgd", "shared", "success_rate" (and each "_std"),
                          "layers": {LAYER: {"num_neurons",
                                             "sets": {SET: mean}, "sets_std": {SET: sd},
                                             "chance": {SET: mean}, "chance_spread": {SET: sd
                                             of random k-subsets}, "included": {SET: neurons},
                                             "purity": {SET: mean}, "purity_std",
                                             "purity_chance": {SET: mean},
                                             "comparisons": {"real_vs_X": {"num_neurons",
                                                             "real", X}},
                                             "topk_overlap", "feature_cosine"}},
                          "eps_curve": {"layer", "points": [{"factor", "eps", "mean",
                                        "purity", "num_included", "accuracy"}]},
                          "workdirs": [..]}},
     "statements": [{"finding", "holds", "evidence"}]}
SET as in results.json (report/schema.py); means over the neurons included in
each set.
Numbers are means over seeds (the _std fields their spread).
"""

import os
import time

from absl import app, flags
from ml_collections import config_flags

from interp_jax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Where the three runs and the report go.")
flags.DEFINE_integer("seeds", 1, "Train and analyse each variant with this many seeds.")
config_flags.DEFINE_config_file("config", "configs/concepts.py", "Training config file.",
                                lock_config=True)

def _default_analysis():
  from interp_jax.analysis import default_config
  return default_config()


def _default_criteria():
  from interp_jax.reproduction.findings import default_criteria
  return default_criteria()


cli.define_config_dict("analysis", _default_analysis(), "Analysis settings, shared by the models.")
cli.define_config_dict("criteria", _default_criteria(), "Thresholds of the three statements.")


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  config = cli.require(FLAGS, "config")
  start = time.perf_counter()
  with cli.user_errors():
    from interp_jax.reproduction.experiment import reproduce
    summary = reproduce(config, FLAGS.workdir, FLAGS.analysis, FLAGS.criteria, FLAGS.seeds)
  layer = summary["layer"]
  fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
  print(f"\n{'model':<16}{'clean':>7}{'fgsm':>7}{'pgd':>7}{'shared':>7}  consistency at "
        f"{layer}: real / adversarial / successful / shared")
  for v, m in summary["models"].items():
    sets = m["layers"][layer]["sets"]
    print(f"{v:<16}{m['clean']:>7.3f}{m['fgsm']:>7.3f}{m['pgd']:>7.3f}{fmt(m['shared']):>7}  "
          f"{fmt(sets['real'])} / {fmt(sets['adversarial'])} / {fmt(sets['successful'])} / "
          f"{fmt(sets.get('shared'))}")
  for s in summary["statements"]:
    print(f"\n{s['finding']}: {'HOLDS' if s['holds'] else 'DOES NOT HOLD'}\n  {s['evidence']}")
  print(f"\nreport: {os.path.join(FLAGS.workdir, 'report', 'index.html')} "
        f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
