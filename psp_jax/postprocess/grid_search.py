"""Choosing the CRF's weights and standard deviations on held-out images, as DeepLab did (a
grid search on a 100-image val subset, the spatial term fixed)."""
from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np

from psp_jax.postprocess.crf import mean_field, unary_from
from psp_jax.postprocess.params import CRFParams
from psp_jax.postprocess.presets import resolve

# Ours, not a paper's: the bilateral term around the four presets' values.
COARSE_GRID = {"w_bi": (3, 4, 5), "xy_bi": (50, 67, 90, 121), "rgb_bi": (3, 5, 10)}


def confusion(labels: np.ndarray, preds: np.ndarray, num_classes: int,
              ignore_label: int) -> np.ndarray:
  """(num_classes, num_classes) int64 counts (rows: label); ignored / out-of-range labels skip."""
  labels, preds = labels.reshape(-1).astype(np.int64), preds.reshape(-1).astype(np.int64)
  valid = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
  return np.bincount(labels[valid] * num_classes + preds[valid],
                     minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def miou(cm: np.ndarray) -> float:
  """Mean IoU over the classes present in the labels or the predictions."""
  tp = np.diag(cm).astype(np.float64)
  union = cm.sum(0) + cm.sum(1) - tp
  return float(np.mean(tp[union > 0] / union[union > 0]))


def grid_search(images: Sequence[np.ndarray], scores: Sequence[np.ndarray],
                labels: Sequence[np.ndarray], grid: Mapping[str, Sequence[Any]], *,
                num_classes: int, base: str | Mapping | CRFParams = "v1_deeplab",
                ignore_label: int = 255, inputs: str = "logits",
                method: str = "lattice") -> dict:
  """mIoU of every setting of the grid on the images (pure: nothing is written).

  images: uint8 (H, W, 3) each; scores: (H, W, K) logits or probabilities at the image size;
  labels: (H, W) ints (`ignore_label` ignored); sizes may differ between images. grid maps
  CRFParams fields to the values to try (every combination; the other fields from `base`).
  Returns {'no_crf': mIoU of the argmax of the scores, 'grid': [{'params': CRFParams,
  'mIoU': float}, ...] in itertools.product order, 'best': the grid row of highest mIoU}.
  """
  if not (len(images) == len(scores) == len(labels)) or not images:
    raise ValueError(f"grid_search: need as many images, scores and labels (>= 1), got "
                     f"{len(images)}, {len(scores)}, {len(labels)}")
  base = resolve(base)
  fields = set(base.to_dict())
  unknown = sorted(set(grid) - fields)
  if unknown or not grid:
    raise ValueError(f"grid_search: grid keys must be some of {sorted(fields)}, got {sorted(grid)}")
  unaries = [unary_from(s[None], inputs) for s in scores]
  for i, (image, unary, label) in enumerate(zip(images, unaries, labels)):
    if np.shape(image)[:2] != unary.shape[1:3] or np.shape(label) != unary.shape[1:3]:
      raise ValueError(f"grid_search: image {i} is {np.shape(image)[:2]}, its scores "
                       f"{unary.shape[1:3]} and its labels {np.shape(label)}: they must match")
  cm = sum(confusion(np.asarray(l), np.asarray(u[0].argmax(-1)), num_classes, ignore_label)
           for l, u in zip(labels, unaries))
  rows = []
  keys = list(grid)
  for values in itertools.product(*(grid[k] for k in keys)):
    params = base.replace(**dict(zip(keys, values)))
    cm_crf = 0
    for image, unary, label in zip(images, unaries, labels):
      q = mean_field(np.asarray(image)[None], unary, params, method=method)
      cm_crf = cm_crf + confusion(np.asarray(label), np.asarray(q[0].argmax(-1)), num_classes,
                                  ignore_label)
    rows.append({"params": params, "mIoU": miou(cm_crf)})
  return {"no_crf": miou(cm), "grid": rows, "best": max(rows, key=lambda r: r["mIoU"])}
