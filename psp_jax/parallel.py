"""Device mesh and batch sharding for data parallelism on one or many hosts.

One 1-D mesh axis 'data' spans every device of every process. Each process loads its own
slice of the global batch; `shard_batch` assembles the global array from those slices.
"""
from __future__ import annotations

import os
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


def local_copy(tree: Any) -> Any:
  """This process's copy of replicated arrays, on one local device (what an ordinary jit
  outside the mesh can read, also on multi-host meshes)."""
  return jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)


def maybe_initialize_distributed(config) -> bool:
  """`jax.distributed.initialize` from `config.distributed` when a coordinator is set (and
  JAX is not initialised yet). Must run before anything touches the devices. On a CPU-only
  run (JAX_PLATFORMS=cpu) the gloo collectives are selected. Returns whether it initialised."""
  dist = config.get("distributed") or {}
  address = dist.get("coordinator_address") or ""
  if not address or jax.distributed.is_initialized():
    return False
  if os.environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(address, num_processes=int(dist.get("num_processes", 1)),
                             process_id=int(dist.get("process_id", 0)))
  return True
