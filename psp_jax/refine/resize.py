"""Resampling matrices with PyTorch's `F.interpolate` semantics, as the official inference uses.

The official code resizes with `scale_factor` (not `size`), which matters twice:
  * the output size is floor(n * scale) in double precision, so the long side can come out as
    L - 1 for some sizes (e.g. 21 * (900 / 21) = 899.99...): `scaled_size` reproduces it, and
    never returns less than 1 (PyTorch would fail on a 4001x3 image at L=900);
  * bilinear and bicubic sample at src = (dst + 0.5) / scale - 0.5 with the given scale, not
    with in/out.
'area' is adaptive average pooling (cells [floor(i*n/m), ceil((i+1)*n/m))), whatever the scale.

Every resize is separable: a (out, in) matrix per axis, applied with einsum on the device
(`resize2d`), exact and static in shape. Matrices are built in float64, stored float32, cached.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from psp_jax.models.ops import linear_interpolation_matrix

CUBIC_A = -0.75  # PyTorch's bicubic coefficient


def scaled_size(n: int, scale: float) -> int:
  """PyTorch's output size for `scale_factor=scale` (floor in double precision), at least 1."""
  return max(1, int(math.floor(float(n) * float(scale))))


def global_size(h: int, w: int, L: int) -> tuple[int, int, float]:
  """(h', w', scale) of the global step: the long side brought to L (scale = L / max(h, w))."""
  scale = L / max(h, w)
  if max(h, w) == L:
    return h, w, 1.0
  return scaled_size(h, scale), scaled_size(w, scale), scale


@functools.lru_cache(maxsize=256)
def area_matrix(n_in: int, n_out: int) -> np.ndarray:
  """(n_out, n_in): adaptive average pooling, i.e. `F.interpolate(mode='area')`."""
  m = np.zeros((n_out, n_in), np.float64)
  for i in range(n_out):
    lo = (i * n_in) // n_out
    hi = ((i + 1) * n_in + n_out - 1) // n_out
    m[i, lo:hi] = 1.0 / (hi - lo)
  return m.astype(np.float32)


def _source(n_in: int, n_out: int, scale: float | None) -> np.ndarray:
  """Source coordinates of PyTorch's half-pixel resampling (bicubic: not clamped)."""
  step = 1.0 / scale if scale else n_in / n_out
  return (np.arange(n_out, dtype=np.float64) + 0.5) * step - 0.5


@functools.lru_cache(maxsize=256)
def linear_matrix(n_in: int, n_out: int, scale: float | None = None,
                  align_corners: bool = False) -> np.ndarray:
  """(n_out, n_in): `F.interpolate(mode='bilinear')` along one axis (cached). `scale` is the
  `scale_factor` (None: resized with `size=`, i.e. step in/out)."""
  return linear_interpolation_matrix(n_in, n_out, align_corners, scale)


def _cubic_weights(t: np.ndarray, a: float = CUBIC_A) -> list[np.ndarray]:
  def near(x):  # |x| <= 1
    return ((a + 2) * x - (a + 3)) * x * x + 1

  def far(x):  # 1 < |x| < 2
    return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

  return [far(t + 1), near(t), near(1 - t), far(2 - t)]


@functools.lru_cache(maxsize=256)
def cubic_matrix(n_in: int, n_out: int, scale: float | None = None) -> np.ndarray:
  """(n_out, n_in): `F.interpolate(mode='bicubic', align_corners=False)` along one axis
  (Keys kernel a=-0.75, source indices clamped to the border, no clamping of the coordinate)."""
  src = _source(n_in, n_out, scale)
  base = np.floor(src).astype(np.int64)
  t = src - base
  m = np.zeros((n_out, n_in), np.float64)
  rows = np.arange(n_out)
  for k, wk in enumerate(_cubic_weights(t)):
    np.add.at(m, (rows, np.clip(base - 1 + k, 0, n_in - 1)), wk)
  return m.astype(np.float32)


def matrices(kind: str, in_hw: tuple[int, int], out_hw: tuple[int, int],
             scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(rows matrix, columns matrix) of a 2-D resize. kind: 'area', 'bilinear', 'bicubic',
  'bilinear_ac' (bilinear with align_corners=True)."""
  (h, w), (oh, ow) = in_hw, out_hw
  if kind == "area":
    return area_matrix(h, oh), area_matrix(w, ow)
  if kind == "bilinear":
    return linear_matrix(h, oh, scale), linear_matrix(w, ow, scale)
  if kind == "bilinear_ac":
    return linear_matrix(h, oh, None, True), linear_matrix(w, ow, None, True)
  if kind == "bicubic":
    return cubic_matrix(h, oh, scale), cubic_matrix(w, ow, scale)
  raise ValueError(f"unknown resize kind {kind!r}")


@jax.jit
def _apply(x: jnp.ndarray, mh: jnp.ndarray, mw: jnp.ndarray) -> jnp.ndarray:
  return jnp.einsum("oh,hwc,pw->opc", mh, x, mw, precision=jax.lax.Precision.HIGHEST)


def resize2d(x: jnp.ndarray, kind: str, out_hw: tuple[int, int], scale: float | None = None
             ) -> jnp.ndarray:
  """Resize an (H, W) or (H, W, C) float array on the device. Identity when the sizes match
  and no scale other than 1 is given (with a scale, PyTorch resamples even at equal size)."""
  squeeze = x.ndim == 2
  if squeeze:
    x = x[..., None]
  same = tuple(x.shape[:2]) == tuple(out_hw) and (kind == "area" or scale in (None, 1.0))
  if not same:
    mh, mw = matrices(kind, tuple(x.shape[:2]), tuple(out_hw), scale)
    x = _apply(x, jnp.asarray(mh), jnp.asarray(mw))
  return x[..., 0] if squeeze else x
