"""python -m interp_jax.compare --runs=DIR,DIR[,...] --out=OUTDIR

Puts trained or imported runs side by side, as a paper's table, from what
each run already holds (nothing is recomputed): accuracy under the analysis
attack and in DIR/robustness.json (AutoAttack's robust accuracy with its
masking checks), consistency per layer on real, own adversarial, successful
and shared adversarial images with their chance levels, the share of
above-chance consistency each attack removes, detectors per concept category
(DIR/dissection) and the adversarial-input detector's ROC AUC (DIR/explain).
A run lacking a file gets a note naming the command that makes it.
Writes OUTDIR/index.html, OUTDIR/robust_vs_consistency.png and
OUTDIR/comparison.json (validated against report/comparison_page.py's SCHEMA):

    {"runs": [{"name": the run folder's name, "workdir", "model", "dataset", "checkpoint_step",
               "imported": null | {"arch", "checkpoint"},  # DIR/import.json's, when imported
               "notes": [str],                           # e.g. "not analysed: run ..."
               "analysis": null | {"num_images", "attack", "eps", "norm", "steps", "k",
                                   "accuracy": {"clean", "adversarial", "shared"?},
                                   "success_rate"},
               "robustness": null | {"num_images", "split", "clean",
                                     "attacks": {NAME: {"accuracy", "eps", "norm", "steps"}},
                                     "autoattack": null | {"version", "eps", "norm", "accuracy",
                                                           "flagged": [CHECK],
                                                           "checks": {CHECK: {"flagged",
                                                                              "message"}}}},
               "robust": null | {"accuracy", "source": "autoattack" | "analysis"},
               "detectors": null | {"iou_threshold", "categories": [str],
                                    "layers": {LAYER: {"real" | "adversarial":
                                                       {CATEGORY: int}}}},
               "detection": null | {"layer", "attacks": {ATTACK: {"auc", "auc_successful"}}}}],
     "sets": [SET],                                      # real, adversarial, successful, shared
     "rows": [{"label": LAYER | "depth 0.33",           # by name, or by relative depth
               "matched_by": "name" | "relative depth", "depth": null | float,
               "models": {NAME: null | {"layer", "depth": i/(n-1), "num_neurons",
                                        "sets": {SET: {"mean", "chance", "chance_std",
                                                       "num_included"}},
                                        "removed": {SET: float | null},
                                        "removed_na": {SET: {"reason": "near chance" |
                                                                       "no paired neurons" |
                                                                       "no chance level",
                                                             "detail": str}}}}}],
     "figure": null | {"file": "robust_vs_consistency.png",
                       "points": [{"name", "layer", "consistency", "chance",
                                   "robust_accuracy", "source"}]},  # at the last layer
     "notes": [str]}                                     # where the runs were measured unalike

models[NAME] is null where the run was not analysed. chance_std is the
std of the chance level over random k-subsets of the set. removed[SET] is
(real - SET) / (real - chance) over the neurons included in both sets
(reproduction/differences.py's exposure); it is null, and removed_na[SET]
says why, where real - chance is at most the real set's chance_std ("near
chance": the ratio would divide by noise), where no neuron is in both sets,
or where the real set has no chance level. robust is AutoAttack's robust
accuracy when robustness.json has it, else the analysis attack's accuracy.
Layers are matched by name within one architecture and by relative depth
across architectures (interp_jax/reproduction/comparison.py says how).
"""

from absl import app, flags

from interp_jax import cli

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", None, "Run directories to compare, separated by commas (two or more).")
flags.DEFINE_string("out", None, "Folder for index.html, comparison.json and the figure.")


def main(argv):
  cli.expect(argv, FLAGS, "runs", "out")
  from interp_jax.report import comparison_page
  from interp_jax.reproduction.comparison import compare_runs
  with cli.user_errors():
    comparison, page = compare_runs(FLAGS.runs, FLAGS.out)
  print(comparison_page.text(comparison))
  print(f"report: {page}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
