"""Device mesh and batch sharding for data parallelism on one or many hosts.

One 1-D mesh axis 'data' spans every device of every process. Each process loads its own
slice of the global batch; `shard_batch` assembles the global array from those slices.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
  """1-D mesh over all (or the first `num_devices`) global devices, axis 'data'."""
  devices = jax.devices()
  if num_devices is not None:
    if not 1 <= num_devices <= len(devices):
      raise ValueError(f"num_devices must be in [1, {len(devices)}], got {num_devices}")
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_global_batch(global_batch: int, mesh: Mesh) -> int:
  """Per-device batch; a global batch that does not split evenly is an error."""
  n = mesh.devices.size
  if global_batch % n:
    raise ValueError(f"train.batch_size={global_batch} must be divisible by the {n} devices of the mesh")
  return global_batch // n


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Global arrays sharded over 'data' from this process's slice of the batch (numpy pytree).

  Works unchanged on one host (the slice is the whole batch) and on many.
  """
  sharding = data_sharded(mesh)
  return jax.tree_util.tree_map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Place a pytree on every device of the mesh (params, optimiser state)."""
  return jax.device_put(tree, replicated(mesh))
