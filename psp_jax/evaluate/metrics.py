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


def lookalike_metrics(cm: np.ndarray, class_names: Sequence[str],
                      groups: Sequence[Sequence[str]]) -> dict:
  """How well classes that look alike (and differ only by their surroundings) are told apart.

  groups: class-name groups, e.g. (("boat", "car"), ("bird", "cow")) for the synthetic scenes
  (data.lookalike_groups). From the split-level confusion matrix (rows = label):
    lookalike_mIoU  mean IoU over every class of every group (classes with no IoU left out)
    twin_rate       share of those classes' labelled pixels predicted as another class of
                    their group: the confusion context has to resolve
    twins           {"a->b": share of a's labelled pixels predicted as b}
  """
  names = list(class_names)
  cm = np.asarray(cm, dtype=np.float64)
  iou = {r["class"]: r["iou"] for r in segmentation_metrics(cm, names)["per_class"]}
  ious, twins, twin_pixels, group_pixels = [], {}, 0.0, 0.0
  for group in groups:
    group = list(group)
    missing = [c for c in group if c not in names]
    if len(group) < 2 or missing:
      raise ValueError(f"data.lookalike_groups: group {group} must name at least two classes of "
                       f"{names}" + (f"; unknown: {missing}" if missing else ""))
    for a in group:
      ia = names.index(a)
      labelled = cm[ia].sum()
      if not np.isnan(iou[a]):
        ious.append(iou[a])
      group_pixels += labelled
      for b in group:
        if b != a:
          twins[f"{a}->{b}"] = float(cm[ia, names.index(b)] / labelled) if labelled else float("nan")
          twin_pixels += cm[ia, names.index(b)]
  return {"lookalike_mIoU": float(np.mean(ious)) if ious else float("nan"),
          "twin_rate": float(twin_pixels / group_pixels) if group_pixels else float("nan"),
          "twins": twins}
