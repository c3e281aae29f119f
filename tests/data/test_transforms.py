"""Training/evaluation transforms: label range, flips, crop size, padding and border values."""
import numpy as np
import pytest

from psp_jax.data import transforms as T
from psp_jax.preprocessing import Preprocessing

OFF = T.Augment(scale_min=1.0, scale_max=1.0, rotate_deg=0.0, rotate_prob=0.0, blur_prob=0.0, flip_prob=0.0)


def _example(h=30, w=40, seed=0, num_classes=5):
  rng = np.random.default_rng(seed)
  image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
  label = rng.integers(0, num_classes, (h, w)).astype(np.uint8)
  label[0, :] = 255
  return image, label


def test_crop_only_is_a_window_of_the_input():
  image, label = _example()
  out_img, out_lab = T.train_transform(image, label, np.random.default_rng(1), OFF, (20, 24))
  assert out_img.shape == (20, 24, 3) and out_img.dtype == np.float32
  assert out_lab.shape == (20, 24) and out_lab.dtype == np.int32
  norm = T.normalize(image)
  found = [(y, x) for y in range(11) for x in range(17)
           if np.array_equal(out_lab, label[y:y + 20, x:x + 24]) and np.allclose(out_img, norm[y:y + 20, x:x + 24])]
  assert found, "crop-only output is not a window of the input"


def test_flip_mirrors_image_and_label_together():
  image, label = _example(20, 20)
  flip = T.Augment(**{**OFF.__dict__, "flip_prob": 1.0})
  out_img, out_lab = T.train_transform(image, label, np.random.default_rng(0), flip, (20, 20))
  np.testing.assert_array_equal(out_lab, label[:, ::-1])
  np.testing.assert_allclose(out_img, T.normalize(image[:, ::-1]), atol=1e-6)


def test_full_augmentation_keeps_labels_in_range_and_exact_crop_size():
  aug = T.Augment()
  for seed in range(30):
    image, label = _example(seed=seed)
    out_img, out_lab = T.train_transform(image, label, np.random.default_rng(seed), aug, (33, 41))
    assert out_img.shape == (33, 41, 3) and out_lab.shape == (33, 41)
    assert set(np.unique(out_lab).tolist()) <= set(range(5)) | {255}
    assert np.isfinite(out_img).all()


def test_padding_uses_mean_pixel_and_ignore_label():
  image, label = _example(10, 12)
  out_img, out_lab = T.train_transform(image, label, np.random.default_rng(0), OFF, (21, 31))
  pad = out_lab == 255
  pad[:, :] = False
  top, left = (21 - 10) // 2, (31 - 12) // 2  # the image sits centred in the padded canvas
  pad[:top] = True
  pad[top + 10:] = True
  pad[:, :left] = True
  pad[:, left + 12:] = True
  assert (out_lab[pad] == 255).all()
  np.testing.assert_allclose(out_img[pad], 0.0, atol=1e-6)  # normalised mean pixel
  np.testing.assert_array_equal(out_lab[top:top + 10, left:left + 12], label)


def test_rotation_fills_corners_with_mean_pixel_and_ignore():
  image = np.full((41, 41, 3), 255, np.uint8)
  label = np.zeros((41, 41), np.uint8)
  rot = T.Augment(**{**OFF.__dict__, "rotate_deg": 10.0, "rotate_prob": 1.0})
  rng = np.random.default_rng(3)
  out_img, out_lab = T.train_transform(image, label, rng, rot, (41, 41))
  assert out_lab[0, 0] == 255 and out_lab[40, 40] == 255 and out_lab[20, 20] == 0
  np.testing.assert_allclose(out_img[0, 0], 0.0, atol=1e-3)
  assert set(np.unique(out_lab).tolist()) == {0, 255}


def test_scale_changes_size_with_nearest_labels():
  image, label = _example(20, 20)
  big = T.Augment(**{**OFF.__dict__, "scale_min": 2.0, "scale_max": 2.0})
  img, lab = T.random_scale(image.astype(np.float32), label, np.random.default_rng(0), 2.0, 2.0)
  assert lab.shape == (40, 40) and img.shape == (40, 40, 3)
  assert set(np.unique(lab).tolist()) <= set(np.unique(label).tolist())  # nearest: no new values
  np.testing.assert_array_equal(lab[::2, ::2], label)
  out_img, out_lab = T.train_transform(image, label, np.random.default_rng(0), big, (25, 25))
  assert out_lab.shape == (25, 25)


def test_blur_changes_image_not_label():
  image, label = _example(16, 16)
  blur = T.Augment(**{**OFF.__dict__, "blur_prob": 1.0})
  out_img, out_lab = T.train_transform(image, label, np.random.default_rng(0), blur, (16, 16))
  np.testing.assert_array_equal(out_lab, label)
  assert not np.allclose(out_img, T.normalize(image))
  assert out_img.std() < T.normalize(image).std()


def test_augment_config_switches():
  assert T.Augment.from_config({"enabled": False}) == T.Augment.crop_only()
  assert T.Augment.from_config({"flip_prob": 0.0}).flip_prob == 0.0
  with pytest.raises(ValueError, match="unknown data.augmentation fields"):
    T.Augment.from_config({"flip": 1})
  with pytest.raises(ValueError, match="odd"):
    T.Augment.from_config({"blur_kernel": 4})


def test_normalize_matches_definition():
  x = np.array([[[255, 0, 128]]], np.uint8)
  # ((x / 255) - ImageNet mean) / std, worked out by hand: (1 - 0.485) / 0.229, ...
  np.testing.assert_allclose(T.normalize(x)[0, 0], [2.2489083, -2.0357143, 0.4264924], rtol=1e-5)
  np.testing.assert_allclose(T.mean_pixel(), [123.675, 116.28, 103.53], rtol=1e-6)
  # SegNet's raw BGR: channels reversed, no scaling; DeepLab's: a BGR mean subtracted
  segnet = Preprocessing((0, 0, 0), (1, 1, 1), 1.0, "BGR")
  np.testing.assert_array_equal(T.normalize(x, segnet)[0, 0], [128, 0, 255])
  deeplab = Preprocessing((104.008, 116.669, 122.675), (1, 1, 1), 1.0, "BGR")
  np.testing.assert_allclose(T.normalize(x, deeplab)[0, 0], [23.992, -116.669, 132.325], rtol=1e-5)
  np.testing.assert_allclose(T.mean_pixel(deeplab), [122.675, 116.669, 104.008], rtol=1e-6)
  np.testing.assert_allclose(T.normalize(T.mean_pixel(deeplab), deeplab), 0, atol=1e-4)
