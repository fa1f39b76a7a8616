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
OUTDIR/comparison.json, one record per JSON object, each field documented in
interp_jax/reproduction/comparison_results.py. Layers are matched by name
within one architecture and by relative depth across architectures
(interp_jax/reproduction/comparison.py says how).
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
