"""Data parallelism over a device mesh: the batch is split, the state replicated.

    mesh = sharding.data_mesh()                     # all devices on axis "data"
    batch = sharding.put_batch(mesh, numpy_batch)   # this process's rows -> global array
    state = jax.device_put(state, sharding.replicated(mesh))

The same code runs on one CPU, one GPU or a multi-host TPU pod: each process
passes the rows it read (see data.pipeline), and `jax.jit` partitions the
step from the input shardings (SPMD), so there is no pmap and no manual
gradient all-reduce.
"""

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np


def data_mesh(devices=None) -> Mesh:
  devices = np.asarray(jax.devices() if devices is None else devices)
  return Mesh(devices.reshape(-1), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def put_batch(mesh: Mesh, batch: dict) -> dict:
  """Assembles each process's rows of every field into one global, sharded array."""
  sharding = batch_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in batch.items()}
