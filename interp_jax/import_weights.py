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

import hashlib
import json
import os

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


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _close(a, b) -> bool:
  return len(a) == len(b) and all(abs(x - y) <= 1e-6 for x, y in zip(a, b))


def import_run(config, arch: str, checkpoint: str, workdir: str, mean=None, std=None) -> int:
  """Writes `checkpoint`'s weights as a run of `config` in workdir; returns its step (0).

  `mean` / `std` (per channel) are the input statistics the weights expect;
  None takes the ones the file stores, else the architecture's
  (torch_import.ARCHS[arch].mean / .std). Raises UserError (before anything
  is written) for an unknown arch, a file that is not a tensor-only PyTorch
  checkpoint, a tensor that does not map or has the wrong shape, statistics
  that contradict the file's own, a missing data set, or a workdir holding a run.
  """
  import jax
  import jax.numpy as jnp
  import ml_collections

  from interp_jax import data, models
  from interp_jax.models import torch_checkpoint, torch_import
  from interp_jax.training import steps
  from interp_jax.training.checkpointing import Checkpoints

  if arch not in torch_import.ARCHS:
    raise UserError(f"unknown --arch {arch!r}; choose one of {torch_import.ARCHS.names()}")
  spec = torch_import.ARCHS[arch]
  given = mean is not None or std is not None
  mean = tuple(spec.mean if mean is None else mean)
  std = tuple(spec.std if std is None else std)
  models.create(spec.model, 1, **spec.options, input_mean=mean, input_std=std)  # checks them
  ckpt_dir = os.path.join(os.path.abspath(workdir), "checkpoints")
  if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
    raise UserError(f"{workdir} already holds a run; import into a new --workdir")
  state_dict = torch_checkpoint.read_state_dict(checkpoint)
  stored = torch_import.file_statistics(state_dict)
  if stored is not None:
    if given and not (_close(mean, stored[0]) and _close(std, stored[1])):
      raise UserError(f"{checkpoint} stores its own input normalisation, mean "
                      f"{list(stored[0])} and std {list(stored[1])}; drop --mean and --std "
                      "(or pass those values)")
    mean, std = stored
  options = dict(torch_import.options(arch, state_dict), input_mean=mean, input_std=std)
  with config.unlocked():
    config.variant = "standard"
    config.model.name = spec.model
    config.model.options = ml_collections.ConfigDict(options)
  meta = data.describe(config.dataset)
  if len(mean) not in (1, meta.image_shape[-1]):
    raise UserError(f"--mean and --std have {len(mean)} values; the data set's images "
                    f"have {meta.image_shape[-1]} channels")
  model = models.create(spec.model, meta.num_classes, **config.model.options)
  try:
    template = jax.eval_shape(lambda: model.init(
        jax.random.key(0), jnp.zeros((1, *meta.image_shape), jnp.float32)))
  except (ValueError, TypeError) as e:
    raise UserError(f"{arch} cannot run on the data set's {meta.image_shape} images "
                    f"({str(e).strip().splitlines()[0]}); set --config.dataset.image_size"
                    ) from None
  variables = torch_import.to_variables(arch, template, state_dict)

  tx = steps.make_optimizer(config.optimizer, config.num_train_steps)
  state = steps.TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                                  batch_stats=variables.get("batch_stats", {}))
  state = jax.tree.map(jnp.asarray, state)
  ckpt = Checkpoints(ckpt_dir, keep=config.keep_checkpoints, async_save=False)
  ckpt.save(0, state, {"step": 0, "seed": config.seed}, json.loads(config.to_json()))
  ckpt.wait()
  ckpt.close()
  with open(os.path.join(workdir, "import.json"), "w") as f:
    json.dump({"arch": arch, "checkpoint": os.path.abspath(checkpoint),
               "sha256": _sha256(checkpoint), "mean": list(mean), "std": list(std)}, f,
              indent=1)
  return 0


def main(argv):
  cli.expect(argv, FLAGS, "workdir", "checkpoint", "arch")
  config = cli.require(FLAGS, "config")
  with cli.user_errors():
    step = import_run(config, FLAGS.arch, FLAGS.checkpoint, FLAGS.workdir,
                      None if FLAGS.mean is None else _floats("mean", FLAGS.mean),
                      None if FLAGS.std is None else _floats("std", FLAGS.std))
  print(f"imported {FLAGS.arch} from {FLAGS.checkpoint} into {FLAGS.workdir} (step {step})")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
