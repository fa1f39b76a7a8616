"""python -m interp_jax.attack --workdir=DIR [--attacks=fgsm,pgd,autoattack --eps=8/255]

Evaluates the trained checkpoint in DIR: clean accuracy and accuracy under
each requested attack on the test split, written to DIR/robustness.json
(--split=validation: on the validation split, to DIR/robustness_validation.json,
so a budget can be chosen without reading the test split):

    {"checkpoint_step": int, "split": "test" | "validation", "model": str, "dataset": str, "num_images": int,
     "clean_accuracy": float,
     "attacks": {NAME: {"eps": float, "norm": str, "steps": int, "step_size": float,
                        "accuracy": float, "seconds": float}},
     "autoattack": {                                  # with --attacks=...,autoattack
        "version": "standard" | "plus" | "custom", "eps": float, "norm": str,
                                                      # ("rand" is the library's, for
                                                      # random models: attacks.autoattack)
        "stages": [STAGE, ...], "options": {STAGE: {option: value}},
        "accuracy": float,                            # robust: no stage broke the image
        "accuracy_after": {"clean": float, STAGE: float, ...},
        "broken": {"clean": int, STAGE: int, ...},    # images each stage broke first
        "seconds": {STAGE: float},
        "transfer_accuracy": float | null,            # on --transfer_from's PGD-10 images
        "checks": {CHECK: {"flagged": bool, "value": ..., "message": str}}}}

(FGSM has no steps or step_size; AutoAttack's stages take their published
budgets, not --steps.) CHECK is zero_gradients, probabilities,
nondeterministic, square_breaks or transfer (attacks/masking.py): a flagged
check says the robust accuracy may come from gradient masking.

With --save_images, DIR/adversarial/NAME.npz (adversarial_validation/ with
--split=validation) holds `images` (float32 NHWC in
[0, 1]), `index` (the split's index of each source image), `label` (its
true class) and `prediction` (the model's class for the adversarial image);
autoattack.npz adds `broken_by` ("clean", the stage that broke the image,
or "" where it stayed robust; then `images` holds APGD-CE's best try).

AutoAttack is costly on a CPU: --num_images=1000 is the usual subset.
"""

import fractions
import json
import os

from absl import app, flags
import jax

from interp_jax import attacks, cli, data
from interp_jax.report import robustness as robustness_report
from interp_jax.errors import UserError
from interp_jax.analysis.robustness import evaluate_autoattack, evaluate_robustness

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training workdir (holds checkpoints/).")
flags.DEFINE_list("attacks", ["fgsm", "pgd"],
                  f"Attacks to run: {', '.join(attacks.REGISTRY)}, or autoattack.")
flags.DEFINE_string("eps", "8/255", "Perturbation budget, a number or a fraction like 8/255.")
flags.DEFINE_string("step_size", "", "Step size of the iterative attacks (default eps/4).")
flags.DEFINE_integer("steps", 10, "Steps of the iterative attacks.")
flags.DEFINE_enum("norm", "linf", list(attacks.NORMS), "Norm of the budget.")
flags.DEFINE_enum("split", "test", ["test", "validation"], "The split attacked.")
flags.DEFINE_integer("num_images", 0, "Attack N images of the split, chosen by content "
                     "(0 = all).")
flags.DEFINE_integer("batch_size", 256, "Images per attack batch (split over the devices).")
flags.DEFINE_integer("seed", 0, "Seed of the random starts.")
flags.DEFINE_bool("save_images", False, "Save the adversarial images to DIR/adversarial/.")
flags.DEFINE_string("data_dir", None, "Where the run's data set lives, if it moved.")
flags.DEFINE_enum("version", "standard", list(attacks.VERSIONS), "AutoAttack's version.")
flags.DEFINE_list("stages", [], "AutoAttack's stages instead of a version, in order: "
                  f"{', '.join(attacks.STAGES)}.")
