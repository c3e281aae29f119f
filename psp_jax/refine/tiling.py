"""Window layout of CascadePSP's local step (pure Python: no JAX here).

Windows are L x L (or the whole side where the image is shorter than L), placed along each
axis at multiples of step = L // 2 - 2 * margin (stride L/2 minus the two discarded 16-pixel
margins); a window that would cross the far border is shifted back to end on it, and starts
that repeat are dropped. Each window keeps its prediction only inside its *kept region*: the
window minus `margin` pixels on every side that is not on the image border. Consecutive kept
regions overlap (step < L - 2 * margin), so the kept regions of all windows cover the image.
Windows are listed as the official code visits them: x outer, y inner.
"""
from __future__ import annotations

import dataclasses

import numpy as np

MARGIN = 16


def min_local_L(margin: int = MARGIN) -> int:
  """Smallest L with a positive step L // 2 - 2 * margin (66 for the 16-pixel margin)."""
  return 4 * margin + 2


def axis_starts(n: int, L: int, step: int) -> list[int]:
  """Window starts along one axis of length n (windows of min(L, n) pixels)."""
  if step < 1:
    raise ValueError(f"window step must be >= 1, got {step}")
  starts: list[int] = []
  for i in range(n // step + 1):
    s = i * step
    if s + L > n:
      s = n - L
    s = max(0, s)
    if s not in starts:
      starts.append(s)
  return starts


def kept_span(start: int, size: int, n: int, margin: int = MARGIN) -> tuple[int, int]:
  """[lo, hi) in image coordinates that a window [start, start + size) keeps along one axis."""
  lo = start + (margin if start != 0 else 0)
  hi = start + size - (margin if start + size != n else 0)
  return lo, hi


@dataclasses.dataclass(frozen=True)
class WindowPlan:
  """Windows of one image. starts: (N, 2) int (y, x); keep: (N, 4) int (top, bottom, left,
  right) bounds of the kept region in window coordinates; size: (wh, ww) of every window."""
  height: int
  width: int
  L: int
  size: tuple[int, int]
  starts: np.ndarray
  keep: np.ndarray

  def __len__(self) -> int:
    return len(self.starts)

  def kept_regions(self) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) kept by each window, in image coordinates."""
    return [(int(y + t), int(y + b), int(x + l), int(x + r))
            for (y, x), (t, b, l, r) in zip(self.starts, self.keep)]

  def coverage(self, used: np.ndarray | None = None) -> np.ndarray:
    """(H, W) int: how many (used) windows keep each pixel."""
    count = np.zeros((self.height, self.width), np.int32)
    for i, (y0, y1, x0, x1) in enumerate(self.kept_regions()):
      if used is None or used[i]:
        count[y0:y1, x0:x1] += 1
    return count


def plan_windows(h: int, w: int, L: int, margin: int = MARGIN) -> WindowPlan:
  """The local step's windows for an h x w image (see the module docstring)."""
  step = L // 2 - 2 * margin
  if step < 1:
    raise ValueError(f"L={L} is too small for the local step: the window step L//2 - {2 * margin} "
                     f"must be positive, i.e. L >= {min_local_L(margin)} (or use the global step "
                     "only: fast=True)")
  wh, ww = min(L, h), min(L, w)
  ys, xs = axis_starts(h, L, step), axis_starts(w, L, step)
  starts, keep = [], []
  for x in xs:
    for y in ys:
      ty, by = kept_span(y, wh, h, margin)
      tx, bx = kept_span(x, ww, w, margin)
      starts.append((y, x))
      keep.append((ty - y, by - y, tx - x, bx - x))
  return WindowPlan(h, w, L, (wh, ww), np.asarray(starts, np.int32).reshape(-1, 2),
                    np.asarray(keep, np.int32).reshape(-1, 4))
