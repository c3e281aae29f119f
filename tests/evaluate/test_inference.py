"""Sliding-window / flip / multi-scale inference: window placement, coverage, exactness."""
import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psp_jax.evaluate.inference import (InferenceSettings, SlidingWindowPredictor, scaled_size,
                                        window_starts)
from psp_jax.models import PSPNet
from psp_jax.checkpoint import init_variables


def test_window_starts_follow_semseg():
  # 512 long side, crop 473, stride ceil(473 * 2/3) = 316: two windows, the last flush right.
  assert window_starts(512, 473, 2 / 3) == [0, 39]
  assert window_starts(473, 473, 2 / 3) == [0]
  assert window_starts(1024, 473, 2 / 3) == [0, 316, 551]
  assert scaled_size(375, 500, 1.0, 512) == (384, 512)
  assert scaled_size(500, 375, 0.5, 512) == (256, 192)
  assert scaled_size(10, 20, 1.5, None) == (15, 30)


def _per_pixel_predictor(num_classes=4, **kw):
  """A per-pixel linear 'model': windows, overlaps and flips must not change its output."""
  weights = jnp.asarray(np.random.default_rng(0).normal(size=(3, num_classes)).astype(np.float32))
  forward = lambda w, x: jnp.einsum("nhwc,ck->nhwk", x, w)  # noqa: E731
  return SlidingWindowPredictor(forward, weights, num_classes, InferenceSettings(**kw)), weights


@pytest.mark.parametrize("size", [(37, 53), (20, 15), (64, 64)])
@pytest.mark.parametrize("flip", [False, True])
def test_windows_cover_every_pixel_exactly(size, flip):
  predictor, weights = _per_pixel_predictor(crop_size=(24, 24), base_size=None, flip=flip,
                                            window_batch=3, bucket=16)
  image = np.random.default_rng(1).integers(0, 256, size=(*size, 3)).astype(np.uint8)
  probs = np.asarray(predictor.probabilities(image))
  expected = jax.nn.softmax(predictor.normalise(image) @ np.asarray(weights), axis=-1)
  np.testing.assert_allclose(probs[:size[0], :size[1]], expected, rtol=1e-5, atol=1e-6)
  assert np.all(probs[size[0]:] == 0) and np.all(probs[:, size[1]:] == 0)
  np.testing.assert_array_equal(predictor.predict(image), np.argmax(expected, -1))


def test_scales_sum_the_per_scale_probabilities():
  """Per scale: the image resized (bilinear, half-pixel), the per-pixel softmax, resized back
  to the image; the prediction is their sum. Recomputed here with NumPy and OpenCV."""
  scales = {0.5: (15, 20), 1.0: (30, 41), 1.5: (45, 62)}  # round(30 s), round(41 s)
  predictor, weights = _per_pixel_predictor(crop_size=(24, 24), base_size=None,
                                            scales=tuple(scales))
  image = np.random.default_rng(2).integers(0, 256, size=(30, 41, 3)).astype(np.uint8)
  mean = np.array([0.485, 0.456, 0.406]) * 255
  std = np.array([0.229, 0.224, 0.225]) * 255
  total = np.zeros((30, 41, 4))
  for (h, w) in scales.values():
    scaled = cv2.resize(image.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    logits = ((scaled - mean) / std) @ np.asarray(weights, np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    total += cv2.resize(probs.astype(np.float32), (41, 30), interpolation=cv2.INTER_LINEAR)
  got = np.asarray(predictor.probabilities(image))
  np.testing.assert_allclose(got[:30, :41], total, rtol=1e-4, atol=1e-5)
  assert np.all(got[30:] == 0) and np.all(got[:, 41:] == 0)


def test_image_smaller_than_crop_equals_direct_forward_of_padded_image():
  model = PSPNet(5, depth=18, width=8, head_features=16, aux_features=8, bins=(1, 2))
  variables = init_variables(model, jax.random.key(0))
  forward = lambda v, x: model.apply(v, x, train=False)  # noqa: E731
  settings = InferenceSettings(crop_size=(33, 33), base_size=None, window_batch=1, bucket=8)
  predictor = SlidingWindowPredictor(forward, variables, 5, settings)
  image = np.random.default_rng(3).integers(0, 256, size=(21, 30, 3)).astype(np.uint8)
  padded = np.zeros((33, 33, 3), np.float32)
  padded[6:27, 1:31] = predictor.normalise(image)  # centred: (33-21)//2 = 6, (33-30)//2 = 1
  direct = jax.nn.softmax(jax.jit(forward)(variables, padded[None])[0], -1)[6:27, 1:31]
  probs = np.asarray(predictor.probabilities(image))[:21, :30]
  np.testing.assert_allclose(probs, np.asarray(direct), rtol=1e-4, atol=1e-5)


def test_no_recompile_of_the_network_across_image_sizes():
  predictor, _ = _per_pixel_predictor(crop_size=(24, 24), base_size=48, scales=(0.75, 1.0),
                                      window_batch=2, bucket=16)
  rng = np.random.default_rng(4)
  for size in [(40, 60), (41, 57), (60, 40), (33, 35)]:
    predictor.predict(rng.integers(0, 256, size=(*size, 3)).astype(np.uint8))
  assert predictor._window_probs._cache_size() == 1


def test_rejects_non_rgb():
  predictor, _ = _per_pixel_predictor(crop_size=(8, 8), base_size=None)
  with pytest.raises(ValueError, match="HxWx3"):
    predictor.predict(np.zeros((10, 10), np.uint8))
