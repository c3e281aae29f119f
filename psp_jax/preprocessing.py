"""How uint8 images become model inputs: one definition for training, evaluation and predict.

  x = (image[..., channels] / input_scale - mean) / std

`image` is RGB (uint8 or 0-255 float), `channels` reorders to the model's channel order
('RGB' or 'BGR'), and mean/std are per channel in the model's order, on the scale after the
division. The families differ (see each family's `ModelFamily.preprocessing`):
  PSPNet / CascadePSP: input_scale 255, ImageNet mean/std, RGB;
  SegNet:              input_scale 1, mean 0, std 1, BGR (raw 0-255 BGR);
  DeepLab v1/v2:       input_scale 1, BGR mean subtracted, std 1, BGR.
A checkpoint's meta['preprocessing'] stores these four fields (`to_meta` / `from_meta`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from psp_jax.constants import IMAGENET_MEAN, IMAGENET_STD

CHANNEL_ORDERS = ("RGB", "BGR")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
  """Normalisation of RGB 0-255 images into model inputs (module docstring)."""
  mean: tuple[float, ...] = IMAGENET_MEAN
  std: tuple[float, ...] = IMAGENET_STD
  input_scale: float = 255.0
  channel_order: str = "RGB"

  def __post_init__(self):
    if self.channel_order not in CHANNEL_ORDERS:
      raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, got {self.channel_order!r}")
    if len(self.mean) != 3 or len(self.std) != 3:
      raise ValueError(f"mean and std need 3 values, got mean={self.mean} std={self.std}")
    if float(self.input_scale) <= 0 or any(float(s) <= 0 for s in self.std):
      raise ValueError(f"input_scale and std must be positive, got {self.input_scale}, {self.std}")

  @property
  def _order(self) -> slice:
    return slice(None, None, -1) if self.channel_order == "BGR" else slice(None)

  def normalize(self, image: Any) -> np.ndarray:
    """RGB 0-255 (..., 3) -> float32 model input (..., 3)."""
    x = np.asarray(image, np.float32)[..., self._order]
    mean = np.asarray(self.mean, np.float32)
    std = np.asarray(self.std, np.float32)
    return (x * np.float32(1.0 / float(self.input_scale)) - mean) / std

  def mean_pixel(self) -> np.ndarray:
    """The RGB 0-255 pixel that normalises to 0 (the padding value of crops and windows)."""
    return (np.asarray(self.mean, np.float32) * np.float32(self.input_scale))[self._order]

  def denormalize(self, x: Any) -> np.ndarray:
    """Model input (..., 3) -> RGB 0-255 float32 (the inverse of `normalize`)."""
    x = np.asarray(x, np.float32) * np.asarray(self.std, np.float32) + np.asarray(self.mean, np.float32)
    return (x * np.float32(self.input_scale))[..., self._order]

  def to_meta(self) -> dict[str, Any]:
    return {"mean": [float(m) for m in self.mean], "std": [float(s) for s in self.std],
            "input_scale": float(self.input_scale), "channel_order": self.channel_order}

  @classmethod
  def from_meta(cls, meta: Mapping[str, Any] | None, default: "Preprocessing | None" = None
                ) -> "Preprocessing":
    """From meta['preprocessing'] (or a data config): missing fields take `default`'s."""
    default = default or cls()
    meta = meta or {}
    get = lambda k, d: meta.get(k, d) if meta.get(k, d) is not None else d  # noqa: E731
    return cls(mean=tuple(float(m) for m in get("mean", default.mean)),
               std=tuple(float(s) for s in get("std", default.std)),
               input_scale=float(get("input_scale", default.input_scale)),
               channel_order=str(get("channel_order", default.channel_order)))

