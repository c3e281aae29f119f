"""Fully connected CRF post-processing (DenseCRF; Krähenbühl and Koltun 2011) by mean field, as
DeepLab v1/v2 apply it to their upsampled logits.

  Q0 = softmax(U);  each iteration  Q = softmax(U - sum_k w_k * Normalise_k(K_k Q) mu^T)
with U the unary logits (B, H, W, K), K_k the bilateral and the spatial Gaussian kernels over
all pixel pairs (params.py), mu the (K, K) label compatibility (Potts by default, mu = 1 - I,
which is the same as adding w_k * Normalise_k(K_k Q) to U) and Normalise 'per_pixel'
(K Q / K 1, DeepLab's) or 'symmetric' (D^-1/2 K D^-1/2 Q, D = K 1, pydensecrf's). The sums
include j = i, as pydensecrf's lattice does.

Two filter implementations behind `method`:
  'lattice' (default): the bilateral kernel on the permutohedral lattice (permutohedral.py),
    the spatial kernel as a truncated separable Gaussian (kernels.py); jit-able, batched,
    static shapes per image size;
  'exact': all pairs (the test oracle; up to about 64x64 pixels).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from psp_jax.postprocess import kernels
from psp_jax.postprocess.params import CRFParams
from psp_jax.postprocess.permutohedral import build_lattice, lattice_filter
from psp_jax.postprocess.presets import resolve

METHODS = ("lattice", "exact")
EXACT_MAX_PIXELS = 64 * 64


def _normalised(filt, norm, normalisation: str):
  """Normalise_k(K Q) as a function of Q (B, N, K), from a filter and its row sums (B, N, 1)."""
  if normalisation == "per_pixel":
    inv = 1.0 / jnp.maximum(norm, 1e-20)
    return lambda q: filt(q) * inv
  inv_sqrt = lax.rsqrt(jnp.maximum(norm, 1e-20))
  return lambda q: filt(q * inv_sqrt) * inv_sqrt


@functools.partial(jax.jit, static_argnames=("iterations", "normalisation", "method",
                                             "radius", "capacity"))
def mean_field_core(images: jnp.ndarray, unary: jnp.ndarray, weights: jnp.ndarray,
                    stds: jnp.ndarray, compatibility: jnp.ndarray | None, *, iterations: int,
                    normalisation: str, method: str, radius: int, capacity: int | None):
  """The batched, jit-compiled inference; no argument checks (see `mean_field`).

  images (B, H, W, 3) float32 in 0..255; unary (B, H, W, K) float32 logits; weights (2,) =
  (w_bi, w_pos); stds (3,) = (xy_bi, rgb_bi, xy_pos); compatibility (K, K) or None (Potts).
  Returns (Q (B, H, W, K) float32 probabilities, overflow: bool scalar, True when the lattice
  dropped points; always False for 'exact').
  """
  b, h, w, k = unary.shape
  n = h * w
  feats = kernels.bilateral_features(images, stds[0], stds[1])
  ones = jnp.ones((b, n, 1), jnp.float32)
  if method == "exact":
    bilateral = lambda q: kernels.exact_filter(feats, q)
    pos = jnp.broadcast_to(kernels.pixel_grid(h, w) / stds[2], (b, n, 2))
    spatial = lambda q: kernels.exact_filter(pos, q)
    overflow = jnp.zeros((), bool)
  else:
    lattice = build_lattice(feats, capacity)
    bilateral = lambda q: lattice_filter(lattice, q)
    spatial = lambda q: kernels.spatial_filter(
        q.reshape(b, h, w, -1), stds[2], radius).reshape(b, n, -1)
    overflow = lattice.overflow()
  msg_bi = _normalised(bilateral, bilateral(ones), normalisation)
  msg_pos = _normalised(spatial, spatial(ones), normalisation)
  u = unary.reshape(b, n, k).astype(jnp.float32)

  def step(_, q):
    m = weights[0] * msg_bi(q) + weights[1] * msg_pos(q)
    if compatibility is None:
      return jax.nn.softmax(u + m, axis=-1)
    return jax.nn.softmax(u - m @ compatibility.T, axis=-1)

  q = lax.fori_loop(0, iterations, step, jax.nn.softmax(u, axis=-1))
  return q.reshape(b, h, w, k), overflow


def default_capacity(h: int, w: int, rgb_std: float) -> int:
  """Lattice points to allow per image: 6 H W (the most there can be) up to 128x128 pixels,
  else H W * min(6, 4.5 / rgb_std). Whole 318x500 to 500x500 photos (CamVid, ADE20K, the
  refinement samples) needed at most 0.85 H W at rgb_std 3, 0.29 at 5 and 0.16 at 10
  (measured); small crops and downscaled images need more (up to 3.3 H W)."""
  n = h * w
  if n <= 128 * 128:
    return 6 * n
  return int(math.ceil(n * min(6.0, 4.5 / float(rgb_std))))


def mean_field(images, unary, params: CRFParams, *, compatibility=None, method: str = "lattice",
               capacity: int | None = None) -> jnp.ndarray:
  """Batched DenseCRF: images (B, H, W, 3) in 0..255 (uint8 or float), unary (B, H, W, K)
  finite logits -> probabilities (B, H, W, K) float32. Jit-compiled once per shape and static
  setting (kernel weights and standard deviations are traced, except that xy_pos sets the
  spatial window). capacity: lattice points per image (their rows are blurred every
  iteration, used or not); default `default_capacity`. On an overflow it reruns at 6 H W,
  which cannot overflow (one more compilation)."""
  if method not in METHODS:
    raise ValueError(f"mean_field: method must be one of {METHODS}, got {method!r}")
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"mean_field: images must be (B, H, W, 3) RGB, got shape {images.shape}")
  if unary.ndim != 4 or unary.shape[:3] != images.shape[:3]:
    raise ValueError(f"mean_field: unary must be (B, H, W, K) with the images' B, H, W "
                     f"{tuple(images.shape[:3])}, got shape {unary.shape}")
  b, h, w, k = unary.shape
  if method == "exact" and h * w > EXACT_MAX_PIXELS:
    raise ValueError(f"mean_field: method='exact' is O(N^2); {h}x{w} is over "
                     f"{EXACT_MAX_PIXELS} pixels, use method='lattice'")
  if compatibility is not None:
    compatibility = jnp.asarray(compatibility, jnp.float32)
    if compatibility.shape != (k, k):
      raise ValueError(f"mean_field: compatibility must be ({k}, {k}) for {k} classes, got "
                       f"shape {compatibility.shape}")
  weights = jnp.asarray([params.w_bi, params.w_pos], jnp.float32)
  stds = jnp.asarray([params.xy_bi, params.rgb_bi, params.xy_pos], jnp.float32)
  run = functools.partial(mean_field_core, jnp.asarray(images, jnp.float32), jnp.asarray(unary),
                          weights, stds, compatibility, iterations=params.iterations,
                          normalisation=params.normalisation, method=method,
                          radius=kernels.default_radius(params.xy_pos, h, w))
  if capacity is None:
    capacity = default_capacity(h, w, params.rgb_bi)
  q, overflow = run(capacity=capacity)
  if method == "lattice" and capacity < 6 * h * w and bool(overflow):
    q, _ = run(capacity=h * w * 6)
  return q


def dense_crf(image: Any, scores: Any, preset_or_params: str | Mapping | CRFParams, *,
              inputs: str = "logits", compatibility=None, method: str = "lattice") -> np.ndarray:
  """DenseCRF of one image: image uint8 (H, W, 3) RGB, scores (H, W, K) logits
  (inputs='logits') or probabilities (inputs='probabilities'), a preset name (presets.py),
  a dict or CRFParams -> probabilities (H, W, K) float32 numpy.

  compatibility: optional (K, K) label compatibility mu (penalty of labels l, l' at similar
  pixels; Potts = 1 - I is the default)."""
  params = resolve(preset_or_params)
  image = np.asarray(image)
  scores = np.asarray(scores)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"dense_crf: image must be RGB of shape (H, W, 3), got shape {image.shape}")
  if image.dtype != np.uint8:
    raise ValueError(f"dense_crf: image must be uint8 (0..255), got dtype {image.dtype}")
  if scores.ndim != 3 or scores.shape[-1] < 1:
    raise ValueError(f"dense_crf: {inputs} must be (H, W, K), got shape {scores.shape}")
  if scores.shape[:2] != image.shape[:2]:
    raise ValueError(f"dense_crf: image is {image.shape[0]}x{image.shape[1]} but {inputs} are "
                     f"{scores.shape[0]}x{scores.shape[1]}; upsample the {inputs} to the image")
  unary = unary_from(scores[None], inputs)
  return np.asarray(mean_field(image[None], unary, params, compatibility=compatibility,
                               method=method)[0])


def crf_probabilities(rgb: Any, probs: jnp.ndarray, params: CRFParams) -> jnp.ndarray:
  """DenseCRF of a predictor's (H, W, K) probabilities (sums over scales are renormalised) on
  its RGB 0-255 image (H, W, 3) -> (H, W, K), on device; no input checks (see dense_crf)."""
  image = np.clip(np.rint(np.asarray(rgb, np.float32)), 0, 255)
  probs = probs / jnp.maximum(jnp.sum(probs, -1, keepdims=True), 1e-12)
  unary = jnp.log(jnp.maximum(probs, 1e-8))
  return mean_field(image[None], unary[None], params)[0]


def unary_from(scores: Any, inputs: str) -> jnp.ndarray:
  """Logits from logits or probabilities (..., K), checked finite (and normalised)."""
  scores = jnp.asarray(scores, jnp.float32)
  if inputs not in ("logits", "probabilities"):
    raise ValueError(f"inputs must be 'logits' or 'probabilities', got {inputs!r}")
  if not bool(jnp.all(jnp.isfinite(scores))):
    raise ValueError(f"the {inputs} contain NaN or Inf")
  if inputs == "logits":
    return scores
  if bool(jnp.any(scores < 0)) or bool(jnp.any(scores > 1)) or \
      not bool(jnp.all(jnp.abs(jnp.sum(scores, -1) - 1) < 1e-3)):
    raise ValueError("the probabilities must lie in [0, 1] and sum to 1 over the last axis")
  return jnp.log(jnp.maximum(scores, 1e-8))