flags.DEFINE_string("transfer_from", None, "A workdir of another model: AutoAttack's "
                    "transfer check attacks it with PGD-10 and scores this model on the result.")


def parse_number(text: str, name: str) -> float:
  try:
    return float(fractions.Fraction(text.strip()))
  except (ValueError, ZeroDivisionError):
    raise UserError(f"--{name} must be a number or a fraction like 8/255, got {text!r}") from None


def main(argv):
  cli.expect(argv, FLAGS, "workdir")
  with cli.user_errors():
    eps = parse_number(FLAGS.eps, "eps")
    step_size = parse_number(FLAGS.step_size, "step_size") if FLAGS.step_size else eps / 4
    if FLAGS.batch_size < 1:
      raise UserError(f"--batch_size must be a positive integer, got {FLAGS.batch_size}")
    auto = "autoattack" in FLAGS.attacks
    specs = [attacks.AttackSpec(n, eps, FLAGS.norm, FLAGS.steps, step_size)
             for n in FLAGS.attacks if n != "autoattack"]
    if auto or FLAGS.stages:
      attacks.autoattack_plan(FLAGS.version, FLAGS.stages or None)  # names checked now
    if auto and FLAGS.version == "rand" and not FLAGS.stages:
      raise UserError("--version=rand evaluates models with a random forward pass (it "
                      "averages 20 draws a step); a trained run's model is deterministic: "
                      "use --version=standard")
    from interp_jax.training.restore import load_trained
    run = load_trained(FLAGS.workdir, FLAGS.data_dir)
    other = load_trained(FLAGS.transfer_from, FLAGS.data_dir) if FLAGS.transfer_from else None
    if other is not None and (other.meta.image_shape, other.meta.num_classes) != (
        run.meta.image_shape, run.meta.num_classes):
      raise UserError(f"--transfer_from's model takes {other.meta.image_shape} images of "
                      f"{other.meta.num_classes} classes, this one {run.meta.image_shape} of "
                      f"{run.meta.num_classes}: it cannot attack this model's images")
    if other is not None and not auto:
      raise UserError("--transfer_from feeds AutoAttack's transfer check: add autoattack to "
                      "--attacks")
    specs = [spec.check(run.meta.image_shape) for spec in specs]
    attacks.AttackSpec("pgd", eps, FLAGS.norm).check(run.meta.image_shape)
    source = data.open_split(run.config.dataset, FLAGS.split)
    if FLAGS.num_images:
      source = data.sample_by_content(source, FLAGS.num_images)
    folder = "adversarial" if FLAGS.split == "test" else f"adversarial_{FLAGS.split}"
    save_dir = os.path.join(FLAGS.workdir, folder) if FLAGS.save_images else None
    report = evaluate_robustness(run, specs, source, FLAGS.batch_size,
                                 jax.random.key(FLAGS.seed), save_dir)
    if auto:
      transfer = (other.model.apply, other.variables, FLAGS.transfer_from) if other else None
      report["autoattack"] = evaluate_autoattack(
          run, source, eps, FLAGS.norm, FLAGS.version, FLAGS.stages or None, FLAGS.batch_size,
          jax.random.key(FLAGS.seed), save_dir, transfer)
      if not specs:  # no other attack made the clean pass
        report["clean_accuracy"] = report["autoattack"]["accuracy_after"]["clean"]
    report["split"] = FLAGS.split
  name = "robustness.json" if FLAGS.split == "test" else f"robustness_{FLAGS.split}.json"
  path = os.path.join(FLAGS.workdir, name)
  if jax.process_index() == 0:  # every process holds the report; one writes it
    with open(path, "w") as f:
      json.dump(report, f, indent=2)
  print(f"clean accuracy {report['clean_accuracy']:.4f}; " + "; ".join(
      f"{k} {v['accuracy']:.4f}" for k, v in report["attacks"].items()) + f" -> {path}")
  if "autoattack" in report:
    print(robustness_report.autoattack_summary(report["autoattack"]))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
