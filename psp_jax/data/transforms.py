"""Training and evaluation transforms of one example (NumPy + OpenCV, run in Grain workers).

Training, in the PSPNet order (each step switchable off through its probability or range):
  1. random scale s ~ U(scale_min, scale_max): image bilinear, label nearest (same aspect);
  2. random rotation a ~ U(-rotate_deg, rotate_deg) with probability rotate_prob about the
     image centre: image bilinear with the mean pixel outside, label nearest with 255 outside;
  3. Gaussian blur (blur_kernel x blur_kernel, sigma from the kernel size) with probability blur_prob;
  4. horizontal flip with probability flip_prob (image and label together);
  5. random crop to crop_size; where the image is smaller it is first padded (evenly on both
     sides) with the mean pixel and the label with 255;
  6. normalisation (data.mean/std/input_scale/channel_order, psp_jax/preprocessing.py;
     PSPNet: ((x / 255) - mean) / std on RGB), so mean-pixel padding becomes 0.
The paper's "+DA" ablation row is everything on; the baseline is crop (and normalise) only:
`Augment.crop_only()`.

Images stay float32 in 0..255 between steps so the mean-pixel padding is exact. All randomness
comes from the `np.random.Generator` passed in, which the pipeline derives from
(seed, epoch, record index): results do not depend on worker or thread counts.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from psp_jax.constants import IGNORE_LABEL
from psp_jax.preprocessing import Preprocessing

DEFAULT = Preprocessing()  # PSPNet's: ImageNet mean/std on 0-1 RGB


@dataclasses.dataclass(frozen=True)
class Augment:
  """Training augmentation parameters (the `data.augmentation` config section).

  scale_min/scale_max: random scale range (1, 1 = off); rotate_deg, rotate_prob: rotation
  range and probability (0 = off); blur_prob, blur_kernel: Gaussian blur probability and odd
  kernel size; flip_prob: horizontal flip probability; crop: random crop (False = centre crop,
  used only for debugging).
  """
  scale_min: float = 0.5
  scale_max: float = 2.0
  rotate_deg: float = 10.0
  rotate_prob: float = 0.5
  blur_prob: float = 0.5
  blur_kernel: int = 5
  flip_prob: float = 0.5
  crop: bool = True

  @classmethod
  def crop_only(cls) -> "Augment":
    return cls(scale_min=1.0, scale_max=1.0, rotate_deg=0.0, rotate_prob=0.0, blur_prob=0.0, flip_prob=0.0)

  @classmethod
  def from_config(cls, cfg: Mapping[str, Any] | None) -> "Augment":
    if cfg is None:
      return cls()
    cfg = dict(cfg)
    if not cfg.pop("enabled", True):
      return cls.crop_only()
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(cfg) - fields
    if unknown:
      raise ValueError(f"unknown data.augmentation fields {sorted(unknown)}; known: {sorted(fields)} + 'enabled'")
    aug = cls(**cfg)
    if aug.scale_min <= 0 or aug.scale_max < aug.scale_min:
      raise ValueError(f"data.augmentation scale range must satisfy 0 < scale_min <= scale_max, got "
                       f"({aug.scale_min}, {aug.scale_max})")
    if aug.blur_prob > 0 and (aug.blur_kernel < 1 or aug.blur_kernel % 2 == 0):
      raise ValueError(f"data.augmentation.blur_kernel must be odd and positive, got {aug.blur_kernel}")
    return aug


def mean_pixel(pre: Preprocessing = DEFAULT) -> np.ndarray:
  """The RGB 0..255 pixel that normalises to 0 (float32): the padding value."""
  return pre.mean_pixel()


def normalize(image: np.ndarray, pre: Preprocessing = DEFAULT) -> np.ndarray:
  """uint8 (or 0..255 float) RGB (..., 3) -> float32 model input (psp_jax.preprocessing)."""
  return pre.normalize(image)


def random_scale(image, label, rng, lo: float, hi: float):
  if lo == hi == 1.0:
    return image, label
  s = rng.uniform(lo, hi)
  h, w = label.shape
  nh, nw = max(int(round(h * s)), 1), max(int(round(w * s)), 1)
  if (nh, nw) == (h, w):
    return image, label
  image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
  label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
  return image, label


def random_rotate(image, label, rng, max_deg: float, prob: float, fill):
  if prob <= 0 or max_deg <= 0 or rng.random() >= prob:
    return image, label
  angle = rng.uniform(-max_deg, max_deg)
  h, w = label.shape
  m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
  image = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=tuple(float(v) for v in fill))
  label = cv2.warpAffine(label, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=IGNORE_LABEL)
  return image, label


def random_blur(image, rng, prob: float, kernel: int):
  if prob <= 0 or rng.random() >= prob:
    return image
  return cv2.GaussianBlur(image, (kernel, kernel), 0)


def random_flip(image, label, rng, prob: float):
  if prob <= 0 or rng.random() >= prob:
    return image, label
  return image[:, ::-1], label[:, ::-1]


def pad_to(image, label, size: tuple[int, int], fill):
  """Pad (evenly, extra pixel at the bottom/right) to at least `size` with fill / 255."""
  h, w = label.shape
  ph, pw = max(size[0] - h, 0), max(size[1] - w, 0)
  if not ph and not pw:
    return image, label
  top, left = ph // 2, pw // 2
  image = cv2.copyMakeBorder(np.ascontiguousarray(image), top, ph - top, left, pw - left,
                             cv2.BORDER_CONSTANT, value=tuple(float(v) for v in fill))
  label = cv2.copyMakeBorder(np.ascontiguousarray(label), top, ph - top, left, pw - left,
                             cv2.BORDER_CONSTANT, value=IGNORE_LABEL)
  return image, label


def random_crop(image, label, rng, size: tuple[int, int], fill, random: bool = True):
  image, label = pad_to(image, label, size, fill)
  h, w = label.shape
  if random:
    y = int(rng.integers(0, h - size[0] + 1))
    x = int(rng.integers(0, w - size[1] + 1))
  else:
    y, x = (h - size[0]) // 2, (w - size[1]) // 2
  return image[y:y + size[0], x:x + size[1]], label[y:y + size[0], x:x + size[1]]


def train_transform(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, aug: Augment,
                    crop_size: tuple[int, int], pre: Preprocessing = DEFAULT
                    ) -> tuple[np.ndarray, np.ndarray]:
  """uint8 RGB (H, W, 3) + uint8 label (H, W) -> float32 normalised crop + int32 label crop."""
  fill = mean_pixel(pre)
  image = image.astype(np.float32)
  image, label = random_scale(image, label, rng, aug.scale_min, aug.scale_max)
  image, label = random_rotate(image, label, rng, aug.rotate_deg, aug.rotate_prob, fill)
  image = random_blur(image, rng, aug.blur_prob, aug.blur_kernel)
  image, label = random_flip(image, label, rng, aug.flip_prob)
  image, label = random_crop(image, label, rng, tuple(crop_size), fill, aug.crop)
  return normalize(image, pre), np.ascontiguousarray(label, dtype=np.int32)


def eval_transform(image: np.ndarray, label: np.ndarray, pre: Preprocessing = DEFAULT
                   ) -> tuple[np.ndarray, np.ndarray]:
  """Evaluation keeps the original size: only normalisation (the evaluator resizes/slides)."""
  return normalize(image, pre), label.astype(np.int32)
