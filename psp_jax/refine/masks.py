"""Input handling of the refiner: images, binary masks, label maps, boxes (NumPy only).

Masks are accepted as (H, W), (H, W, 1) or (H, W, C) with C equal channels, of dtype
  bool     -> as is;
  integer  -> values in {0, 1} only: taken as 0/1; otherwise foreground = value > 127
              (the official contract: uint8 masks 0..255 thresholded at 127);
  float    -> foreground = value > 0.5 (probabilities in [0, 1]; values above 1 are refused).
A mask with values other than {0, 1} / {0, 255} / {0.0, 1.0} is binarised with a
`NonBinaryMaskWarning` (JPEG noise, soft masks). Images are (H, W, 3) uint8 in the colour
order given ('RGB', or 'BGR' for OpenCV arrays).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np

COLOR_ORDERS = ("RGB", "BGR")
MIN_SIDE = 2  # an image needs at least 2 pixels along each side


class NonBinaryMaskWarning(UserWarning):
  """A mask had values other than the two levels of a binary mask and was thresholded."""


def check_image(image, name: str = "image", color_order: str = "RGB") -> np.ndarray:
  """(H, W, 3) uint8 RGB copy-free view of `image`; ValueError naming `name` otherwise."""
  if color_order not in COLOR_ORDERS:
    raise ValueError(f"color_order must be one of {COLOR_ORDERS}, got {color_order!r}")
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"{name} must be an (H, W, 3) colour image, got shape {image.shape}")
  if image.dtype != np.uint8:
    raise ValueError(f"{name} must be uint8 (0..255), got {image.dtype}; convert with "
                     "np.clip(x, 0, 255).astype(np.uint8) (or x * 255 for images in [0, 1])")
  h, w = image.shape[:2]
  if h < MIN_SIDE or w < MIN_SIDE:
    raise ValueError(f"{name} is {h}x{w} (HxW): too small, it needs at least {MIN_SIDE} pixels "
                     "along each side")
  return image[..., ::-1] if color_order == "BGR" else image


def _single_channel(mask: np.ndarray, name: str) -> np.ndarray:
  if mask.ndim == 3:
    if mask.shape[2] == 1:
      return mask[..., 0]
    first = mask[..., 0]
    if any(not np.array_equal(first, mask[..., c]) for c in range(1, mask.shape[2])):
      raise ValueError(f"{name} has {mask.shape[2]} channels that differ; pass a single-channel "
                       "mask (HxW), e.g. cv2.imread(path, cv2.IMREAD_GRAYSCALE) or "
                       "PIL.Image.open(path).convert('L'); for several objects pass a label map to "
                       "refine_labels")
    return first
  if mask.ndim != 2:
    raise ValueError(f"{name} must be HxW, HxWx1 or HxWxC with equal channels, got shape {mask.shape}")
  return mask


def to_binary(mask, name: str = "mask", shape: Sequence[int] | None = None) -> np.ndarray:
  """(H, W) bool foreground of `mask` (see the module docstring). `shape`: the (H, W) the mask
  must have (the image's), checked with an error naming both sizes."""
  mask = _single_channel(np.asarray(mask), name)
  if shape is not None and tuple(mask.shape) != tuple(shape[:2]):
    raise ValueError(f"{name} is {mask.shape[0]}x{mask.shape[1]} (HxW) but the image is "
                     f"{shape[0]}x{shape[1]}: they must have the same size")
  if mask.size == 0:
    raise ValueError(f"{name} is empty (shape {mask.shape})")
  if mask.dtype == np.bool_:
    return mask
  if np.issubdtype(mask.dtype, np.integer):
    values = np.unique(mask)
    if np.all(np.isin(values, (0, 1))):
      return mask.astype(bool)
    if not np.all(np.isin(values, (0, 255))):
      top = int(values.max())
      hint = (f" All values are <= 127, so the mask is empty: is it a label map (use refine_labels)"
              f" or a 0..{top} scale?" if top <= 127 else " (JPEG noise?)")
      warnings.warn(f"{name} is not binary ({values.size} distinct values in {int(values.min())}.."
                    f"{top}); thresholded at > 127.{hint}", NonBinaryMaskWarning, stacklevel=3)
    return mask > 127
  if np.issubdtype(mask.dtype, np.floating):
    if not np.all(np.isfinite(mask)):
      raise ValueError(f"{name} has NaN or infinite values")
    lo, hi = float(mask.min()), float(mask.max())
    if lo < 0.0 or hi > 1.0:
      raise ValueError(f"{name} is a float mask with values in [{lo:g}, {hi:g}]; float masks must be "
                       "probabilities in [0, 1] (pass uint8 0..255 masks as uint8)")
    if not np.all((mask == 0.0) | (mask == 1.0)):
      warnings.warn(f"{name} is a soft float mask; thresholded at > 0.5", NonBinaryMaskWarning,
                    stacklevel=3)
    return mask > 0.5
  raise ValueError(f"{name} has unsupported dtype {mask.dtype} (use bool, uint8 or float)")


def to_labels(labels, name: str = "labels", shape: Sequence[int] | None = None) -> np.ndarray:
  """(H, W) integer label map (HxW, HxWx1 or equal channels), size-checked like `to_binary`."""
  labels = _single_channel(np.asarray(labels), name)
  if shape is not None and tuple(labels.shape) != tuple(shape[:2]):
    raise ValueError(f"{name} is {labels.shape[0]}x{labels.shape[1]} (HxW) but the image is "
                     f"{shape[0]}x{shape[1]}: they must have the same size")
  if labels.dtype == np.bool_:
    return labels.astype(np.uint8)
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{name} must be an integer label map, got {labels.dtype}")
  return labels


def check_box(roi: Sequence[int], height: int, width: int) -> tuple[int, int, int, int]:
  """(x0, y0, x1, y1) of a box in pixels (x1, y1 exclusive), clipped to the image; ValueError
  when it is malformed or does not meet the image."""
  try:
    x0, y0, x1, y1 = (int(round(float(v))) for v in roi)
  except (TypeError, ValueError) as e:
    raise ValueError(f"roi must be (x0, y0, x1, y1), got {roi!r}") from e
  x0, x1 = max(0, x0), min(width, x1)
  y0, y1 = max(0, y0), min(height, y1)
  if x1 - x0 < 1 or y1 - y0 < 1:
    raise ValueError(f"roi {tuple(roi)} is empty or outside the {height}x{width} (HxW) image")
  return x0, y0, x1, y1


def context_box(box: tuple[int, int, int, int], height: int, width: int, margin: float
                ) -> tuple[int, int, int, int]:
  """`box` grown by `margin` x its longer side on every side (clipped), and at least MIN_SIDE."""
  if margin < 0:
    raise ValueError(f"roi_margin must be >= 0, got {margin}")
  x0, y0, x1, y1 = box
  pad = int(round(margin * max(x1 - x0, y1 - y0)))
  x0, y0 = max(0, x0 - pad), max(0, y0 - pad)
  x1, y1 = min(width, x1 + pad), min(height, y1 + pad)
  if x1 - x0 < MIN_SIDE:
    x0, x1 = max(0, min(x0, width - MIN_SIDE)), min(width, max(x1, x0 + MIN_SIDE))
  if y1 - y0 < MIN_SIDE:
    y0, y1 = max(0, min(y0, height - MIN_SIDE)), min(height, max(y1, y0 + MIN_SIDE))
  return x0, y0, x1, y1


def object_box(mask: np.ndarray, grow: float) -> tuple[int, int, int, int] | None:
  """(x0, y0, x1, y1) of the mask's foreground bounding box grown by `grow` x its longer side
  (at least 1 px) on every side, clipped to the image; None for an empty mask. The growth lets
  a refinement of the box add the object's pixels that the coarse mask missed at its edge."""
  if grow < 0:
    raise ValueError(f"roi_grow must be >= 0, got {grow}")
  ys, xs = np.nonzero(mask)
  if ys.size == 0:
    return None
  y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
  pad = max(1, int(round(grow * max(x1 - x0, y1 - y0))))
  h, w = mask.shape
  return max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad)
