"""Local response normalisation across channels (Caffe's LRN, ACROSS_CHANNELS; SegNet-Basic's
input layer).

  y[..., c] = x[..., c] / (k + alpha / size * sum_{|c' - c| <= size // 2} x[..., c']^2) ** beta

Channels beyond the edges count as zeros, and alpha is divided by the window size (the Caffe
convention, also PyTorch's `local_response_norm`). NHWC; one reduce_window over channels.
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def local_response_norm(x: jnp.ndarray, size: int = 5, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> jnp.ndarray:
  """LRN of NHWC `x` over its last axis (module docstring); `size` must be odd (Caffe)."""
  if size < 1 or size % 2 == 0:
    raise ValueError(f"local_response_norm size must be a positive odd number, got {size}")
  if x.ndim < 1:
    raise ValueError(f"local_response_norm needs a channel axis, got shape {x.shape}")
  x32 = x.astype(jnp.float32)
  half = size // 2
  window = (1,) * (x.ndim - 1) + (size,)
  pad = ((0, 0),) * (x.ndim - 1) + ((half, half),)
  sums = lax.reduce_window(jnp.square(x32), 0.0, lax.add, window, (1,) * x.ndim, pad)
  return (x32 / jnp.power(k + (alpha / size) * sums, beta)).astype(x.dtype)
