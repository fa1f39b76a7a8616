"""python -m interp_jax.reproduce --workdir=DIR [--config=configs/concepts.py] [--seeds=5]

The protocol that decides the paper's three findings (METHOD.md, "How a
finding is decided"):
  1. selection (`--selection=on`, the default): the consistent loss is chosen
     from config.selection's grid on the validation split by the rule the
     config declares (python -m interp_jax.select; DIR/selection/), reusing
     what DIR/selection already holds; `--selection=off` takes the config's
     setting as it is;
  2. standard, adv, adv_consistent (the chosen loss) and adv_symmetric (the
     paper's symmetric form at the chosen lambda) are trained for `--seeds`
     seeds (after a selection, seeds other than the selection's own, so the
     winner's luck on validation does not carry into the test numbers), each
     analysed on the test split with the same attack and settings, and
     measured under FGSM;
  3. each finding is decided by the paired differences over seeds and their
     95% t-intervals, with the thresholds of `--criteria` fixed beforehand.
Fewer than `--criteria.min_seeds` (5) seeds decide nothing: their statements
say "undecided". `--criteria.protocol=2` decides by protocol 2
(reproduction/findings.py): thresholds on interval bounds, each seed on its own
test share, finding 3 on the successful attacks and at matched attack success,
two seeds per selection candidate, the robust gain by the declared evaluation.

Writes DIR/report/summary.json and DIR/report/index.html. summary.json:
    {"layer": the decisive layer, "eps": the attack budget, "seeds": [..], "variants": [..],
     "protocol": {"version", "declared_in" (the commit whose criteria declared it; null
                  until filled), "head" (the commit the run ran from), "head_has_changes",
                  "as_declared" (the criteria are the declared ones), "changed": {FIELD:
                  [declared, used]}},
     "criteria": {...}, "analysis": {the analysis settings}, "config": {the training config
     with the chosen loss, variant aside}, "selection": null or {"workdir", "choice",
     "rule", "layer", "page", "num_candidates", "seed", "seeds"}, "notes": [str],
     "test_shares": [{"seed", "num_images", "images_digest" (the same for every model of
                     the seed)}],
     "robust_evaluation" (protocol 2): {"attack", "version", "stages", "steps", "images",
                                        "text", "variants"},
     "models": {VARIANT: {"clean", "fgsm", "pgd", "shared", "success_rate" (each with "_std",
                          the sample sd over seeds, and "_ci", its 95% t-interval [low, high]
                          or null for one seed),
                          "layers": {LAYER: {"num_neurons",
                                             "sets": {SET: mean}, "sets_std", "sets_ci",
                                             "chance": {SET: mean}, "chance_spread": {SET: sd
                                             of random k-subsets}, "included": {SET: neurons},
                                             "purity": {SET: mean}, "purity_std", "purity_ci",
                                             "purity_chance": {SET: mean},
                                             "comparisons": {"real_vs_X": {"num_neurons",
                                                             "real", X}},
                                             "topk_overlap", "feature_cosine"}},
                          "eps_curve": {"layer", "points": [{"factor", "eps", "mean",
                                        "paired_mean", "purity", "num_included", "accuracy",
                                        "turned_wrong"}]},
                          protocol 2: "matched": {"rate", "measure", "per_seed": [MATCHED],
                                                  "mean", "mean_factor"},
                          and for standard and adv_consistent "robust" (+ "_std", "_ci"):
                          accuracy under the declared evaluation, and "robust_flagged":
                          AutoAttack's checks against gradient masking that flagged a seed,
                          "workdirs": [..]}},
     "differences": {"layer", "confidence",
                     "decisive": {NAME: INTERVAL},
                     "layers": {LAYER: {"adversarial" | "successful" | "shared":
                                        {NAME: INTERVAL}}}},
     "statements": [{"finding", "holds": true | false | null (undecided: fewer seeds than
                     criteria.min_seeds, or a number missing), "verdict", "failed",
                     "undecided" (protocol 2: the checks that could not be decided),
                     "evidence"}],
     "inspection": {VARIANT: {  (the first reported seed's models; {} with --inspect=off)
         "dissection": {LAYER: {"real" | "adversarial": {CATEGORY: detectors}, "changed"}},
         "iou_threshold": a detector's IoU threshold (null without a dissection),
         "detection": {"layer", ATTACK: {"auc", "auc_successful"}},
         "pages": {"dissection" (when the data have concept masks or --dissection.broden
                   is given), "explain"}}}}
SET as in results.json (report/schema.py); means over the neurons included in
each set, then over seeds. INTERVAL = {"mean", "sd", "n", "low", "high",
"confidence", "side" ("above zero", "below zero", "straddles zero" or "one seed"),
"per_seed"} (null where a seed has no included neuron); NAME is
"A_minus_B" (model A's mean consistency on the set minus model B's),
"standard_real_minus_set" ("_adversarial" in "decisive"), "exposure_V" (the
share of V's above-chance real consistency the set removes),
"exposure_B_minus_A", "standard_real_minus_chance", "clean_drop" (standard -
adv_consistent), "robust_gain" (adv_consistent - standard under the analysis
attack; protocol 2: under the declared evaluation, the analysis attack's then
being "robust_gain_analysis"), "successful_A_minus_B" (the decisive layer's
successful set) and, protocol 2, "matched_A_minus_B" (at matched attack
success). MATCHED = {"value", "eps", "factor", "between", "reached",
"max_rate", "derived", "rate"} (reproduction/matched.py). Differences are
taken seed by seed (reproduction/differences.py).
"""

