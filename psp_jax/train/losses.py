"""Segmentation losses as (sum, count) pairs so data-parallel code can average globally.

Averaging per-device means would weight devices equally whatever their number of labelled
pixels; PSPNet's loss is the mean over all non-ignored pixels of the global batch, so each
device returns its sum and count and the step divides the psum'd totals.
"""
from __future__ import annotations

import jax.numpy as jnp
import optax

IGNORE_LABEL = 255


def cross_entropy_sum(logits: jnp.ndarray, labels: jnp.ndarray, ignore_label: int = IGNORE_LABEL
                      ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Softmax cross-entropy summed over labelled pixels, and their count.

  logits (N, H, W, C) float, labels (N, H, W) int. Pixels equal to `ignore_label` and pixels
  with a label outside [0, C) contribute nothing (the latter are counted separately by
  `invalid_label_count` so they are reported, not trained on silently).
  Returns (loss_sum, count), float32 scalars.
  """
  num_classes = logits.shape[-1]
  labels = labels.astype(jnp.int32)
  valid = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
  safe = jnp.where(valid, labels, 0)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), safe)
  return jnp.sum(jnp.where(valid, ce, 0.0)), jnp.sum(valid).astype(jnp.float32)


def cross_entropy(logits: jnp.ndarray, labels: jnp.ndarray, ignore_label: int = IGNORE_LABEL
                  ) -> jnp.ndarray:
  """Mean cross-entropy over labelled pixels; 0 (not NaN) when every pixel is ignored."""
  total, count = cross_entropy_sum(logits, labels, ignore_label)
  return total / jnp.maximum(count, 1.0)


def invalid_label_count(labels: jnp.ndarray, num_classes: int, ignore_label: int = IGNORE_LABEL
                        ) -> jnp.ndarray:
  """Pixels whose label is neither a class index nor the ignore label (a data bug)."""
  labels = labels.astype(jnp.int32)
  bad = (labels != ignore_label) & ((labels < 0) | (labels >= num_classes))
  return jnp.sum(bad).astype(jnp.int32)
