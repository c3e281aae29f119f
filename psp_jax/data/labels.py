"""Reading, mapping and checking segmentation labels (NumPy, Pillow, OpenCV; no TensorFlow).

Conventions used everywhere in psp_jax:
- a stored label is a uint8 map of class indices 0..C-1 and IGNORE_LABEL (255);
- raw annotations are read preserving their mode: a palette ('P') PNG gives its palette
  INDICES (never converted to RGB), 'L'/'I' give their values, an RGB(A) mask goes through a
  colour -> index table (an unknown colour is an error); an RGB mask whose three channels are
  equal everywhere is read as a grey-level mask;
- the raw -> class mapping is a lookup table (`LabelMap`) applied exactly once, when a TFDS
  builder prepares the dataset. Loading never maps again.
"""
from __future__ import annotations

import io
import os
from typing import Iterable, Mapping, Sequence

import cv2
import numpy as np
from PIL import Image

from psp_jax.constants import IGNORE_LABEL

UNKNOWN = -1  # entry of a lookup table for raw values that are neither a class nor ignored


class BadExampleError(ValueError):
  """An input file that cannot be used; the message names the file and the problem."""


def read_bytes(path: str | os.PathLike) -> bytes:
  try:
    with open(path, "rb") as f:
      return f.read()
  except OSError as e:
    raise BadExampleError(f"{path}: unreadable file ({e.strerror or e})") from e


def image_size(data: bytes, where: str) -> tuple[int, int]:
  """(height, width) of an encoded image after fully decoding it (catches truncated files)."""
  try:
    with Image.open(io.BytesIO(data)) as im:
      im.load()
      return im.height, im.width
  except Exception as e:  # PIL raises many types for corrupt data
    raise BadExampleError(f"{where}: corrupt or unsupported image ({type(e).__name__}: {e})") from e


def decode_image(data: bytes | np.ndarray) -> np.ndarray:
  """Encoded image bytes -> uint8 RGB (H, W, 3). Arrays pass through (grey -> RGB).

  EXIF orientation is ignored, as Pillow (which measured the size at prepare time) does, so
  image and label stay aligned.
  """
  if isinstance(data, np.ndarray):
    img = data
  else:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
      raise ValueError("image bytes could not be decoded")
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
  if img.ndim == 2:
    img = np.repeat(img[..., None], 3, axis=-1)
  if img.shape[-1] == 4:
    img = img[..., :3]
  return np.ascontiguousarray(img, dtype=np.uint8)


def encode_label(label: np.ndarray) -> bytes:
  """uint8 (H, W) -> single-channel PNG bytes (lossless; `decode_label` gives it back)."""
  ok, buf = cv2.imencode(".png", np.ascontiguousarray(label, np.uint8))
  if not ok:
    raise ValueError("could not encode label PNG")
  return buf.tobytes()


def decode_label(data: bytes | np.ndarray) -> np.ndarray:
  """Stored label (single-channel PNG bytes or an array) -> uint8 (H, W)."""
  if isinstance(data, np.ndarray):
    lab = data
  else:
    lab = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if lab is None:
      raise ValueError("label bytes could not be decoded")
  if lab.ndim == 3:
    if lab.shape[-1] != 1:
      raise ValueError(f"stored labels are single-channel, got shape {lab.shape}")
    lab = lab[..., 0]
  return lab


def colour_codes(rgb: np.ndarray) -> np.ndarray:
  rgb = np.asarray(rgb).astype(np.int64)
  return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def colours_to_indices(rgb: np.ndarray, colours: Mapping[tuple[int, int, int], int], where: str
                       ) -> np.ndarray:
  """RGB mask (H, W, 3) -> uint8 indices through `colours` {(r, g, b): index}; unknown -> error."""
  codes = colour_codes(rgb[..., :3])
  uniq, inverse = np.unique(codes.reshape(-1), return_inverse=True)
  table = {tuple(int(c) for c in k): int(v) for k, v in colours.items()}
  lookup = np.empty(len(uniq), np.int64)
  unknown = []
  for i, code in enumerate(uniq):
    key = ((int(code) >> 16) & 255, (int(code) >> 8) & 255, int(code) & 255)
    if key in table:
      lookup[i] = table[key]
    else:
      unknown.append(key)
  if unknown:
    raise BadExampleError(f"{where}: RGB annotation has colours not in the colour table: "
                          f"{unknown[:8]}{' ...' if len(unknown) > 8 else ''}")
  return lookup[inverse].reshape(codes.shape).astype(np.uint8)


