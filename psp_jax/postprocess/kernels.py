"""The CRF's two Gaussian kernels applied to per-pixel values, exactly and fast.

features: the bilateral kernel's (x/xy_bi, y/xy_bi, R/rgb_bi, G/rgb_bi, B/rgb_bi) per pixel,
  so that k(f_i, f_j) = exp(-|f_i - f_j|^2 / 2).
exact_filter: all pairs, O(N^2) memory: the test oracle, for images up to about 64x64.
spatial_filter: the position-only kernel as a separable Gaussian truncated at `radius` pixels
  (exact once the radius reaches the image size; 4 sigma by default, relative error < 4e-4).
"""
from __future__ import annotations

import math

import jax.numpy as jnp


def pixel_grid(h: int, w: int) -> jnp.ndarray:
  """(H*W, 2) float32 (x, y) pixel coordinates in raster order."""
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")
  return jnp.stack([xx.reshape(-1), yy.reshape(-1)], -1)


def bilateral_features(images: jnp.ndarray, xy_std, rgb_std) -> jnp.ndarray:
  """images (B, H, W, 3) in 0..255 -> (B, H*W, 5) features scaled by the standard deviations."""
  b, h, w, _ = images.shape
  pos = jnp.broadcast_to(pixel_grid(h, w) / xy_std, (b, h * w, 2))
  rgb = images.reshape(b, h * w, 3).astype(jnp.float32) / rgb_std
  return jnp.concatenate([pos, rgb], -1)


def exact_filter(features: jnp.ndarray, values: jnp.ndarray) -> jnp.ndarray:
  """sum_j exp(-|f_i - f_j|^2 / 2) values_j over all j (i included): features (B, N, d),
  values (B, N, C) -> (B, N, C)."""
  sq = jnp.sum(features * features, -1)
  d2 = sq[:, :, None] + sq[:, None, :] - 2.0 * jnp.einsum("bnd,bmd->bnm", features, features)
  kernel = jnp.exp(-0.5 * jnp.maximum(d2, 0.0))
  return jnp.einsum("bnm,bmc->bnc", kernel, values)


def default_radius(xy_std: float, h: int, w: int) -> int:
  """Truncation radius (pixels) of the spatial kernel: 4 sigma, capped by the image size."""
  return int(min(math.ceil(4.0 * float(xy_std)), max(h, w) - 1, 256))


def spatial_filter(values: jnp.ndarray, xy_std, radius: int) -> jnp.ndarray:
  """sum_j exp(-|p_i - p_j|^2 / (2 xy_std^2)) values_j over |dx|, |dy| <= radius (zero outside
  the image): values (B, H, W, C) -> (B, H, W, C). Two 1-D passes of shifted sums (XLA's CPU
  convolutions were 15x slower here for depthwise kernels)."""
  _, h, w, _ = values.shape
  r = int(radius)
  taps = jnp.exp(-0.5 * (jnp.arange(-r, r + 1, dtype=jnp.float32) / xy_std) ** 2)
  padded = jnp.pad(values, ((0, 0), (r, r), (0, 0), (0, 0)))
  y = sum(taps[t] * padded[:, t:t + h] for t in range(2 * r + 1))
  padded = jnp.pad(y, ((0, 0), (0, 0), (r, r), (0, 0)))
  return sum(taps[t] * padded[:, :, t:t + w] for t in range(2 * r + 1))
