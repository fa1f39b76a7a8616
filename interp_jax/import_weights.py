"""python -m interp_jax.import_weights --arch=resnet50 --checkpoint=resnet50.pth \
    --config=configs/imagenet_resnet50.py --workdir=runs/resnet50_imported

Imports PyTorch weights (a file torch.save wrote, read without running any of
its code) into a run directory that every later command loads like a trained
run (`analyze`, `attack`, ... through training/restore.py's load_trained).
The run holds what training writes: `checkpoints/` with one checkpoint, step 0
(the train state with the imported params and batch_stats and a fresh
optimizer state, the data position {"step": 0, "seed": config.seed}, and the
config), plus `import.json` naming the source file. The config is the
--config file with its overrides; the model is --arch's (its registry name
and layout options), the variant "standard". The input normalisation becomes
part of the model, which therefore takes images in [0, 1] like every model
here: the one the file stores (the robustness library's normaliser,
RobustBench's mu/sigma; --mean and --std, if given, must agree with it), else
--mean and --std, else the architecture's own (torchvision's ImageNet values,
RobustBench's CIFAR-10 values, none for the Madry/TRADES WRNs; --mean=0
--std=1 for none).

Architectures: alexnet, vgg11, vgg11_bn, vgg16, vgg16_bn, resnet18, resnet34,
resnet50 (torchvision), resnet20, resnet32, resnet44, resnet56 (CIFAR, option A),
preact_resnet18, wrn28_10, wrn34_10, wrn34_20, dm_wrn28_10, dm_wrn34_20,
dm_wrn70_16, dm_wrn106_16 (RobustBench's CIFAR-10 models), robustness_resnet50,
robustness_cifar_resnet50 (the robustness library's). Everything is checked
before anything is written.
"""

from absl import app, flags

from interp_jax import cli
from interp_jax.errors import UserError

FLAGS = flags.FLAGS
cli.define_config_file("config", None, "Config file, optionally :variant; its "
                       "data set gives the classes and the image size.")
flags.DEFINE_string("arch", None, "Architecture of the checkpoint (alexnet, vgg16_bn, "
                    "resnet50, resnet20, preact_resnet18, wrn28_10, dm_wrn70_16, "
                    "robustness_resnet50, ...).")
flags.DEFINE_string("checkpoint", None, "A file written by torch.save: a state dict, or a "
                    "dict holding one under state_dict or model.")
flags.DEFINE_string("workdir", None, "New run directory to write.")
flags.DEFINE_list("mean", None, "Per-channel input mean the weights expect (default: the "
                  "file's, else the architecture's; torchvision's ImageNet mean for its models).")
flags.DEFINE_list("std", None, "Per-channel input std the weights expect (default as --mean).")


def _floats(name: str, values) -> tuple[float, ...]:
  try:
    return tuple(float(v) for v in values)
  except ValueError:
    raise UserError(f"--{name} must be comma-separated numbers, got {','.join(values)}") from None


def main(argv):
  cli.expect(argv, FLAGS, "workdir", "checkpoint", "arch")
  config = cli.require(FLAGS, "config")
  with cli.user_errors():
    from interp_jax.training.imported import import_run
    step = import_run(config, FLAGS.arch, FLAGS.checkpoint, FLAGS.workdir,
                      None if FLAGS.mean is None else _floats("mean", FLAGS.mean),
                      None if FLAGS.std is None else _floats("std", FLAGS.std))
  print(f"imported {FLAGS.arch} from {FLAGS.checkpoint} into {FLAGS.workdir} (step {step})")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
