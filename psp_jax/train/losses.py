"""Segmentation losses as (sum, count) pairs so data-parallel code can average globally.

Averaging per-device means would weight devices equally whatever their number of labelled
pixels; PSPNet's loss is the mean over all non-ignored pixels of the global batch, so each
device returns its sum and count and the step divides the psum'd totals.

Class weighting (SegNet's median-frequency balancing) follows Caffe's SoftmaxWithLoss with
`weight_by_label_freqs` and its default normalisation (caffe-segnet): the loss is
  sum over labelled pixels of w[y] * nll  /  number of labelled pixels,
so the count stays the pixel count. This is NOT PyTorch's weighted mean
(`cross_entropy(weight=w)`), which divides by the sum of w[y] over the labelled pixels.
"""
from __future__ import annotations

import importlib
import math
from typing import Callable, NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np
import optax

from psp_jax.constants import IGNORE_LABEL


def check_class_weights(class_weights: Sequence[float], num_classes: int,
                        what: str = "train.class_weights") -> np.ndarray:
  """`class_weights` as a float32 (num_classes,) array; ValueError naming `what` unless it has
  one finite, non-negative value per class."""
  try:
    values = [float(w) for w in class_weights]
  except (TypeError, ValueError) as e:
    raise ValueError(f"{what} must be a list of {num_classes} numbers, got {class_weights!r}") from e
  if len(values) != num_classes:
    raise ValueError(f"{what} has {len(values)} values but the model has {num_classes} classes "
                     f"(one weight per class, in class order)")
  bad = [(i, w) for i, w in enumerate(values) if not math.isfinite(w) or w < 0]
  if bad:
    raise ValueError(f"{what} must be finite and >= 0; class index/weight {bad} are not")
  return np.asarray(values, np.float32)


def cross_entropy_sum(logits: jnp.ndarray, labels: jnp.ndarray, ignore_label: int = IGNORE_LABEL,
                      *, class_weights: Sequence[float] | None = None
                      ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Softmax cross-entropy summed over labelled pixels, and their count.

  logits (N, H, W, C) float, labels (N, H, W) int. Pixels equal to `ignore_label` and pixels
  with a label outside [0, C) contribute nothing (the latter are counted separately by
  `invalid_label_count` so they are reported, not trained on silently).
  class_weights: None, or C finite non-negative weights: each pixel's loss is multiplied by
  the weight of its label and the count stays the number of labelled pixels (Caffe's
  normalisation, see the module docstring).
  Returns (loss_sum, count), float32 scalars.
  """
  num_classes = logits.shape[-1]
  labels = labels.astype(jnp.int32)
  valid = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
  safe = jnp.where(valid, labels, 0)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), safe)
  if class_weights is not None:
    ce = ce * jnp.asarray(check_class_weights(class_weights, num_classes))[safe]
  return jnp.sum(jnp.where(valid, ce, 0.0)), jnp.sum(valid).astype(jnp.float32)


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray, ignore_label: int = IGNORE_LABEL,
                  *, class_weights: Sequence[float] | None = None) -> jnp.ndarray:
  """Mean (optionally class-weighted, Caffe-normalised) cross-entropy over labelled pixels;
  0 (not NaN) when every pixel is ignored."""
  total, count = cross_entropy_sum(logits, labels, ignore_label, class_weights=class_weights)
  return total / jnp.maximum(count, 1.0)


def invalid_label_count(labels: jnp.ndarray, num_classes: int, ignore_label: int = IGNORE_LABEL
                        ) -> jnp.ndarray:
  """Pixels whose label is neither a class index nor the ignore label (a data bug)."""
  labels = labels.astype(jnp.int32)
  bad = (labels != ignore_label) & ((labels < 0) | (labels >= num_classes))
  return jnp.sum(bad).astype(jnp.int32)


class NativeObjective(NamedTuple):
  """A recipe's own loss on a model's native outputs (ModelFamily.native_loss): `terms`
  {name: (sum, count)} (the loss is the sum over terms of the global sum / global count), and
  the primary output with the labels at its resolution, for the accuracy metrics."""
  terms: dict
  logits: jnp.ndarray
  labels: jnp.ndarray


def resolve_native_loss(path: str) -> Callable[..., NativeObjective]:
  """'module:function' (ModelFamily.native_loss) -> the function."""
  module, _, name = path.partition(":")
  try:
    return getattr(importlib.import_module(module), name)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"native_loss {path!r} cannot be resolved ({e})") from e
