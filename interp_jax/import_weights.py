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
and torchvision's layout options), the variant "standard". --mean and --std
(torchvision's ImageNet values by default; --mean=0 --std=1 for none) become
part of the model, which therefore takes images in [0, 1] like every model here.

Architectures: alexnet, vgg11, vgg11_bn, vgg16, vgg16_bn, resnet18, resnet34,
resnet50 (torchvision), resnet20, resnet32, resnet44, resnet56 (CIFAR, option A).
Everything is checked before anything is written.
"""

import hashlib
import json
import os

from absl import app, flags

from interp_jax import cli
from interp_jax.errors import UserError

IMAGENET_MEAN = ("0.485", "0.456", "0.406")
IMAGENET_STD = ("0.229", "0.224", "0.225")

FLAGS = flags.FLAGS
cli.define_config_file("config", None, "Config file, optionally :variant; its "
                       "data set gives the classes and the image size.")
flags.DEFINE_string("arch", None, "Architecture of the checkpoint (alexnet, vgg16_bn, "
                    "resnet50, resnet20, ...).")
flags.DEFINE_string("checkpoint", None, "A file written by torch.save: a state dict, or a "
                    "dict holding one under state_dict or model.")
flags.DEFINE_string("workdir", None, "New run directory to write.")
flags.DEFINE_list("mean", list(IMAGENET_MEAN), "Per-channel input mean the weights expect.")
flags.DEFINE_list("std", list(IMAGENET_STD), "Per-channel input std the weights expect.")


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


def import_run(config, arch: str, checkpoint: str, workdir: str,
               mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)) -> int:
  """Writes `checkpoint`'s weights as a run of `config` in workdir; returns its step (0).

  Raises UserError (before anything is written) for an unknown arch, a
  file that is not a tensor-only PyTorch checkpoint, a tensor that does not
  map or has the wrong shape, a missing data set, or a workdir holding a run.
  """
  import jax
  import jax.numpy as jnp
  import ml_collections

  from interp_jax import data, models
  from interp_jax.models import torch_checkpoint, torch_import
  from interp_jax.training import steps
  from interp_jax.training.checkpointing import Checkpoints

  if arch not in torch_import.ARCHS:
    raise UserError(f"unknown --arch {arch!r}; choose one of {sorted(torch_import.ARCHS)}")
  spec = torch_import.ARCHS[arch]
  options = dict(spec.options, input_mean=tuple(mean), input_std=tuple(std))
  models.create(spec.model, 1, **options)  # checks mean and std
  ckpt_dir = os.path.join(os.path.abspath(workdir), "checkpoints")
  if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
    raise UserError(f"{workdir} already holds a run; import into a new --workdir")
  state_dict = torch_checkpoint.read_state_dict(checkpoint)
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
                      _floats("mean", FLAGS.mean), _floats("std", FLAGS.std))
  print(f"imported {FLAGS.arch} from {FLAGS.checkpoint} into {FLAGS.workdir} (step {step})")


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
