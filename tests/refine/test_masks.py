"""Mask and image input handling: formats, thresholds, warnings, errors, boxes."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from psp_jax.refine import masks
from psp_jax.refine.masks import NonBinaryMaskWarning


def _quiet(fn, *args, **kwargs):
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # any warning fails
    return fn(*args, **kwargs)


def test_mask_formats_give_the_same_binary_mask():
  ref = np.zeros((5, 7), bool)
  ref[1:4, 2:6] = True
  u8 = ref.astype(np.uint8) * 255
  for m in (ref, u8, u8[..., None], np.repeat(u8[..., None], 3, 2), ref.astype(np.uint8),
            ref.astype(np.float32), ref.astype(np.float64)[..., None], ref.astype(np.int64) * 255):
    np.testing.assert_array_equal(_quiet(masks.to_binary, m), ref)


def test_thresholds_and_non_binary_warning():
  u8 = np.array([[0, 127, 128, 255]], np.uint8)
  with pytest.warns(NonBinaryMaskWarning, match="thresholded at > 127"):
    np.testing.assert_array_equal(masks.to_binary(u8), [[False, False, True, True]])
  f = np.array([[0.0, 0.5, 0.51, 1.0]], np.float32)
  with pytest.warns(NonBinaryMaskWarning, match="> 0.5"):
    np.testing.assert_array_equal(masks.to_binary(f), [[False, False, True, True]])
  labels = np.array([[0, 1, 2, 3]], np.uint8)
  with pytest.warns(NonBinaryMaskWarning, match="label map"):
    assert not masks.to_binary(labels).any()


def test_mask_errors_name_the_input():
  rgb = np.zeros((4, 4, 3), np.uint8)
  rgb[0, 0] = (255, 0, 0)
  with pytest.raises(ValueError, match="mask has 3 channels that differ"):
    masks.to_binary(rgb)
  with pytest.raises(ValueError, match=r"mask is 4x5 \(HxW\) but the image is 4x6"):
    masks.to_binary(np.zeros((4, 5), bool), shape=(4, 6, 3))
  with pytest.raises(ValueError, match=r"values in \[0, 255\]"):
    masks.to_binary(np.array([[0.0, 255.0]]))
  with pytest.raises(ValueError, match="NaN"):
    masks.to_binary(np.array([[0.0, np.nan]]))
  with pytest.raises(ValueError, match="HxW"):
    masks.to_binary(np.zeros((2, 2, 2, 2), bool))


def test_image_checks_and_colour_order():
  img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
  np.testing.assert_array_equal(masks.check_image(img, color_order="BGR"), img[..., ::-1])
  with pytest.raises(ValueError, match="color_order"):
    masks.check_image(img, color_order="HSV")
  with pytest.raises(ValueError, match="image must be uint8"):
    masks.check_image(img.astype(np.float32))
  with pytest.raises(ValueError, match=r"image must be an \(H, W, 3\)"):
    masks.check_image(np.zeros((4, 4), np.uint8))
  for shape in ((1, 1, 3), (0, 5, 3), (1, 9, 3)):
    with pytest.raises(ValueError, match="too small"):
      masks.check_image(np.zeros(shape, np.uint8))
  masks.check_image(np.zeros((2, 2, 3), np.uint8))


def test_boxes():
  assert masks.check_box((-5, 2, 50, 8), 10, 20) == (0, 2, 20, 8)
  with pytest.raises(ValueError, match="empty or outside"):
    masks.check_box((30, 0, 40, 5), 10, 20)
  with pytest.raises(ValueError, match=r"\(x0, y0, x1, y1\)"):
    masks.check_box((1, 2, 3), 10, 20)
  assert masks.context_box((10, 10, 20, 14), 100, 100, 0.5) == (5, 5, 25, 19)
  assert masks.context_box((0, 0, 1, 1), 100, 100, 0.0) == (0, 0, 2, 2)  # at least 2x2


def test_label_maps():
  lab = np.array([[0, 2], [3, 2]], np.uint8)
  np.testing.assert_array_equal(masks.to_labels(np.repeat(lab[..., None], 3, 2)), lab)
  with pytest.raises(ValueError, match="integer label map"):
    masks.to_labels(lab.astype(np.float32))
