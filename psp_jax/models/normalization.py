"""BatchNorm with PyTorch semantics and cross-replica (optionally grouped) statistics.

Why not `flax.linen.BatchNorm`: PyTorch updates the running variance with the *unbiased*
batch variance (checkpoints and parity depend on it), PSPNet's ablations need BN groups
smaller than the mesh, and fine-tuning with small batches needs a frozen mode. Statistics are
always computed in float32, whatever the compute dtype.

Inside `jax.shard_map` over a mesh axis, pass `axis_name` to average the statistics of the
replicas (SyncBN). With `group_size=k` replicas are averaged in consecutive groups of k.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def _replica_mean(x: jnp.ndarray, axis_name: str, group_size: int | None) -> jnp.ndarray:
  """Mean of `x` over the replicas of `axis_name` (or over this replica's group)."""
  if group_size is None:
    return lax.pmean(x, axis_name)
  num_replicas = lax.axis_size(axis_name)
  if num_replicas % group_size:
    raise ValueError(
        f"bn_group_size={group_size} must divide the number of replicas ({num_replicas})")
  gathered = lax.all_gather(x, axis_name)  # (replicas, ...)
  me = lax.axis_index(axis_name)
  same_group = (jnp.arange(num_replicas) // group_size) == (me // group_size)
  weights = same_group.astype(x.dtype) / group_size
  return jnp.tensordot(weights, gathered, axes=1)


class BatchNorm(nn.Module):
  """BatchNorm over all axes but the last (NHWC), PyTorch-compatible.

  Attributes:
    momentum: running = momentum * running + (1 - momentum) * batch (PyTorch 0.1 -> 0.9).
    epsilon: added to the variance (PyTorch default 1e-5).
    axis_name: mesh axis to synchronise statistics over, or None for per-device statistics.
    group_size: replicas per BN group (None: the whole axis).
    frozen: always normalise with the running statistics and never update them (the affine
      parameters are kept fixed by the optimiser, see `psp_jax.train.optim`).
    dtype: output dtype (statistics are float32).
    bias_init: initial value of the shift (0 as PyTorch; SegNet's Caffe BN starts at 0.001).
  """
  momentum: float = 0.9
  epsilon: float = 1e-5
  axis_name: str | None = None
  group_size: int | None = None
  frozen: bool = False
  dtype: Any = None
  bias_init: float = 0.0

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    features = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
    bias = self.param("bias", nn.initializers.constant(self.bias_init), (features,), jnp.float32)
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))

    x32 = x.astype(jnp.float32)
    if train and not self.frozen:
      axes = tuple(range(x.ndim - 1))
      count = x.size // features
      sync = self.axis_name is not None and not self.is_initializing()
      mean = jnp.mean(x32, axes)
      if sync:
        mean = _replica_mean(mean, self.axis_name, self.group_size)
      var = jnp.mean(jnp.square(x32 - mean), axes)  # two-pass: exact in float32
      if sync:
        var = _replica_mean(var, self.axis_name, self.group_size)
        replicas = self.group_size or lax.axis_size(self.axis_name)
        count = count * replicas
      if not self.is_initializing():
        unbiased = var * (count / max(count - 1, 1))
        m = self.momentum
        ra_mean.value = m * ra_mean.value + (1 - m) * lax.stop_gradient(mean)
        ra_var.value = m * ra_var.value + (1 - m) * lax.stop_gradient(unbiased)
    else:
      mean, var = ra_mean.value, ra_var.value

    inv = scale * lax.rsqrt(var + self.epsilon)
    y = x32 * inv + (bias - mean * inv)
    return y.astype(self.dtype or x.dtype)
