"""Class-agnostic object masks from a semantic segmentation label map, so that CascadePSP can
be trained and evaluated on any prepared segmentation dataset (CamVid here; ADE20K, VOC,
Cityscapes for users who have them) instead of saliency datasets.

  objects = ObjectMasks.from_config(data_cfg.objects, class_names)   # None when not set
  found = objects.find(label)           # [(class index, bool (H, W) mask), ...]
  gt = objects.pick(label, rng)         # uint8 {0, 1} (H, W): one object, or None

An object is, for every class of `classes` present in the label map, one of its connected
components (8-connectivity) with at least `min_pixels` pixels; `merge_per_class` makes the
whole class (its components above the size, together) one object instead. Pixels of other
classes and ignore (255) are background. Training draws one object per example; evaluation
draws `eval_per_image` objects per image without replacement, from a fixed per-image seed.

The `data.objects` config section (None: the dataset's `foreground_classes` decide instead):
  classes          class indices or names that give objects (None: every class)
  min_pixels       smallest component kept (pixels at the stored resolution)
  merge_per_class  one object per class instead of one per component
  eval_per_image   objects per evaluation image (fewer when an image has fewer)
  crop_on_object   training crops contain a random pixel of the object (a random crop of a
                   large road scene would miss a small object most of the time)
  crop_to_box      0 (default): crops at the stored resolution; > 0: the crop is the object's
                   bounding box with this fraction of its longer side as context on every side
                   (jittered), resized to the crop size: each object seen at the scale that
                   evaluation inside the object's box (eval.roi='object') refines it at
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from psp_jax.constants import IGNORE_LABEL

FIELDS = ("classes", "min_pixels", "merge_per_class", "eval_per_image", "crop_on_object",
          "crop_to_box")


def resolve_classes(classes, class_names: Sequence[str], key: str) -> tuple[int, ...]:
  """Class indices or names -> sorted unique indices; an unknown one is an error naming `key`."""
  out = set()
  for c in classes:
    if isinstance(c, str):
      if c not in class_names:
        raise ValueError(f"{key}: {c!r} is not a class of the dataset {list(class_names)}")
      c = list(class_names).index(c)
    if not 0 <= int(c) < len(class_names):
      raise ValueError(f"{key}: {c} is outside the classes 0..{len(class_names) - 1}")
    out.add(int(c))
  if not out:
    raise ValueError(f"{key} is empty")
  return tuple(sorted(out))


@dataclasses.dataclass(frozen=True)
class ObjectMasks:
  """Objects of a label map (module docstring); picklable for Grain workers."""
  classes: tuple[int, ...]
  min_pixels: int = 400
  merge_per_class: bool = False
  eval_per_image: int = 1
  crop_on_object: bool = True
  crop_to_box: float = 0.0

  @classmethod
  def from_config(cls, cfg: Mapping[str, Any] | None, class_names: Sequence[str]) -> "ObjectMasks | None":
    if cfg is None:
      return None
    cfg = dict(cfg)
    unknown = set(cfg) - set(FIELDS)
    if unknown:
      raise ValueError(f"unknown data.objects fields {sorted(unknown)}; known: {list(FIELDS)}")
    classes = cfg.pop("classes", None)
    classes = tuple(range(len(class_names))) if classes is None else resolve_classes(
        classes, class_names, "data.objects.classes")
    out = cls(classes=classes, **cfg)
    if int(out.min_pixels) < 1:
      raise ValueError(f"data.objects.min_pixels must be >= 1, got {out.min_pixels}")
    if int(out.eval_per_image) < 1:
      raise ValueError(f"data.objects.eval_per_image must be >= 1, got {out.eval_per_image}")
    if not 0.0 <= float(out.crop_to_box) <= 4.0:
      raise ValueError(f"data.objects.crop_to_box is the context around the object's box as a fraction "
                       f"of its longer side (0 = off) and must be in [0, 4], got {out.crop_to_box}")
    return out

  def _candidates(self, label: np.ndarray) -> list[tuple[int, np.ndarray, list[int]]]:
    """[(class, component labels (H, W), the component ids of one object)] in `find`'s order,
    without building the masks (only the drawn object's is built)."""
    out = []
    present = np.unique(label)
    for c in self.classes:
      if c == IGNORE_LABEL or c not in present:
        continue
      binary = (label == c).astype(np.uint8)
      count, components, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
      big = [k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= self.min_pixels]
      if not big:
        continue
      if self.merge_per_class:
        out.append((c, components, big))
      else:
        out.extend((c, components, [k]) for k in big)
    return out

  @staticmethod
  def _mask(candidate) -> np.ndarray:
    _, components, ids = candidate
    return np.isin(components, ids) if len(ids) > 1 else components == ids[0]

  def find(self, label: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """uint8 label (H, W) -> [(class, bool (H, W) object mask)], in class order, then by the
    raster position of each component's first pixel."""
    return [(cand[0], self._mask(cand)) for cand in self._candidates(label)]

  def pick(self, label: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """One object of `label` drawn uniformly as uint8 {0, 1} (H, W); None when there is none."""
    candidates = self._candidates(label)
    if not candidates:
      return None
    return self._mask(candidates[int(rng.integers(len(candidates)))]).astype(np.uint8)

  def pick_eval(self, label: np.ndarray, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """Up to `eval_per_image` objects without replacement, as [(class, uint8 {0, 1} mask)]."""
    candidates = self._candidates(label)
    if not candidates:
      return []
    chosen = rng.choice(len(candidates), size=min(len(candidates), int(self.eval_per_image)),
                        replace=False)
    return [(candidates[k][0], self._mask(candidates[k]).astype(np.uint8))
            for k in sorted(int(k) for k in chosen)]


def anchor_pixel(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
  """A uniformly drawn (y, x) of the mask's foreground (None when empty): where a training
  crop is placed so that it contains part of the object."""
  ys, xs = np.nonzero(mask)
  if ys.size == 0:
    return None
  k = int(rng.integers(ys.size))
  return int(ys[k]), int(xs[k])


def box_crop(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, size: tuple[int, int],
             context: float, fill: np.ndarray):
  """The object's bounding box with `context` x its longer side on every side, jittered (side
  x U[0.85, 1.2], centre moved by up to 0.1 of the side), resized to `size` (image bilinear,
  mask bilinear then > 0.5). image (H, W, 3) uint8 or float (warped as f32), mask uint8 {0, 1}
  with some foreground.
  Returns (image f32 (ch, cw, 3), mask uint8 (ch, cw), (y0, y1, x0, x1) box of image pixels
  in the crop; outside it the image is `fill` and the mask 0)."""
  ys, xs = np.nonzero(mask)
  y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
  ch, cw = size
  side = max(y1 - y0, x1 - x0) * (1.0 + 2.0 * context) * rng.uniform(0.85, 1.2)
  cy = (y0 + y1) / 2.0 + rng.uniform(-0.1, 0.1) * side
  cx = (x0 + x1) / 2.0 + rng.uniform(-0.1, 0.1) * side
  scale = max(ch, cw) / side  # crop pixels per image pixel
  # crop coordinate = (image coordinate - origin) * scale, pixel centres aligned
  oy, ox = cy - ch / (2.0 * scale), cx - cw / (2.0 * scale)
  m = np.float32([[scale, 0, (0.5 - ox) * scale - 0.5], [0, scale, (0.5 - oy) * scale - 0.5]])
  out_img = cv2.warpAffine(np.ascontiguousarray(image, np.float32), m, (cw, ch), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(v) for v in fill))
  out_mask = cv2.warpAffine(mask.astype(np.float32), m, (cw, ch), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0) > 0.5
  h, w = mask.shape
  box = (int(np.clip(np.ceil(-oy * scale), 0, ch)), int(np.clip(np.floor((h - oy) * scale), 0, ch)),
         int(np.clip(np.ceil(-ox * scale), 0, cw)), int(np.clip(np.floor((w - ox) * scale), 0, cw)))
  return out_img, out_mask.astype(np.uint8), box
