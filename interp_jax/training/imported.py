"""A run made of imported PyTorch weights: what `python -m interp_jax.import_weights` writes.

    import_run(config, "resnet20", "resnet20.pth", "runs/resnet20")   # returns its step, 0

The run directory holds what training writes (one checkpoint at step 0: the
imported params and batch_stats, a fresh optimizer state, the data position and
the config) and `import.json` naming the source file and its sha256; every
command then loads it like a trained run (training/restore.py). The command's
docstring says which architectures and normalisations are read.
"""

import hashlib
import json
import os

import jax
import jax.numpy as jnp
import ml_collections

from interp_jax import data, models
from interp_jax.errors import UserError
from interp_jax.models import torch_checkpoint, torch_import
from interp_jax.records import Record, record
from interp_jax.training import steps
from interp_jax.training.checkpointing import Checkpoints

FILE = "import.json"


@record
class Imported(Record):
  """DIR/import.json: where an imported run's weights came from."""
  arch: str                          # torch_import.ARCHS's name
  checkpoint: str                    # the PyTorch file, an absolute path
  sha256: str                        # of that file
  mean: tuple[float, ...]            # the input statistics the weights expect, per channel
  std: tuple[float, ...]


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
  source = Imported(arch, os.path.abspath(checkpoint), _sha256(checkpoint),
                    tuple(map(float, mean)), tuple(map(float, std)))
  with open(os.path.join(workdir, FILE), "w") as f:
    json.dump(source.to_json(), f, indent=1)
  return 0
