"""Inputs that are legal but probably wrong: warnings, not errors.

  mask_warnings(mask)                    a binary mask (H, W) with no foreground, or no background
  label_warnings(labels, ignore=255)     a label map (H, W) with a single class present
  class_count_warnings(pixels, names)    a dataset split in which a single class occurs

Each returns the messages (an empty list when all is well); the caller prints them in its own
style (`psp-jax refine: warning: mask.png: ...`, the dataset report's WARNING lines).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def mask_warnings(mask: np.ndarray) -> list[str]:
  """A boolean (H, W) mask that is empty or full: nothing to refine, most likely the wrong file."""
  mask = np.asarray(mask, bool)
  if not mask.any():
    return ["the mask has no foreground at all (every pixel is background): nothing to refine; "
            "is it the right file, and is the foreground white (> 127)?"]
  if mask.all():
    return ["the mask is foreground everywhere (no background, no boundary to refine)"]
  return []


def label_warnings(labels: np.ndarray, ignore: int | None = 255) -> list[str]:
  """An (H, W) label map in which one class (besides the ignore value) occurs."""
  values = np.unique(np.asarray(labels))
  present = [int(v) for v in values if ignore is None or int(v) != ignore]
  if len(present) == 1:
    return [f"the label map holds a single class ({present[0]})"
            + (" outside the ignore value" if len(values) > 1 else "")
            + ": nothing to separate; is it the right file (an index PNG, not a colour image)?"]
  return []


def class_count_warnings(pixels: Sequence[int], names: Sequence[str]) -> list[str]:
  """Per-class pixel counts of a split in which a single class occurs (e.g. masks stored as
  0/255 with 255 the ignore label, or a label mapping that sends everything to one class)."""
  present = [n for n, p in zip(names, pixels) if p > 0]
  if len(present) == 1 and len(names) > 1:
    return [f"only one class occurs ({present[0]!r}): the label mapping is probably wrong "
            "(masks stored as 0/255 with 255 = ignore? see data.label_map / ignore_values)"]
  return []
