"""A thin wrapper around Orbax's CheckpointManager for one training run.

Each step's checkpoint holds three items: `state` (the TrainState pytree),
`data` (the input iterator's position) and `config` (the run's config as
JSON, so a later command knows which model the workdir holds).

    ckpt = Checkpoints(workdir / "checkpoints", keep=3)
    ckpt.saved_config()                      # None for a fresh workdir
    state, data_state = ckpt.restore(abstract_state)   # latest step
    ckpt.save(step, state, data_state, config_json); ckpt.wait()

Saves are asynchronous (written while training goes on) except on XLA's CPU
backend. There a saved array's host copy is the device buffer itself, which
the next train step donates, and one run of the MNIST protocol hung in a
train step's all-to-all just after an asynchronous save (both device threads
waiting, with 2 CPU devices); a synchronous save of these small states costs
milliseconds there and leaves nothing in flight when the next step runs.
"""

import os

from etils import epath
import jax
import orbax.checkpoint as ocp


class Checkpoints:

  def __init__(self, directory: str, keep: int = 3, async_save: bool | None = None):
    """async_save: None = asynchronous unless JAX's default backend is the CPU."""
    if async_save is None:
      async_save = jax.default_backend() != "cpu"
    self.async_save = async_save
    self.directory = directory if "://" in directory else os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        item_names=("state", "data", "config"),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=False, enable_async_checkpointing=async_save),
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def saved_config(self) -> dict | None:
    """The config stored with the latest checkpoint, or None if there is none."""
    step = self.latest_step()
    if step is None:
      return None
    return self._manager.restore(step, args=ocp.args.Composite(
        config=ocp.args.JsonRestore()))["config"]

  def restore(self, abstract_state, step: int | None = None):
    """(state, data_state) of `step` (default: the latest), laid out like abstract_state."""
    step = self.latest_step() if step is None else step
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=ocp.args.JsonRestore()))
    return restored["state"], restored["data"]

  def save(self, step: int, state, data_state: dict, config: dict) -> None:
    epath.Path(self.directory).mkdir(parents=True, exist_ok=True)
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_state),
        config=ocp.args.JsonSave(config)))

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def abstract_like(tree):
  """ShapeDtypeStructs (with shardings) of a pytree, for restoring into its layout."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)
