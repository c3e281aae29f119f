"""`psp_jax.Refiner` with a tiny random-weight checkpoint: the official contract, sizes, stages,
colour order, ROI, label maps, compile counts. Small L (96) keeps it fast."""
from __future__ import annotations

import numpy as np
import pytest
from refine_fixtures import blob_sample

import psp_jax
from psp_jax import checkpoint
from psp_jax.refine import api, cascade, tiling

L = 96


def test_lazy_entry_point_and_contract(refiner, tiny_ckpt):
  image, mask = blob_sample(150, 230)
  r = psp_jax.Refiner(tiny_ckpt, bucket=64)
  assert isinstance(r, api.Refiner)
  soft = r.refine(image, mask, fast=True, L=L)
  assert soft.shape == (150, 230) and soft.dtype == np.uint8
  res = refiner.refine_result(image, mask, fast=True, L=L)
  np.testing.assert_array_equal(res.soft, soft)
  assert res.probability.dtype == np.float32 and res.probability.shape == (150, 230)
  np.testing.assert_array_equal(res.soft, np.floor(res.probability * np.float32(255)).astype(np.uint8))
  np.testing.assert_array_equal(res.mask, res.soft > 127)
  binary = refiner.refine(image, mask, fast=True, L=L, return_soft=False)
  np.testing.assert_array_equal(binary, res.mask.astype(np.uint8) * 255)
  assert res.info.stages == "global" and res.info.windows_total == 0


@pytest.mark.parametrize("h,w", [(7, 13), (4001, 3), (150, 230)])
def test_odd_sizes_keep_the_input_size(refiner, h, w):
  image, mask = blob_sample(h, w, seed=1)
  for fast in (True, False):
    res = refiner.refine_result(image, mask, fast=fast, L=L)
    assert res.soft.shape == (h, w) and res.probability.shape == (h, w)
    assert np.isfinite(res.probability).all()
    assert 0.0 <= res.probability.min() and res.probability.max() <= 1.0


def test_local_step_runs_windows_with_the_real_model(refiner):
  image, mask = blob_sample(150, 150)
  image = np.pad(image, ((0, 0), (0, 180), (0, 0)))  # the right part: background only
  mask = np.pad(mask, ((0, 0), (0, 180)))
  res = refiner.refine_result(image, mask, L=L, stages="local")
  plan = tiling.plan_windows(150, 330, L)
  assert res.info.windows_total == len(plan) and 0 < res.info.windows_run <= len(plan)
  assert res.info.window_canvas == (96, 96)
  # pixels kept by no run window keep the input mask
  fg = np.where(mask > 127, 1.0, -1.0)
  frac = np.array([(fg[y:y + L, x:x + L] > 0).mean() for y, x in plan.starts])
  used = (frac >= cascade.SKIP_LOW) & (frac <= cascade.SKIP_HIGH)
  assert used.sum() == res.info.windows_run
  free = plan.coverage(used) == 0
  assert free.any()
  np.testing.assert_array_equal(res.probability[free], (mask[free] > 127).astype(np.float32))


def test_stage_choices(refiner):
  image, mask = blob_sample(150, 230)
  fast = refiner.refine(image, mask, fast=True, L=L)
  np.testing.assert_array_equal(refiner.refine(image, mask, L=L, stages="global"), fast)
  with pytest.raises(ValueError, match="fast=True means stages='global'"):
    refiner.refine(image, mask, fast=True, L=L, stages="local")
  with pytest.raises(ValueError, match="stages must be one of"):
    refiner.refine(image, mask, L=L, stages="everything")


def test_bgr_input_equals_rgb_input(refiner):
  image, mask = blob_sample(150, 230, seed=3)
  rgb = refiner.refine(image, mask, fast=True, L=L)
  bgr = refiner.refine(np.ascontiguousarray(image[..., ::-1]), mask, fast=True, L=L,
                       color_order="BGR")
  np.testing.assert_array_equal(rgb, bgr)


