"""Sliding-window, flip and multi-scale inference as PSPNet's evaluation does it (semseg).

For each scale s: resize the image so its long side is round(s * base_size) (bilinear,
half-pixel); pad it with the mean pixel (0 after normalisation) to at least the crop; run the
model on crop-sized windows at stride ceil(crop * stride_rate) (the last window of a row/column
is shifted back to end at the border); average the softmax where windows overlap (optionally
averaged with the softmax of the mirrored window); cut the padding off and resize the
probabilities to the original image (bilinear, half-pixel). Probabilities of all scales are
summed; the label is their argmax.

No recompiles per image size: the network runs on a fixed (window_batch, crop_h, crop_w)
shape and is compiled once; the glue (window extraction, accumulation, resizing) runs on
canvases whose sizes are rounded up to `bucket` pixels, so only a handful of cheap programs
are compiled. Everything stays on the device until the final label map.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Sequence

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from psp_jax.models.ops import linear_interpolation_matrix
from psp_jax.preprocessing import Preprocessing


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
  """How to evaluate (defaults: semseg's single-scale ADE20K protocol).

  crop_size: window (training crop), (h, w). base_size: long side at scale 1.0, or None to
  keep the image's own size. scales: e.g. (0.5, 0.75, 1.0, 1.25, 1.5, 1.75) for multi-scale.
  flip: average with the mirrored window. stride_rate: window stride as a fraction of the crop.
  window_batch: windows per forward (a fixed shape). bucket: canvas sizes are rounded up to a
  multiple of this, bounding the number of compiled programs. preprocessing: how RGB uint8
  images become model inputs (the model family's / checkpoint's normalisation).
  """
  crop_size: tuple[int, int] = (473, 473)
  base_size: int | None = 512
  scales: tuple[float, ...] = (1.0,)
  flip: bool = False
  stride_rate: float = 2.0 / 3.0
  window_batch: int = 2
  bucket: int = 64
  preprocessing: Preprocessing = Preprocessing()


def scaled_size(h: int, w: int, scale: float, base_size: int | None) -> tuple[int, int]:
  """The image size at `scale`: long side round(scale * base_size), aspect kept (semseg)."""
  if base_size is None:
    return max(1, round(h * scale)), max(1, round(w * scale))
  long_side = round(scale * base_size)
  if h > w:
    return long_side, max(1, round(long_side / h * w))
  return max(1, round(long_side / w * h)), long_side


def window_starts(length: int, crop: int, stride_rate: float) -> list[int]:
  """Start offsets of the windows along one axis of a (padded) length >= crop."""
  stride = int(math.ceil(crop * stride_rate))
  count = int(math.ceil((length - crop) / stride)) + 1
  return [min(i * stride, length - crop) for i in range(count)]


def _round_up(x: int, multiple: int) -> int:
  return -(-x // multiple) * multiple


def _resize_matrix(out_size: int, out_bucket: int, in_size: int, in_offset: int, in_bucket: int
                   ) -> np.ndarray:
  """(out_bucket, in_bucket): half-pixel resize of the in_size rows starting at in_offset."""
  m = np.zeros((out_bucket, in_bucket), np.float32)
  m[:out_size, in_offset:in_offset + in_size] = linear_interpolation_matrix(in_size, out_size, False)
  return m


class SlidingWindowPredictor:
  """Label maps (and class probabilities) of whole images with a segmentation model.

  `forward(variables, images) -> logits` is any function of NHWC normalised images returning
  logits at the input size (for PSPNet: `lambda v, x: model.apply(v, x, train=False)`).
  """

  def __init__(self, forward: Callable, variables, num_classes: int,
               settings: InferenceSettings = InferenceSettings()):
    self.variables = variables
    self.num_classes = num_classes
    self.settings = settings
    flip = settings.flip

    @jax.jit
    def window_probs(variables, windows):  # (B, ch, cw, 3) -> (B, ch, cw, C) softmax
      batch = jnp.concatenate([windows, windows[:, :, ::-1]], 0) if flip else windows
      probs = jax.nn.softmax(forward(variables, batch).astype(jnp.float32), axis=-1)
      if flip:
        n = windows.shape[0]
        probs = 0.5 * (probs[:n] + probs[n:, :, ::-1])
      return probs

    self._window_probs = window_probs

  @staticmethod
  @functools.partial(jax.jit, static_argnums=(2,))
  def _extract(canvas, starts, crop):  # canvas (Hb, Wb, 3), starts (B, 2) -> (B, ch, cw, 3)
    return jax.vmap(lambda s: jax.lax.dynamic_slice(canvas, (s[0], s[1], 0), (*crop, 3)))(starts)

  @staticmethod
  @jax.jit
  def _accumulate(acc, count, probs, starts, valid):
    def add(i, carry):
      acc, count = carry
      s = starts[i]
      p = probs[i] * valid[i]
      old = jax.lax.dynamic_slice(acc, (s[0], s[1], 0), p.shape)
      acc = jax.lax.dynamic_update_slice(acc, old + p, (s[0], s[1], 0))
      c_old = jax.lax.dynamic_slice(count, (s[0], s[1]), p.shape[:2])
      count = jax.lax.dynamic_update_slice(count, c_old + valid[i], (s[0], s[1]))
      return acc, count
    return jax.lax.fori_loop(0, probs.shape[0], add, (acc, count))

  @staticmethod
  @jax.jit
  def _resize_add(total, acc, count, mh, mw):
    mean = acc / jnp.maximum(count, 1.0)[..., None]
    return total + jnp.einsum("oh,pw,hwc->opc", mh, mw, mean)

  def normalise(self, image: np.ndarray) -> np.ndarray:
    return self.settings.preprocessing.normalize(image)

  def probabilities(self, image: np.ndarray, normalized: bool = False) -> jnp.ndarray:
    """Summed class probabilities over scales, (H_bucket, W_bucket, C) on device; the image's
    (H, W) is the top-left corner.

    image: RGB uint8 (or 0-255 float) HxWx3, or with `normalized=True` an image already
    normalised with the settings' preprocessing (resizing commutes with the per-channel affine
    normalisation, and the padding value 0 is the mean pixel, so both give the same result).
    """
    s = self.settings
    if image.ndim != 3 or image.shape[2] != 3:
      raise ValueError(f"image must be HxWx3 RGB, got shape {image.shape}")
    h, w = image.shape[:2]
    ch, cw = s.crop_size
    out_hb, out_wb = _round_up(h, s.bucket), _round_up(w, s.bucket)
    total = jnp.zeros((out_hb, out_wb, self.num_classes), jnp.float32)
    for scale in s.scales:
      nh, nw = scaled_size(h, w, scale, s.base_size)
      scaled = image if (nh, nw) == (h, w) else cv2.resize(
          image.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR)
      scaled = scaled.astype(np.float32) if normalized else self.normalise(scaled)
      ph, pw = max(ch - nh, 0), max(cw - nw, 0)
      top, left = ph // 2, pw // 2
      padded_h, padded_w = nh + ph, nw + pw
      hb, wb = _round_up(padded_h, s.bucket), _round_up(padded_w, s.bucket)
      canvas = np.zeros((hb, wb, 3), np.float32)  # zero = the mean pixel once normalised
      canvas[top:top + nh, left:left + nw] = scaled
      starts = [(y, x) for y in window_starts(padded_h, ch, s.stride_rate)
                for x in window_starts(padded_w, cw, s.stride_rate)]
      # Pad the window list to whole batches; padded windows add nothing (valid = 0).
      n = len(starts)
      padded_n = _round_up(n, s.window_batch)
      valid = (np.arange(padded_n) < n).astype(np.float32)
      starts = np.asarray(starts + [(0, 0)] * (padded_n - n), np.int32)
      canvas_d = jnp.asarray(canvas)
      acc = jnp.zeros((hb, wb, self.num_classes), jnp.float32)
      count = jnp.zeros((hb, wb), jnp.float32)
      for i in range(0, padded_n, s.window_batch):
        batch_starts = starts[i:i + s.window_batch]
        windows = self._extract(canvas_d, batch_starts, (ch, cw))
        probs = self._window_probs(self.variables, windows)
        acc, count = self._accumulate(acc, count, probs, batch_starts, valid[i:i + s.window_batch])
      mh = _resize_matrix(h, out_hb, nh, top, hb)
      mw = _resize_matrix(w, out_wb, nw, left, wb)
      total = self._resize_add(total, acc, count, mh, mw)
    return total

  def predict(self, image: np.ndarray, normalized: bool = False) -> np.ndarray:
    """Label map (H, W) int32 of an RGB uint8 image (H, W, 3)."""
    h, w = image.shape[:2]
    probs = self.probabilities(image, normalized)
    return np.asarray(jnp.argmax(probs, axis=-1))[:h, :w].astype(np.int32)

  def describe(self) -> str:
    """The protocol in words, for reports."""
    s = self.settings
    stride = [int(math.ceil(c * s.stride_rate)) for c in s.crop_size]
    base = f"long side {s.base_size}" if s.base_size else "original size"
    return (f"sliding window {s.crop_size[0]}x{s.crop_size[1]} (stride {stride[0]}x{stride[1]}), "
            f"{base}, scales {list(s.scales)}, flip {'on' if s.flip else 'off'}")
