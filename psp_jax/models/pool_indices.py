"""2x2 stride-2 max pooling that returns the argmax indices, and unpooling with them (SegNet).

SegNet's decoder upsamples by writing each pooled value back where its maximum came from
(Caffe's Pooling layer with a mask top, then its Upsample layer). Conventions (those of Caffe
and of PyTorch's max_pool2d(return_indices=True) / max_unpool2d):
  - NHWC; pooling is per (n, c) plane; the index of a maximum is its flat position
    row * W + col inside the UN-padded H x W input plane (int32).
  - Ties go to the first element in row-major window order (top-left, top-right, bottom-left,
    bottom-right).
  - Ceil rounding: output size ceil(H / 2) x ceil(W / 2), so odd sizes keep their last row /
    column; a window that overhangs the bottom/right edge sees only its valid pixels
    (360x480 -> 180x240 -> 90x120 -> 45x60 -> 23x30 -> 12x15).
  - Unpooling writes each value at its index into zeros of an explicit (H, W) output.

Both ops are built from reshapes and a one-hot window mask: no scatter, no gather, no Python
loop over pixels. The pool's gradient flows only to the chosen maximum (as in Caffe and
PyTorch, not split among ties); the unpool's gradient is the gather of the output gradient
at the indices. The mask formulation was measured faster than an XLA scatter on CPU
(experiments/benchmark_unpool.py), and it is exact because a 2x2 stride-2 pool's index always
lies in its own window; `unpool_scatter` is the general scatter kept as the reference.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

WINDOW = 2  # kernel = stride = 2, the only pooling SegNet uses


def pooled_size(size: int) -> int:
  """Caffe's ceil rounding for kernel 2, stride 2, no padding: ceil(size / 2)."""
  if size < 1:
    raise ValueError(f"max_pool_with_argmax: spatial size must be >= 1, got {size}")
  return -(-size // WINDOW)


def _check_nhwc(x: jnp.ndarray, what: str) -> None:
  if x.ndim != 4:
    raise ValueError(f"{what} must be NHWC of rank 4, got shape {x.shape}")


def _windows(x: jnp.ndarray, fill) -> jnp.ndarray:
  """(N, H, W, C) -> (N, Ho, Wo, C, 4): each 2x2 window in row-major order, padded with fill."""
  n, h, w, c = x.shape
  ho, wo = pooled_size(h), pooled_size(w)
  x = jnp.pad(x, ((0, 0), (0, WINDOW * ho - h), (0, WINDOW * wo - w), (0, 0)), constant_values=fill)
  x = x.reshape(n, ho, WINDOW, wo, WINDOW, c)
  return x.transpose(0, 1, 3, 5, 2, 4).reshape(n, ho, wo, c, WINDOW * WINDOW)


def _window_origin(ho: int, wo: int, width: int) -> jnp.ndarray:
  """(Ho, Wo, 1) flat index of each window's top-left pixel in a plane of `width` columns."""
  rows = WINDOW * np.arange(ho)[:, None]
  cols = WINDOW * np.arange(wo)[None, :]
  return jnp.asarray((rows * width + cols)[:, :, None], jnp.int32)


def max_pool_with_argmax(x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray, tuple[int, int]]:
  """2x2 stride-2 max pooling with ceil rounding.

  x (N, H, W, C) float -> (y, idx, (H, W)): y (N, ceil(H/2), ceil(W/2), C) the maxima,
  idx int32 of the same shape, the flat row * W + col of each maximum in its (n, c) plane,
  and the input size (H, W) to give `max_unpool`: plain Python ints taken from the static
  shape, so jit the pool and unpool together (returned from a jitted function alone they
  would become arrays).
  """
  _check_nhwc(x, "max_pool_with_argmax input")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"max_pool_with_argmax needs a floating input, got {x.dtype}")
  _, h, w, _ = x.shape
  win = _windows(x, -jnp.inf)
  k = jnp.argmax(win, axis=-1)  # first maximum in row-major window order
  chosen = jax.nn.one_hot(k, WINDOW * WINDOW, dtype=jnp.bool_)
  y = jnp.sum(jnp.where(chosen, win, jnp.zeros((), x.dtype)), axis=-1)
  dy, dx = k // WINDOW, k % WINDOW
  idx = _window_origin(pooled_size(h), pooled_size(w), w) + (dy * w + dx).astype(jnp.int32)
  return y, idx, (h, w)