def test_roi_refines_the_box_and_keeps_the_rest(refiner):
  image, mask = blob_sample(150, 230, seed=4)
  box = (60, 30, 170, 120)  # x0, y0, x1, y1
  res = refiner.refine_result(image, mask, fast=True, L=L, roi=box, roi_margin=0.25)
  outside = np.ones(mask.shape, bool)
  outside[30:120, 60:170] = False
  np.testing.assert_array_equal(res.soft[outside], mask[outside])
  # inside: the refinement of the context crop (box grown by 0.25 x 110 = 28 px), pasted back
  x0, y0, x1, y1 = 32, 2, 198, 148
  crop = refiner.refine(image[y0:y1, x0:x1], mask[y0:y1, x0:x1], fast=True, L=L)
  np.testing.assert_array_equal(res.soft[30:120, 60:170], crop[30 - y0:120 - y0, 60 - x0:170 - x0])


def test_label_maps_are_refined_per_class_and_merged(refiner):
  image, _ = blob_sample(150, 230, seed=5)
  labels = np.zeros((150, 230), np.uint8)
  labels[20:90, 20:110] = 3
  labels[60:140, 120:210] = 7
  out, probs = refiner.refine_labels(image, labels, fast=True, L=L, return_probabilities=True)
  assert out.shape == labels.shape and out.dtype == labels.dtype
  assert sorted(probs) == [3, 7]
  stack = np.stack([probs[3], probs[7]])
  expected = np.where(stack.max(0) >= 0.5, np.array([3, 7])[stack.argmax(0)], 0)
  np.testing.assert_array_equal(out, expected)
  # a single class is the binary refinement of that class
  single = refiner.refine_result(image, labels == 3, fast=True, L=L).probability
  np.testing.assert_array_equal(probs[3], single)


def test_no_recompilation_across_sizes_within_a_bucket(refiner):
  fwd = refiner.cascade.global_forward
  image, mask = blob_sample(150, 230)
  refiner.refine(image, mask, fast=True, L=L)
  before = fwd._cache_size()
  for h, w in [(140, 220), (151, 229), (130, 300)]:  # global canvases all (64, 96)
    image, mask = blob_sample(h, w)
    refiner.refine(image, mask, fast=True, L=L)
  assert fwd._cache_size() == before


def test_errors(refiner, tmp_path):
  image, mask = blob_sample(20, 30)
  with pytest.raises(ValueError, match=r"mask is 20x31 \(HxW\) but the image is 20x30"):
    refiner.refine(image, np.zeros((20, 31), np.uint8))
  with pytest.raises(ValueError, match="too small"):
    refiner.refine(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1), np.uint8))
  with pytest.raises(ValueError, match="channels that differ"):
    refiner.refine(image, np.stack([mask, mask, 255 - mask], -1))
  with pytest.raises(ValueError, match="L >= 66"):
    refiner.refine(image, mask, L=64)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    api.Refiner(tmp_path / "nothing")
  other = tmp_path / "pspnet"
  checkpoint.save_checkpoint(other, {"params": {"w": np.zeros(2, np.float32)}},
                             {"format_version": 1, "model": {"name": "pspnet"}})
  with pytest.raises(ValueError, match="'pspnet' checkpoint .segmentation. cannot refine masks; Refiner needs a refinement checkpoint such as 'cascadepsp'"):
    api.Refiner(other)


def test_real_photo_and_jpeg_mask(refiner, shared_data):
  from PIL import Image
  folder = shared_data / "refine_samples"
  image = np.asarray(Image.open(folder / "big_sample_image.jpg").convert("RGB"))
  mask_rgb = np.asarray(Image.open(folder / "big_sample_mask.jpg"))
  with pytest.raises(ValueError, match="channels that differ"):  # RGB JPEG: channels differ
    refiner.refine(image, mask_rgb, fast=True, L=L)
  mask = np.asarray(Image.open(folder / "big_sample_mask.jpg").convert("L"))
  with pytest.warns(UserWarning, match="not binary"):
    soft = refiner.refine(image, mask, fast=True, L=L)
  assert soft.shape == (648, 968) and soft.dtype == np.uint8


def test_bfloat16_compute_dtype(tiny_ckpt, refiner):
  image, mask = blob_sample(150, 230)
  r16 = api.Refiner(tiny_ckpt, dtype="bfloat16", bucket=64)
  assert np.dtype(r16.cascade.model.dtype) == np.dtype("bfloat16")
  p16 = r16.refine_result(image, mask, fast=True, L=L).probability
  p32 = refiner.refine_result(image, mask, fast=True, L=L).probability
  assert p16.dtype == np.float32 and p16.shape == p32.shape
  assert np.abs(p16 - p32).mean() < 0.05