import os
import time

from absl import app, flags

from interp_jax import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Where the three runs and the report go.")
flags.DEFINE_integer("seeds", 5, "Train and analyse each variant with this many seeds.")
flags.DEFINE_enum("selection", "on", ["on", "off"],
                  "on: choose the consistent loss on the validation split first; off: take "
                  "the config's.")
flags.DEFINE_list("variants", ["standard", "adv", "adv_consistent", "adv_symmetric"],
                  "Variants to train: standard, adv, adv_consistent and optionally "
                  "adv_symmetric (the paper's symmetric loss at the chosen lambda).")
flags.DEFINE_enum("inspect", "on", ["on", "off"],
                  "on: also dissect and explain each model of the first reported seed.")
cli.define_config_file("config", "configs/concepts.py", "Training config file.")

def _default_analysis():
  from interp_jax.analysis import default_config
  return default_config()


def _default_criteria():
  from interp_jax.reproduction.findings import default_criteria
  return default_criteria()


def _default_dissection():
  from interp_jax.analysis.dissection import default_config
  return default_config()


def _default_tracing():
  from interp_jax.analysis.tracing import default_config
  return default_config()


cli.define_config_dict("analysis", _default_analysis(), "Analysis settings, shared by the models.")
cli.define_config_dict("dissection", _default_dissection(), "Dissection settings (--inspect=on).")
cli.define_config_dict("tracing", _default_tracing(), "Tracing settings (--inspect=on).")
cli.define_config_dict("criteria", _default_criteria(), "Thresholds of the three statements.")


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  config = cli.require(FLAGS, "config")
  start = time.perf_counter()
  with cli.user_errors():
    from interp_jax.reproduction.experiment import reproduce
    summary = reproduce(config, FLAGS.workdir, FLAGS.analysis, FLAGS.criteria, FLAGS.seeds,
                        selection=FLAGS.selection == "on", variants=FLAGS.variants,
                        inspect=FLAGS.inspect == "on", dissection_cfg=FLAGS.dissection,
                        tracing_cfg=FLAGS.tracing)
  layer = summary["layer"]
  fmt = lambda v: "n/a" if v is None else f"{v:.3f}"
  if summary["selection"]:
    choice = summary["selection"]["choice"]
    print(f"\nselection on the validation split: "
          f"{choice['name'] if choice else 'no candidate met the rule; the config is kept'}")
  print(f"\n{'model':<16}{'clean':>7}{'fgsm':>7}{'pgd':>7}{'shared':>7}  consistency at "
        f"{layer}: real / adversarial / successful / shared")
  for v, m in summary["models"].items():
    sets = m["layers"][layer]["sets"]
    print(f"{v:<16}{m['clean']:>7.3f}{m['fgsm']:>7.3f}{m['pgd']:>7.3f}{fmt(m['shared']):>7}  "
          f"{fmt(sets['real'])} / {fmt(sets['adversarial'])} / {fmt(sets['successful'])} / "
          f"{fmt(sets.get('shared'))}")
  for v, ins in summary["inspection"].items():
    det = ins["detection"]
    aucs = ", ".join(f"{a} {e['auc']:.3f}" for a, e in det.items() if a != "layer")
    cats = ""
    if ins["dissection"]:
      last = list(ins["dissection"])[-1]
      d = ins["dissection"][last]
      cats = (f"detectors at {last} (real/adv): " + ", ".join(
          f"{c} {d['real'][c]}/{d['adversarial'][c]}" for c in d["real"]) + "; ")
    print(f"{v:<16}{cats}detection AUC at {det['layer']}: {aucs}")
  proto = summary["protocol"]
  declared = proto["declared_in"] or "a commit not recorded yet"
  criteria = "as declared" if proto["as_declared"] else "changed: " + ", ".join(proto["changed"])
  print(f"\nprotocol {proto['version']} (declared in {declared}; criteria {criteria})")
  for s in summary["statements"]:
    print(f"\n{s['finding']}: {s['verdict'].upper()}\n  {s['evidence']}")
  for note in summary["notes"]:
    print(f"note: {note}")
  print(f"\nreport: {os.path.join(FLAGS.workdir, 'report', 'index.html')} "
        f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
