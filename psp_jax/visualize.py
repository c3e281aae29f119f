"""Label maps as images: palette PNGs (indices preserved), colour maps and overlays."""
from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np
from PIL import Image


def default_palette(num_classes: int) -> np.ndarray:
  """(num_classes, 3) uint8: PASCAL VOC's bit-interleaved colours (distinct, deterministic)."""
  palette = np.zeros((num_classes, 3), np.uint8)
  for i in range(num_classes):
    c, r, g, b = i, 0, 0, 0
    for bit in range(8):
      r |= ((c >> 0) & 1) << (7 - bit)
      g |= ((c >> 1) & 1) << (7 - bit)
      b |= ((c >> 2) & 1) << (7 - bit)
      c >>= 3
    palette[i] = (r, g, b)
  return palette


def colorize(label: np.ndarray, palette: Sequence[Sequence[int]] | np.ndarray,
             ignore_color: Sequence[int] = (0, 0, 0)) -> np.ndarray:
  """(H, W) labels -> (H, W, 3) uint8 colours; labels outside the palette get `ignore_color`."""
  palette = np.asarray(palette, np.uint8).reshape(-1, 3)
  table = np.tile(np.asarray(ignore_color, np.uint8), (256, 1))
  table[:len(palette)] = palette[:256]
  return table[np.clip(label, 0, 255).astype(np.uint8)]


def overlay(image: np.ndarray, colors: np.ndarray, opacity: float = 0.5) -> np.ndarray:
  """Blend a colour map over an RGB image; opacity 0 = image only, 1 = colours only."""
  if not 0.0 <= opacity <= 1.0:
    raise ValueError(f"overlay opacity must be in [0, 1], got {opacity}")
  blend = (1 - opacity) * image.astype(np.float32) + opacity * colors.astype(np.float32)
  return np.clip(blend + 0.5, 0, 255).astype(np.uint8)


def save_index_png(path: str | pathlib.Path, label: np.ndarray,
                   palette: Sequence[Sequence[int]] | np.ndarray) -> None:
  """A palette ('P' mode) PNG: pixel values are the class indices, shown in `palette` colours."""
  if label.max(initial=0) > 255 or label.min(initial=0) < 0:
    raise ValueError("label values must be in [0, 255] to be stored in a palette PNG")
  img = Image.fromarray(label.astype(np.uint8), mode="P")
  flat = np.zeros((256, 3), np.uint8)
  pal = np.asarray(palette, np.uint8).reshape(-1, 3)[:256]
  flat[:len(pal)] = pal
  img.putpalette(flat.reshape(-1).tolist())
  img.save(path)
