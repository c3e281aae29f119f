"""Spatial ops with PyTorch's exact semantics (bilinear resize, adaptive pooling), and the
convolution the layers call (`conv_general_dilated`: XLA's, rewritten where a shape runs faster).

`jax.image.resize` implements only the half-pixel ("align_corners=False") convention and
antialiases when shrinking; PyTorch checkpoints were trained with `F.interpolate(...,
align_corners=True)` (PSPNet) and `align_corners=False` without antialiasing (CascadePSP).
Both are written here as small interpolation matrices applied with einsum: exact, static in
shape, and a matrix product on every backend.
"""
from __future__ import annotations

import functools
import math
import operator
from typing import Literal, Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

# The switch for the convolution rewrites (read when a model is traced; JAX caches traces, so
# set it before the first call): a convolution with a
# spatial kernel and at least CONV_SPLIT_MIN_CHANNELS input channels runs as convolutions of
# CONV_SPLIT_CHUNK channels each, summed. XLA's CPU convolution is slower on very deep inputs:
# PSPNet's 3x3 4096->512 head at 60x60 ran 1.30x faster split in 8 than as one convolution
# (experiments/benchmark_layers.py --rewrites; experiments/results/speed_vs_pytorch_*.md).
# The threshold keeps every narrow (mini-scale) model on the plain convolution, bit for bit.
# Set CONV_SPLIT_MIN_CHANNELS = 0 to turn it off.
CONV_SPLIT_MIN_CHANNELS = 2048
CONV_SPLIT_CHUNK = 512


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
  """`lax.conv_general_dilated` (same arguments; flax's nn.Conv takes it as
  `conv_general_dilated=`), with the input-channel split above where it applies."""
  conv = functools.partial(lax.conv_general_dilated, window_strides=window_strides,
                           padding=padding, lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                           dimension_numbers=dimension_numbers, precision=precision,
                           preferred_element_type=preferred_element_type)
  dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  in_lhs, in_rhs = dn.lhs_spec[1], dn.rhs_spec[1]
  channels = lhs.shape[in_lhs]
  spatial = math.prod(rhs.shape[d] for d in dn.rhs_spec[2:])
  split = (CONV_SPLIT_MIN_CHANNELS and channels >= CONV_SPLIT_MIN_CHANNELS and spatial > 1
           and channels % CONV_SPLIT_CHUNK == 0 and feature_group_count == 1
           and batch_group_count == 1)
  if not split:
    return conv(lhs, rhs, feature_group_count=feature_group_count,
                batch_group_count=batch_group_count)
  parts = [conv(lax.slice_in_dim(lhs, i, i + CONV_SPLIT_CHUNK, axis=in_lhs),
                lax.slice_in_dim(rhs, i, i + CONV_SPLIT_CHUNK, axis=in_rhs))
           for i in range(0, channels, CONV_SPLIT_CHUNK)]
  return functools.reduce(operator.add, parts)


def linear_interpolation_matrix(in_size: int, out_size: int, align_corners: bool,
                                scale: float | None = None) -> np.ndarray:
  """(out_size, in_size) matrix M so that M @ x is PyTorch's 1-D linear interpolation of x.

  align_corners=True:  src = dst * (in - 1) / (out - 1)   (corners map to corners).
  align_corners=False: src = (dst + 0.5) * in / out - 0.5, clamped at 0 (half-pixel centres);
    with `scale` (PyTorch's `scale_factor`, as CascadePSP's inference resizes) the step is
    1 / scale instead of in / out.
  """
  if in_size < 1 or out_size < 1:
    raise ValueError(f"resize sizes must be >= 1, got in_size={in_size}, out_size={out_size}")
  dst = np.arange(out_size, dtype=np.float64)
  if align_corners:
    step = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
    src = dst * step
  else:
    step = 1.0 / scale if scale else in_size / out_size
    src = np.maximum((dst + 0.5) * step - 0.5, 0.0)
  lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  hi = np.minimum(lo + 1, in_size - 1)
  frac = src - lo
  m = np.zeros((out_size, in_size), dtype=np.float64)
  rows = np.arange(out_size)
  np.add.at(m, (rows, lo), 1.0 - frac)
  np.add.at(m, (rows, hi), frac)
  return m.astype(np.float32)


def resize_bilinear(x: jnp.ndarray, size: Sequence[int], align_corners: bool) -> jnp.ndarray:
  """Bilinear resize of NHWC `x` to `size` = (H', W'), as `F.interpolate(mode='bilinear')`.

  No antialiasing (PyTorch does none). Returns x unchanged when the size already matches.
  """
  if x.ndim != 4:
    raise ValueError(f"resize_bilinear expects NHWC input of rank 4, got shape {x.shape}")
  out_h, out_w = int(size[0]), int(size[1])
  _, h, w, _ = x.shape
  if (h, w) == (out_h, out_w):
    return x
  mh = jnp.asarray(linear_interpolation_matrix(h, out_h, align_corners), dtype=x.dtype)
  mw = jnp.asarray(linear_interpolation_matrix(w, out_w, align_corners), dtype=x.dtype)
  if h != out_h:
    x = jnp.einsum("oh,nhwc->nowc", mh, x)
  if w != out_w:
    x = jnp.einsum("pw,nowc->nopc", mw, x)
  return x


def adaptive_pool_cells(length: int, bins: int) -> list[tuple[int, int]]:
  """PyTorch's adaptive-pooling cells: cell i covers [floor(i*L/n), ceil((i+1)*L/n)).

  Cells overlap when `bins` does not divide `length`; with bins > length some cells repeat.
  """
  if bins < 1:
    raise ValueError(f"adaptive pooling needs bins >= 1, got {bins}")
  return [(math.floor(i * length / bins), math.ceil((i + 1) * length / bins)) for i in range(bins)]


def adaptive_pool(x: jnp.ndarray, bins: int, mode: Literal["avg", "max"] = "avg") -> jnp.ndarray:
  """Adaptive average or max pooling of NHWC `x` to (N, bins, bins, C), PyTorch cell boundaries.

  Shapes are static, so the cells are static slices: no masks, exact for any H, W.
  """
  if mode not in ("avg", "max"):
    raise ValueError(f"adaptive_pool mode must be 'avg' or 'max', got {mode!r}")
  _, h, w, _ = x.shape
  reduce = jnp.mean if mode == "avg" else jnp.max
  rows = []
  for h0, h1 in adaptive_pool_cells(h, bins):
    band = x[:, h0:h1]
    cells = [reduce(band[:, :, w0:w1], axis=(1, 2)) for w0, w1 in adaptive_pool_cells(w, bins)]
    rows.append(jnp.stack(cells, axis=1))  # (N, bins, C)
  return jnp.stack(rows, axis=1)  # (N, bins, bins, C)