def read_raw_label(data: bytes, where: str,
                   colours: Mapping[tuple[int, int, int], int] | None = None) -> np.ndarray:
  """Annotation file bytes -> raw integer label map (H, W), preserving the file's mode.

  'P' -> palette indices; 'L', 'I', 'I;16' -> values; '1' -> 0/1; 'RGB'/'RGBA' -> through
  `colours` ({(r, g, b): raw index}), or the grey level when R == G == B everywhere and no
  colour table is given; 'LA' -> its L channel. Anything else is an error.
  """
  try:
    im = Image.open(io.BytesIO(data))
    im.load()
  except Exception as e:
    raise BadExampleError(f"{where}: corrupt or unsupported annotation ({type(e).__name__}: {e})") from e
  mode = im.mode
  if mode in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
    arr = np.asarray(im)
  elif mode == "1":
    arr = np.asarray(im).astype(np.uint8)
  elif mode == "LA":
    arr = np.asarray(im)[..., 0]
  elif mode in ("RGB", "RGBA"):
    rgb = np.asarray(im)[..., :3]
    if colours is not None:
      return colours_to_indices(rgb, colours, where)
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
      arr = rgb[..., 0]
    else:
      raise BadExampleError(f"{where}: RGB colour-coded annotation but no colour table is configured "
                            "(set the dataset's colours, e.g. data.colors)")
  else:
    raise BadExampleError(f"{where}: unsupported annotation mode {mode!r}")
  return np.asarray(arr)


class LabelMap:
  """Raw annotation value -> class index (0..C-1) or IGNORE_LABEL, as a lookup table.

  `table[raw]` is the class, IGNORE_LABEL, or UNKNOWN (a raw value the dataset does not
  define: an error naming the file). Build with `from_pairs` or `identity`.
  """

  def __init__(self, table: np.ndarray, num_classes: int, description: str = ""):
    table = np.asarray(table, np.int32)
    bad = (table != UNKNOWN) & (table != IGNORE_LABEL) & ((table < 0) | (table >= num_classes))
    if bad.any():
      raise ValueError(f"label map sends raw values {np.nonzero(bad)[0].tolist()} outside 0..{num_classes - 1} "
                       f"and not {IGNORE_LABEL}")
    self.table = table
    self.num_classes = num_classes
    self.description = description

  @classmethod
  def from_pairs(cls, pairs: Mapping[int, int] | Iterable[tuple[int, int]], num_classes: int,
                 size: int = 256, description: str = "") -> "LabelMap":
    table = np.full(size, UNKNOWN, np.int32)
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    for raw, cls_ in items:
      raw = int(raw)
      if not 0 <= raw < size:
        raise ValueError(f"label map raw value {raw} outside 0..{size - 1}")
      table[raw] = int(cls_)
    return cls(table, num_classes, description)

  @classmethod
  def identity(cls, num_classes: int, ignore_values: Sequence[int] = (IGNORE_LABEL,),
               size: int = 256) -> "LabelMap":
    pairs = {i: i for i in range(num_classes)}
    pairs.update({int(v): IGNORE_LABEL for v in ignore_values})
    return cls.from_pairs(pairs, num_classes, size, f"identity 0..{num_classes - 1}, {list(ignore_values)} -> ignore")

  def __call__(self, raw: np.ndarray, where: str) -> np.ndarray:
    raw = np.asarray(raw)
    if raw.size and (raw.min() < 0 or raw.max() >= len(self.table)):
      vals = np.unique(raw[(raw < 0) | (raw >= len(self.table))])
      raise BadExampleError(f"{where}: annotation values {vals[:10].tolist()} outside the classes "
                            f"({self.description or 'label map'})")
    out = self.table[raw]
    if (out == UNKNOWN).any():
      vals = np.unique(raw[out == UNKNOWN])
      raise BadExampleError(f"{where}: annotation values {vals[:10].tolist()} are neither a class nor "
                            f"the ignore value ({self.description or 'label map'})")
    return out.astype(np.uint8)


def check_label(label: np.ndarray, num_classes: int, where: str) -> None:
  """Hard error when a stored/loaded label holds values other than 0..C-1 and IGNORE_LABEL."""
  label = np.asarray(label)
  bad = (label != IGNORE_LABEL) & ((label < 0) | (label >= num_classes))
  if bad.any():
    vals = np.unique(label[bad])
    raise ValueError(f"{where}: label values {vals[:10].tolist()} outside classes 0..{num_classes - 1} "
                     f"and not the ignore label {IGNORE_LABEL}")


def histogram(label: np.ndarray) -> np.ndarray:
  """Pixel counts of values 0..255 (int64, length 256)."""
  return np.bincount(np.asarray(label, np.uint8).reshape(-1), minlength=256).astype(np.int64)
