"""DeepLab v1/v2 training losses on the models' native outputs (`apply(..., native=True)`).

  v1: CE between the output-stride-8 logits (41x41 for a 321 crop, NOT upsampled) and
      label_shrink(label, 8) = label[::8, ::8], the aligned sampling of Caffe's Interp shrink.
  v2: CE of every MSC output (each input scale at its own size, and the pixel-wise max at 1x),
      each against the label nearest-resized to that output, SUMMED over the outputs.

Each term is a (sum, count) pair over labelled pixels (see psp_jax/train/losses.py), so a
data-parallel step can psum both and divide globally; `total` is the single-device value:
sum over terms of sum / count.
"""
from __future__ import annotations

from typing import Mapping

import jax.numpy as jnp
import numpy as np

from psp_jax.train.losses import IGNORE_LABEL, NativeObjective, cross_entropy_sum

Terms = dict[str, tuple[jnp.ndarray, jnp.ndarray]]


def label_shrink(labels: jnp.ndarray, factor: int = 8) -> jnp.ndarray:
  """(N, H, W) -> (N, ceil(H / factor), ceil(W / factor)): every `factor`-th label from (0, 0)."""
  if labels.ndim != 3:
    raise ValueError(f"label_shrink expects (N, H, W) labels, got shape {labels.shape}")
  return labels[:, ::factor, ::factor]


def resize_labels_nearest(labels: jnp.ndarray, size) -> jnp.ndarray:
  """Nearest-neighbour resize of (N, H, W) labels to size (h, w), sampling the source pixel
  whose centre is nearest: index floor((i + 0.5) * H / h) (PIL's and OpenCV's NEAREST)."""
  _, h, w = labels.shape
  oh, ow = int(size[0]), int(size[1])
  rows = np.minimum(((np.arange(oh) + 0.5) * h / oh).astype(np.int64), h - 1)
  cols = np.minimum(((np.arange(ow) + 0.5) * w / ow).astype(np.int64), w - 1)
  return labels[:, rows][:, :, cols]


def v1_loss_terms(outputs: Mapping[str, jnp.ndarray], labels: jnp.ndarray, factor: int = 8,
                  ignore_label: int = IGNORE_LABEL) -> Terms:
  """{'logits': (sum, count)} of DeepLab v1's loss. Raises ValueError when the native logits
  do not have the shrunk label's size (e.g. a 64 crop: 9x9 logits, 8x8 labels; DeepLab's
  crops are 8k + 1: 321, 513)."""
  logits = outputs["logits"]
  shrunk = label_shrink(labels, factor)
  if logits.shape[1:3] != shrunk.shape[1:3]:
    raise ValueError(f"DeepLab v1 loss: logits {logits.shape[1]}x{logits.shape[2]} do not match "
                     f"label_shrink(label, {factor}) of a {labels.shape[1]}x{labels.shape[2]} label, "
                     f"{shrunk.shape[1]}x{shrunk.shape[2]}; use crops of size {factor}k + 1 "
                     f"(e.g. 321, 513)")
  return {"logits": cross_entropy_sum(logits, shrunk, ignore_label)}


def msc_loss_terms(outputs: Mapping[str, jnp.ndarray], labels: jnp.ndarray,
                   ignore_label: int = IGNORE_LABEL) -> Terms:
  """{output name: (sum, count)} for every MSC output, against nearest-resized labels."""
  if not outputs:
    raise ValueError("msc_loss_terms: no outputs")
  return {name: cross_entropy_sum(logits, resize_labels_nearest(labels, logits.shape[1:3]),
                                  ignore_label)
          for name, logits in outputs.items()}


def total(terms: Terms) -> jnp.ndarray:
  """Sum over terms of the mean CE (sum / count; 0 for a term with no labelled pixel)."""
  return sum(s / jnp.maximum(c, 1.0) for s, c in terms.values())


def v1_objective(outputs: Mapping[str, jnp.ndarray], labels: jnp.ndarray,
                 ignore_label: int = IGNORE_LABEL) -> NativeObjective:
  """DeepLab v1's training loss (FAMILY_V1.native_loss): `v1_loss_terms`; accuracy on the
  stride-8 logits against the shrunk labels."""
  return NativeObjective(v1_loss_terms(outputs, labels, ignore_label=ignore_label),
                         outputs["logits"], label_shrink(labels, 8))


def msc_objective(outputs: Mapping[str, jnp.ndarray], labels: jnp.ndarray,
                  ignore_label: int = IGNORE_LABEL) -> NativeObjective:
  """DeepLab v2's training loss (FAMILY_V2.native_loss): `msc_loss_terms` summed over the MSC
  outputs; accuracy on the fused output ('max', or the only scale's)."""
  primary = outputs["max"] if "max" in outputs else outputs["scale_1"]
  return NativeObjective(msc_loss_terms(outputs, labels, ignore_label), primary,
                         resize_labels_nearest(labels, primary.shape[1:3]))
