"""The training state: everything a step reads and writes (and a checkpoint stores)."""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


@flax.struct.dataclass
class TrainState:
  """step (int32), params, batch_stats (BN running statistics), opt_state, rng (raw uint32 key)."""
  step: jnp.ndarray
  params: Any
  batch_stats: Any
  opt_state: Any
  rng: jnp.ndarray

  @property
  def variables(self) -> dict:
    """The model variables for `model.apply` (inference or evaluation)."""
    return {"params": self.params, "batch_stats": self.batch_stats}


def create_train_state(variables: dict, tx: optax.GradientTransformation, rng: jax.Array,
                       mesh: Mesh | None = None) -> TrainState:
  """A step-0 state from initial (or pretrained) variables.

  With `mesh`, the state is placed replicated on it, as the train step returns it: the
  step's compiled program is keyed on input placement, so this avoids a second compile.
  """
  rng = jax.random.key_data(rng) if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key) else rng
  state = TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                     batch_stats=variables.get("batch_stats", {}),
                     opt_state=tx.init(variables["params"]), rng=jnp.asarray(rng, jnp.uint32))
  return state if mesh is None else jax.device_put(state, NamedSharding(mesh, P()))