def _out_hw(out_shape: Sequence[int]) -> tuple[int, int]:
  """(H, W) from an (H, W) or (N, H, W, C) out_shape."""
  shape = tuple(int(s) for s in out_shape)
  if len(shape) == 4:
    return shape[1], shape[2]
  if len(shape) == 2:
    return shape
  raise ValueError(f"max_unpool out_shape must be (H, W) or (N, H, W, C), got {out_shape}")


def _check_unpool(y: jnp.ndarray, idx: jnp.ndarray, out_shape: Sequence[int]) -> tuple[int, int]:
  _check_nhwc(y, "max_unpool values")
  if idx.shape != y.shape:
    raise ValueError(f"max_unpool indices shape {idx.shape} differs from values shape {y.shape}")
  if not jnp.issubdtype(idx.dtype, jnp.integer):
    raise ValueError(f"max_unpool indices must be integers, got {idx.dtype}")
  shape = tuple(int(s) for s in out_shape)
  if len(shape) == 4 and (shape[0], shape[3]) != (y.shape[0], y.shape[3]):
    raise ValueError(f"max_unpool out_shape {shape} must keep the batch and channels of the "
                     f"values {y.shape}")
  h, w = _out_hw(shape)
  if h < 1 or w < 1:
    raise ValueError(f"max_unpool out_shape must be positive, got {out_shape}")
  if not isinstance(idx, jax.core.Tracer):
    flat = np.asarray(idx)
    if flat.size and (flat.min() < 0 or flat.max() >= h * w):
      raise ValueError(f"max_unpool indices must lie in [0, {h * w}) for out_shape {h}x{w}, "
                       f"got values in [{flat.min()}, {flat.max()}]")
  return h, w


def max_unpool(y: jnp.ndarray, idx: jnp.ndarray, out_shape: Sequence[int]) -> jnp.ndarray:
  """Inverse of `max_pool_with_argmax`: zeros of (N, H, W, C) with y written at idx.

  y, idx (N, Ho, Wo, C) as returned by the pool; out_shape (H, W) or (N, H, W, C) must be
  the pooled input's size (ceil(H/2) == Ho, ceil(W/2) == Wo), and each index must lie in its
  own 2x2 window (always true for the pool's indices). Concrete (non-traced) indices are
  checked for range; inside jit an index outside its window contributes nothing.
  """
  h, w = _check_unpool(y, idx, out_shape)
  n, ho, wo, c = y.shape
  if (pooled_size(h), pooled_size(w)) != (ho, wo):
    raise ValueError(f"max_unpool out_shape {h}x{w} does not fit the pooled size {ho}x{wo} "
                     f"(expected ceil(H/2) x ceil(W/2) = {ho}x{wo}, e.g. {WINDOW * ho}x{WINDOW * wo} or "
                     f"{WINDOW * ho - 1}x{WINDOW * wo - 1})")
  local = idx.astype(jnp.int32) - _window_origin(ho, wo, w)
  dy, dx = local // w, local % w
  k = jnp.where((dy >= 0) & (dy < WINDOW) & (dx >= 0) & (dx < WINDOW), dy * WINDOW + dx, -1)
  mask = jax.nn.one_hot(k, WINDOW * WINDOW, dtype=y.dtype)  # k = -1 -> all zeros
  win = y[..., None] * mask  # (N, Ho, Wo, C, 4)
  out = win.reshape(n, ho, wo, c, WINDOW, WINDOW).transpose(0, 1, 4, 2, 5, 3)
  return out.reshape(n, WINDOW * ho, WINDOW * wo, c)[:, :h, :w, :]


def unpool_scatter(y: jnp.ndarray, idx: jnp.ndarray, out_shape: Sequence[int]) -> jnp.ndarray:
  """The general scatter unpool (any index in [0, H*W), as PyTorch's max_unpool2d):
  zeros of (N, H, W, C) with y[n, i, j, c] written at flat position idx[n, i, j, c] of plane
  (n, c). Same results as `max_unpool` on the pool's indices; slower on CPU (benchmarked)."""
  h, w = _check_unpool(y, idx, out_shape)
  n, ho, wo, c = y.shape
  flat_idx = idx.reshape(n, ho * wo, c).astype(jnp.int32)
  batch = jnp.arange(n)[:, None, None]
  chan = jnp.arange(c)[None, None, :]
  out = jnp.zeros((n, h * w, c), y.dtype).at[batch, flat_idx, chan].set(y.reshape(n, ho * wo, c))
  return out.reshape(n, h, w, c)
