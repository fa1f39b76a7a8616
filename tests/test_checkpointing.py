"""Checkpoints: what is saved is the state at the save, whatever the next step does."""

import jax
import jax.numpy as jnp
import numpy as np
import chex

from interp_jax import sharding
from interp_jax.training.checkpointing import Checkpoints, abstract_like


def test_saves_on_cpu_are_synchronous():
  # The CPU backend: a saved array's host copy is the buffer the next step donates.
  assert jax.default_backend() == "cpu"
  assert Checkpoints("/nonexistent/never_created").async_save is False
  assert Checkpoints("/nonexistent/never_created", async_save=True).async_save is True


def test_a_donating_step_after_a_save_leaves_the_saved_values(tmp_path):
  """The trainer's pattern: save, then a jitted step that donates (and overwrites) the
  saved state's buffers, replicated over the 2 CPU devices. The checkpoint must hold the
  values at the save."""
  mesh = sharding.data_mesh()
  state = jax.device_put({"w": jnp.arange(4096, dtype=jnp.float32).reshape(64, 64),
                          "b": jnp.ones(64)}, sharding.replicated(mesh))
  expected = jax.tree.map(np.array, state)   # copies, taken before anything is donated
  ckpt = Checkpoints(str(tmp_path / "checkpoints"), keep=2)
  step = jax.jit(lambda s: jax.tree.map(lambda a: a * 0.0 - 7.0, s), donate_argnums=0)
  for i in (1, 2):
    ckpt.save(i, state, {"step": i, "seed": 0}, {"model": "m"})
    state = step(state)
    jax.block_until_ready(state)
    expected_next = jax.tree.map(np.array, state)
    restored, data_state = ckpt.restore(abstract_like(state), step=i)
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, restored), expected)
    assert data_state == {"step": i, "seed": 0}
    expected = expected_next
  ckpt.wait()
  ckpt.close()
