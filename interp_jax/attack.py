"""python -m interp_jax.attack --workdir=DIR [--attacks=fgsm,pgd,autoattack --eps=8/255]

Evaluates the trained checkpoint in DIR: clean accuracy and accuracy under
each requested attack on the test split, written to DIR/robustness.json
(--split=validation: on the validation split, to DIR/robustness_validation.json,
so a budget can be chosen without reading the test split). The file's schema
and the saved images (--save_images) are described in report/robustness.py.

AutoAttack is costly on a CPU: --num_images=1000 is the usual subset.
"""

import fractions

from absl import app, flags

from interp_jax import attacks, cli
from interp_jax.errors import UserError

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
    step_size = parse_number(FLAGS.step_size, "step_size") if FLAGS.step_size else None
    from interp_jax.reproduction.stages import attack_workdir
    report, path = attack_workdir(
        FLAGS.workdir, FLAGS.attacks, eps, norm=FLAGS.norm, steps=FLAGS.steps,
        step_size=step_size, split=FLAGS.split, num_images=FLAGS.num_images,
        batch_size=FLAGS.batch_size, seed=FLAGS.seed, save_images=FLAGS.save_images,
        data_dir=FLAGS.data_dir, version=FLAGS.version, stages=FLAGS.stages,
        transfer_from=FLAGS.transfer_from)
  from interp_jax.report import console
  print(console.robustness_text(report, path))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
