"""Load a trained run from its workdir: config, data description, model, variables.

    run = load_trained("runs/standard")
    logits = run.model.apply(run.variables, images)

Everything after training (attack evaluation, analysis, reproduction) starts
here, so the config a run was trained with is the one it is analysed with.
"""

import dataclasses
import os

import jax
import ml_collections

from interp_jax import data, models, sharding
from interp_jax.training import steps
from interp_jax.training.checkpointing import Checkpoints
from interp_jax.errors import UserError


@dataclasses.dataclass
class TrainedRun:
  workdir: str
  config: ml_collections.ConfigDict
  meta: data.Meta
  model: object
  variables: dict
  step: int


def load_trained(workdir: str, data_dir: str | None = None) -> TrainedRun:
  """The latest checkpoint of workdir; `data_dir` overrides where its data live."""
  ckpt_dir = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(ckpt_dir):
    raise UserError(f"{workdir} holds no checkpoints; train first with "
                    f"python -m interp_jax.train --workdir={workdir}")
  ckpt = Checkpoints(ckpt_dir)
  step = ckpt.latest_step()
  if step is None:
    raise UserError(f"{workdir} holds no finished checkpoint; train first")
  config = ml_collections.ConfigDict(ckpt.saved_config())
  if data_dir is not None:
    config.dataset.data_dir = data_dir
  meta = data.describe(config.dataset)
  model = models.create(config.model.name, meta.num_classes, **config.model.options)
  tx = steps.make_optimizer(config.optimizer, config.num_train_steps)
  # Restored replicated over this machine's devices, whatever the topology that
  # saved it: a run trained on a pod or a GPU loads on a laptop.
  everywhere = sharding.replicated(sharding.data_mesh())
  abstract = jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=everywhere),
      jax.eval_shape(lambda: steps.create_train_state(model, tx, meta.image_shape,
                                                      jax.random.key(0))))
  state, _ = ckpt.restore(abstract, step)
  ckpt.close()
  return TrainedRun(workdir, config, meta, model,
                    {"params": state.params, "batch_stats": state.batch_stats}, step)
