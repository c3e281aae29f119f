"""Window layout of the local step: coverage, margins, border windows, order, the step."""
from __future__ import annotations

import numpy as np
import pytest

from psp_jax.refine import tiling

SIZES = [(7, 13), (4001, 3), (3, 4001), (900, 900), (901, 899), (648, 968), (2160, 3840),
         (1000, 1002), (450, 1800), (97, 300)]


@pytest.mark.parametrize("h,w,L", [(h, w, L) for h, w in SIZES for L in (96, 128, 900)]
                         + [(7, 13, 66), (97, 300, 66), (4001, 3, 66), (130, 67, 66)])
def test_kept_regions_cover_every_pixel(h, w, L):
  plan = tiling.plan_windows(h, w, L)
  assert plan.size == (min(L, h), min(L, w))
  assert (plan.coverage() >= 1).all(), "a pixel is kept by no window"
  # every window lies inside the image and keeps a non-empty region inside itself
  for (y, x), (t, b, l, r) in zip(plan.starts, plan.keep):
    assert 0 <= y and y + plan.size[0] <= h and 0 <= x and x + plan.size[1] <= w
    assert 0 <= t < b <= plan.size[0] and 0 <= l < r <= plan.size[1]


def test_margins_are_dropped_except_on_image_borders():
  h, w, L = 700, 1000, 200
  plan = tiling.plan_windows(h, w, L)
  for (y, x), (t, b, l, r) in zip(plan.starts, plan.keep):
    assert t == (0 if y == 0 else 16) and l == (0 if x == 0 else 16)
    assert b == L - (0 if y + L == h else 16) and r == L - (0 if x + L == w else 16)
  # the image's border rows/columns are kept by some window despite the margins
  cov = plan.coverage()
  assert cov[0].min() >= 1 and cov[-1].min() >= 1 and cov[:, 0].min() >= 1 and cov[:, -1].min() >= 1


def test_step_shift_dedup_and_official_order():
  # step = 900 // 2 - 32 = 418; x: 0, 418, 836, ... the last shifted to end on the border
  assert tiling.axis_starts(3840, 900, 418) == [0, 418, 836, 1254, 1672, 2090, 2508, 2926, 2940]
  assert tiling.axis_starts(2160, 900, 418) == [0, 418, 836, 1254, 1260]
  assert tiling.axis_starts(648, 900, 418) == [0]  # shorter than L: one window, the whole side
  assert tiling.axis_starts(968, 900, 418) == [0, 68]
  plan = tiling.plan_windows(2160, 3840, 900)
  assert len(plan) == 9 * 5 and plan.size == (900, 900)
  # x outer, y inner, as the released code loops
  assert [tuple(s) for s in plan.starts[:6]] == [(0, 0), (418, 0), (836, 0), (1254, 0), (1260, 0),
                                                 (0, 418)]


def test_small_L_is_refused_for_the_local_step():
  assert tiling.min_local_L() == 66
  tiling.plan_windows(100, 100, 66)
  with pytest.raises(ValueError, match="L >= 66"):
    tiling.plan_windows(100, 100, 65)


def test_coverage_of_used_windows_only():
  plan = tiling.plan_windows(300, 300, 128)
  used = np.zeros(len(plan), bool)
  used[0] = True
  cov = plan.coverage(used)
  y0, y1, x0, x1 = plan.kept_regions()[0]
  assert cov.sum() == (y1 - y0) * (x1 - x0) and cov[0, 0] == 1 and cov[-1, -1] == 0
