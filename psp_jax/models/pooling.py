"""Caffe / PyTorch window pooling with explicit padding and floor or ceil rounding (NHWC).

DeepLab's VGG-16 pools with 3x3 windows, stride 2, padding 1 and CEIL rounding (Caffe's
only rounding), and its MSRA ResNet stem uses `MaxPool2d(3, 2, 1, ceil_mode=True)`. Flax's
`nn.max_pool` knows only explicit padding; ceil rounding is that padding plus an overhang on
the bottom/right edge, which these functions compute.

Output size (PyTorch's and Caffe's rule):
  out = floor((L + 2p - k) / s) + 1                       (floor)
  out = ceil((L + 2p - k) / s) + 1, minus 1 if the last window would start in the right
        padding or beyond, i.e. if (out - 1) * s >= L + p  (ceil)
Max pooling pads with -inf. Average pooling divides by the part of each window that lies
inside the zero-padded input (padding zeros count, the ceil overhang does not): Caffe's AVE
and PyTorch's count_include_pad=True.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from psp_jax.models import ops


def pooled_length(length: int, kernel: int, stride: int, padding: int, ceil: bool) -> int:
  """Output length of a pooling window along one axis (module docstring)."""
  if length < 1 or kernel < 1 or stride < 1 or padding < 0:
    raise ValueError(f"pooling needs length, kernel, stride >= 1 and padding >= 0, got "
                     f"length={length}, kernel={kernel}, stride={stride}, padding={padding}")
  if 2 * padding > kernel:
    raise ValueError(f"pooling padding={padding} must be at most half the kernel ({kernel})")
  span = length + 2 * padding - kernel
  if span < 0:
    raise ValueError(f"pooling window {kernel} (padding {padding}) is larger than the input ({length})")
  if not ceil:
    return span // stride + 1
  out = -(-span // stride) + 1
  if (out - 1) * stride >= length + padding:
    out -= 1
  return out


def _pads(shape, kernel: int, stride: int, padding: int, ceil: bool) -> list[tuple[int, int]]:
  """(low, high) padding of H and W: `padding` each side plus the ceil overhang at the end."""
  pads = []
  for length in shape:
    out = pooled_length(length, kernel, stride, padding, ceil)
    extra = max(0, (out - 1) * stride + kernel - (length + 2 * padding))
    pads.append((padding, padding + extra))
  return pads


def max_pool(x: jnp.ndarray, kernel: int, stride: int, padding: int = 0, ceil: bool = False
             ) -> jnp.ndarray:
  """Max pooling of NHWC `x` with a square window; padding and overhang are -inf
  (`ops.max_pool_window`: XLA's reduce_window, or its window slices for wide inputs)."""
  if x.ndim != 4:
    raise ValueError(f"max_pool expects NHWC input of rank 4, got shape {x.shape}")
  return ops.max_pool_window(x, kernel, stride, _pads(x.shape[1:3], kernel, stride, padding, ceil))


def avg_pool(x: jnp.ndarray, kernel: int, stride: int, padding: int = 0, ceil: bool = False
             ) -> jnp.ndarray:
  """Average pooling of NHWC `x`, padding zeros in the divisor, the ceil overhang not."""
  if x.ndim != 4:
    raise ValueError(f"avg_pool expects NHWC input of rank 4, got shape {x.shape}")
  h, w = x.shape[1:3]
  (ph, pw) = _pads((h, w), kernel, stride, padding, ceil)
  window, strides = (1, kernel, kernel, 1), (1, stride, stride, 1)
  total = lax.reduce_window(x, 0.0, lax.add, window, strides, ((0, 0), ph, pw, (0, 0)))
  # Divisor: the window's overlap with the padded input [-padding, L + padding).
  inside = np.zeros((1, h + sum(ph), w + sum(pw), 1), np.float32)
  inside[:, :h + 2 * padding, :w + 2 * padding] = 1.0
  count = lax.reduce_window(jnp.asarray(inside), 0.0, lax.add, window, strides, "VALID")
  return (total / count).astype(x.dtype)
