"""python -m interp_jax.attack --workdir=DIR [--attacks=fgsm,pgd --eps=8/255 --steps=10]

Evaluates the trained checkpoint in DIR: clean accuracy and accuracy under
each requested attack on the test split, written to DIR/robustness.json:

    {"checkpoint_step": int, "model": str, "dataset": str, "num_images": int,
     "clean_accuracy": float,
     "attacks": {NAME: {"eps": float, "norm": str, "steps": int, "step_size": float,
                        "accuracy": float, "seconds": float}}}

(FGSM has no steps or step_size.)

With --save_images, DIR/adversarial/NAME.npz holds `images` (float32 NHWC in
[0, 1]), `index` (the test-split index of each source image), `label` (its
true class) and `prediction` (the model's class for the adversarial image).
"""

import fractions
import json
import os

from absl import app, flags
import jax

from interp_jax import attacks, cli, data
from interp_jax.errors import UserError
from interp_jax.analysis.robustness import evaluate_robustness

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A training workdir (holds checkpoints/).")
flags.DEFINE_list("attacks", ["fgsm", "pgd"], f"Attacks to run: {', '.join(attacks.REGISTRY)}.")
flags.DEFINE_string("eps", "8/255", "Perturbation budget, a number or a fraction like 8/255.")
flags.DEFINE_string("step_size", "", "Step size of the iterative attacks (default eps/4).")
flags.DEFINE_integer("steps", 10, "Steps of the iterative attacks.")
flags.DEFINE_enum("norm", "linf", list(attacks.NORMS), "Norm of the budget.")
flags.DEFINE_integer("num_images", 0, "Attack N test images, chosen by content (0 = all).")
flags.DEFINE_integer("batch_size", 256, "Images per attack batch (split over the devices).")
flags.DEFINE_integer("seed", 0, "Seed of the random starts.")
flags.DEFINE_bool("save_images", False, "Save the adversarial images to DIR/adversarial/.")
flags.DEFINE_string("data_dir", None, "Where the run's data set lives, if it moved.")


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
    specs = [attacks.AttackSpec(n, eps, FLAGS.norm, FLAGS.steps, step_size)
             for n in FLAGS.attacks]
    from interp_jax.training.restore import load_trained
    run = load_trained(FLAGS.workdir, FLAGS.data_dir)
    specs = [spec.check(run.meta.image_shape) for spec in specs]
    source = data.open_split(run.config.dataset, "test")
    if FLAGS.num_images:
      source = data.sample_by_content(source, FLAGS.num_images)
    save_dir = os.path.join(FLAGS.workdir, "adversarial") if FLAGS.save_images else None
    report = evaluate_robustness(run, specs, source, FLAGS.batch_size,
                                 jax.random.key(FLAGS.seed), save_dir)
  path = os.path.join(FLAGS.workdir, "robustness.json")
  if jax.process_index() == 0:  # every process holds the report; one writes it
    with open(path, "w") as f:
      json.dump(report, f, indent=2)
  print(f"clean accuracy {report['clean_accuracy']:.4f}; " + "; ".join(
      f"{k} {v['accuracy']:.4f}" for k, v in report["attacks"].items()) + f" -> {path}")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
