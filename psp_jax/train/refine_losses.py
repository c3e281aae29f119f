"""The CascadePSP training objective: six outputs, three kinds of terms.

Outputs (all logits at the crop size, see `RefinementModule`), in the order of OUTPUTS:
  s8a, s8b, s8c (OS 8), s4b, s4c (OS 4), s1 (full resolution).
Per output k the loss is
  ce_weights[k] * BCE(logits, gt) + l1l2_weights[k] * (L1(p, gt) + L2(p, gt)),  p = sigmoid
plus, on s1 only, grad_weight * the gradient loss: the L1 distance between the gradient
magnitudes sqrt(gx^2 + gy^2 + 1e-4) of p and of gt, gx and gy being Sobel kernels / 4 applied
after a 3x3 mean filter (zero padding 1 for both, as conv2d(padding=1)).
The published weights (spec; official repo defaults) are ce = (1, 1, 1, 0.5, 0.5, 0),
l1l2 = (0, 0, 0, 0.25, 0.25, 1), grad 5: OS8 BCE; OS4 0.5 BCE + 0.25 (L1 + L2); OS1 L1 + L2 +
5 gradient.

Every term is a mean over pixels. For data parallelism each device returns pixel SUMS and
its pixel count; the step divides the psum'd totals (so the loss is the global-batch mean,
whatever the split over devices).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

from psp_jax.models.refinement import OUTPUT_KEYS, cascade_outputs

OUTPUTS = OUTPUT_KEYS  # ("s8a", "s8b", "s8c", "s4b", "s4c", "s1"): the order of the weight tuples
PASS3_OUTPUTS = cascade_outputs(passes=1)  # every cascade ends with pass 3: s8c, s4c, s1
PUBLISHED_CE_WEIGHTS = (1.0, 1.0, 1.0, 0.5, 0.5, 0.0)
PUBLISHED_L1L2_WEIGHTS = (0.0, 0.0, 0.0, 0.25, 0.25, 1.0)
PUBLISHED_GRAD_WEIGHT = 5.0

_SOBEL_X = jnp.asarray([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 4.0


def _conv3x3(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
  """(N, H, W, 1) * 3x3 kernel with zero padding 1 (cross-correlation, as conv2d)."""
  return jax.lax.conv_general_dilated(x, kernel.reshape(3, 3, 1, 1).astype(x.dtype), (1, 1),
                                      ((1, 1), (1, 1)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def gradient_magnitude(x: jnp.ndarray) -> jnp.ndarray:
  """sqrt(gx^2 + gy^2 + 1e-4) of a (N, H, W, 1) map after a 3x3 mean filter."""
  smooth = _conv3x3(x, jnp.full((3, 3), 1.0 / 9.0))
  gx = _conv3x3(smooth, _SOBEL_X)
  gy = _conv3x3(smooth, _SOBEL_X.T)
  return jnp.sqrt(gx * gx + gy * gy + 1e-4)


def check_weights(ce_weights: Sequence[float], l1l2_weights: Sequence[float]) -> None:
  for name, w in (("train.loss.ce_weights", ce_weights), ("train.loss.l1l2_weights", l1l2_weights)):
    if len(w) != len(OUTPUTS):
      raise ValueError(f"{name} must have {len(OUTPUTS)} entries, one per output {OUTPUTS}; "
                       f"got {tuple(w)}")


def refinement_loss_sums(outputs: Mapping[str, jnp.ndarray], gt: jnp.ndarray, *,
                         ce_weights: Sequence[float] = PUBLISHED_CE_WEIGHTS,
                         l1l2_weights: Sequence[float] = PUBLISHED_L1L2_WEIGHTS,
                         grad_weight: float = PUBLISHED_GRAD_WEIGHT
                         ) -> tuple[dict[str, jnp.ndarray], jnp.ndarray]:
  """Pixel sums of every weighted term, and the pixel count.

  outputs: {name: (N, H, W, 1) logits}: all of OUTPUTS, or those of a shorter cascade
    (`RefinementModule.passes`): the pass-3 outputs s8c, s4c, s1 are required, the terms of
    outputs of skipped passes (s8a; s8b, s4b) are dropped. gt: (N, H, W) or (N, H, W, 1) in {0, 1}.
  Returns ({'total', 'ce/<k>', 'l1l2/<k>', 'grad'}: float32 sums, already weighted; terms
  whose weight is 0 are absent except 'total'), count = N * H * W.
  Divide by the (global) count to get means.
  """
  check_weights(ce_weights, l1l2_weights)
  missing = [k for k in PASS3_OUTPUTS if k not in outputs]
  if missing:
    raise ValueError(f"refinement outputs {missing} are missing (every cascade ends with pass 3, "
                     f"which gives {PASS3_OUTPUTS}); got {sorted(outputs)}")
  gt = gt.reshape(outputs["s1"].shape).astype(jnp.float32)
  sums: dict[str, jnp.ndarray] = {}
  for k, ce_w, l_w in zip(OUTPUTS, ce_weights, l1l2_weights):
    if k not in outputs:
      continue
    logits = outputs[k].astype(jnp.float32)
    if ce_w:
      sums[f"ce/{k}"] = ce_w * jnp.sum(optax.sigmoid_binary_cross_entropy(logits, gt))
    if l_w:
      diff = jax.nn.sigmoid(logits) - gt
      sums[f"l1l2/{k}"] = l_w * jnp.sum(jnp.abs(diff) + diff * diff)
  if grad_weight:
    p = jax.nn.sigmoid(outputs["s1"].astype(jnp.float32))
    sums["grad"] = grad_weight * jnp.sum(jnp.abs(gradient_magnitude(p) - gradient_magnitude(gt)))
  sums["total"] = sum(sums.values()) if sums else jnp.zeros((), jnp.float32)
  return sums, jnp.asarray(gt.size, jnp.float32)


def binary_iou_counts(logits: jnp.ndarray, gt: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(intersection, union) pixel counts of (logits > 0) against gt > 0.5."""
  pred = logits.reshape(gt.shape) > 0
  ref = gt > 0.5
  return (jnp.sum(pred & ref).astype(jnp.float32), jnp.sum(pred | ref).astype(jnp.float32))
