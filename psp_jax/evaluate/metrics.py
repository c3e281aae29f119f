"""Confusion matrix (on device) and the split-level metrics computed from it (on host).

mIoU is computed once from the confusion matrix accumulated over the whole split, never as a
mean of per-batch values.
"""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np


def confusion_matrix(labels: jnp.ndarray, preds: jnp.ndarray, num_classes: int,
                     ignore_label: int = 255) -> jnp.ndarray:
  """(num_classes, num_classes) int32 counts, rows = label, columns = prediction.

  Pixels labelled `ignore_label` (or outside [0, num_classes)) count nowhere.
  """
  labels = labels.astype(jnp.int32).reshape(-1)
  preds = preds.astype(jnp.int32).reshape(-1)
  valid = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
  index = jnp.where(valid, labels * num_classes + preds, 0)
  counts = jnp.bincount(index, weights=valid.astype(jnp.int32), length=num_classes * num_classes)
  return counts.astype(jnp.int32).reshape(num_classes, num_classes)


def segmentation_metrics(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict:
  """mIoU, mAcc, aAcc and per-class IoU/accuracy from a split-level confusion matrix.

  IoU_c = TP / (TP + FP + FN). Classes absent from both labels and predictions have no IoU;
  they are excluded from the means and listed under 'absent_classes'.
  """
  cm = np.asarray(cm, dtype=np.float64)
  tp = np.diag(cm)
  labelled = cm.sum(axis=1)
  predicted = cm.sum(axis=0)
  union = labelled + predicted - tp
  present = union > 0
  iou = np.where(present, tp / np.maximum(union, 1), np.nan)
  acc = np.where(labelled > 0, tp / np.maximum(labelled, 1), np.nan)
  total = cm.sum()
  names = list(class_names) if class_names is not None else [str(i) for i in range(len(tp))]
  return {
      "mIoU": float(np.nanmean(iou)) if present.any() else float("nan"),
      "mAcc": float(np.nanmean(acc)) if (labelled > 0).any() else float("nan"),
      "aAcc": float(tp.sum() / total) if total else float("nan"),
      "per_class": [{"class": n, "iou": float(i), "acc": float(a), "pixels": int(l)}
                    for n, i, a, l in zip(names, iou, acc, labelled)],
      "absent_classes": [n for n, p in zip(names, present) if not p],
  }
