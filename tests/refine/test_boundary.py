"""IoU and mBA on hand-made masks, with counts worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from psp_jax.evaluate import boundary


def _square(h=100, w=120, box=(20, 80, 30, 90)):
  m = np.zeros((h, w), bool)
  y0, y1, x0, x1 = box
  m[y0:y1, x0:x1] = True
  return m


def test_iou_hand_counts():
  gt = _square()  # 60 x 60 = 3600
  pred = gt.copy()
  pred[20:22] = False  # 120 pixels missing
  assert boundary.binary_iou(pred, gt) == pytest.approx(3480 / 3600)
  extra = gt.copy()
  extra[80:90, 30:90] = True  # 600 extra
  assert boundary.binary_iou(extra, gt) == pytest.approx(3600 / 4200)
  assert boundary.binary_iou(np.zeros((4, 4)), np.zeros((4, 4), bool)) == 1.0
  assert boundary.binary_iou(np.ones((4, 4), bool), np.zeros((4, 4), bool)) == 0.0
  # uint8 masks are thresholded at 127, 0/1 integers taken as they are
  assert boundary.binary_iou(gt.astype(np.uint8) * 255, gt.astype(np.uint8)) == 1.0


def test_radii_follow_the_image_size():
  assert boundary.boundary_radii(100, 120) == [1] * 5  # R = 0.73 < 1: r = 1 throughout
  # 968 x 648: R = 5.387, r_i = 1 + int(4.387 / 5 * i)
  assert boundary.boundary_radii(648, 968) == [1, 1, 2, 3, 4]
  assert boundary.boundary_radii(2160, 3840) == [1, 4, 8, 12, 16]  # R = 20


def test_band_of_a_square_with_radius_one():
  # the 3x3 disk is a cross: the band is the 236-pixel inner ring plus the 240-pixel outer ring
  # (the outer ring without its 4 diagonal corners)
  band = boundary.boundary_band(_square(), 1)
  assert band.sum() == 236 + 240
  assert band[19, 30] and band[20, 30] and not band[21, 31] and not band[19, 29]


def test_mba_hand_counts():
  gt = _square()
  assert boundary.boundary_accuracy(gt, gt) == 1.0
  pred = gt.copy()
  pred[20:22] = False  # wrong in band: the 60 pixels of row 20, and row 21's two ends
  assert boundary.boundary_accuracy(pred, gt) == pytest.approx((476 - 62) / 476)
  assert boundary.boundary_accuracy(~gt, gt) == 0.0


def test_mba_uses_five_radii_on_large_images():
  gt = _square(600, 900, (100, 500, 200, 700))  # R = 5: radii 1, 1, 2, 3, 4
  pred = gt.copy()
  pred[100] = False  # the top row missing: the same 400 errors in every band
  accs = boundary.boundary_accuracies(pred, gt)
  assert len(accs) == 5 and accs[0] == accs[1]
  assert accs[0] < accs[2] < accs[3] < accs[4] < 1.0  # wider bands dilute the same error
  assert boundary.boundary_accuracy(pred, gt) == pytest.approx(np.mean(accs))


def test_mba_without_a_boundary_is_nan_and_shapes_must_match():
  assert math.isnan(boundary.boundary_accuracy(np.zeros((50, 50), bool), np.zeros((50, 50), bool)))
  with pytest.raises(ValueError, match="same shape"):
    boundary.binary_iou(np.zeros((5, 5), bool), np.zeros((5, 6), bool))
