"""Binary mask metrics of CascadePSP's evaluation: IoU and mBA (mean boundary accuracy).

mBA (Cheng et al., CVPR 2020): for an h x w ground truth, R = (w + h) / 300 and five radii
r_i = 1 + int((R - 1) / 5 * i), i = 0..4 (`int` truncates toward zero, as the authors' code:
images with w + h < 300 use r = 1 throughout). For each radius the boundary band is the
morphological gradient (dilation minus erosion, pixels outside the image ignored) of the
ground truth with a disk of radius r_i (OpenCV's elliptic structuring element of size
2r+1); the accuracy is the fraction of band pixels where prediction and ground truth agree.
mBA is the mean over the five radii.

Masks: bool arrays, or numbers binarised as the refiner does (integers: 0/1 as is, otherwise
> 127; floats: > 0.5). Degenerate cases: IoU of two empty masks is 1; mBA of a ground truth
without any boundary (all background or all foreground) is NaN.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

NUM_RADII = 5


def _binary(mask, name: str) -> np.ndarray:
  mask = np.asarray(mask)
  if mask.ndim != 2:
    raise ValueError(f"{name} must be a 2-D mask, got shape {mask.shape}")
  if mask.dtype == np.bool_:
    return mask
  if np.issubdtype(mask.dtype, np.integer):
    return mask.astype(bool) if mask.max(initial=0) <= 1 and mask.min(initial=0) >= 0 else mask > 127
  return mask > 0.5


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
  pred, gt = _binary(pred, "pred"), _binary(gt, "gt")
  if pred.shape != gt.shape:
    raise ValueError(f"pred {pred.shape} and gt {gt.shape} must have the same shape")
  return pred, gt


def binary_iou(pred, gt) -> float:
  """|pred & gt| / |pred | gt| (1.0 when both are empty)."""
  pred, gt = _pair(pred, gt)
  union = np.logical_or(pred, gt).sum()
  if union == 0:
    return 1.0
  return float(np.logical_and(pred, gt).sum() / union)


def boundary_radii(height: int, width: int) -> list[int]:
  """The five disk radii of mBA for an image of this size."""
  max_radius = (width + height) / 300
  return [1 + int((max_radius - 1) / NUM_RADII * i) for i in range(NUM_RADII)]


def disk(radius: int) -> np.ndarray:
  """uint8 disk structuring element of size 2r+1 (OpenCV's ellipse)."""
  return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def boundary_band(gt, radius: int) -> np.ndarray:
  """bool band: morphological gradient of the ground truth with a disk of `radius`."""
  g = _binary(gt, "gt").astype(np.uint8)
  return cv2.morphologyEx(g, cv2.MORPH_GRADIENT, disk(radius)) > 0


def boundary_accuracies(pred, gt) -> list[float]:
  """Accuracy on the boundary band for each of the five radii (NaN when the band is empty)."""
  pred, gt = _pair(pred, gt)
  out = []
  for r in boundary_radii(*gt.shape):
    band = boundary_band(gt, r)
    n = int(band.sum())
    out.append(float((pred[band] == gt[band]).sum() / n) if n else math.nan)
  return out


def boundary_accuracy(pred, gt) -> float:
  """mBA: the mean of `boundary_accuracies` (NaN when the ground truth has no boundary)."""
  accs = boundary_accuracies(pred, gt)
  return float(np.mean(accs))
