"""DenseCRF mean field: the lattice path against the exact oracle on real CamVid crops, a NumPy
reference of one iteration, the documented properties, batching/jit, and bad inputs."""
import jax.numpy as jnp
import numpy as np
import pytest

from psp_jax.postprocess import PRESETS, CRFParams, dense_crf, mean_field
from psp_jax.postprocess.crf import mean_field_core

from crf_samples import NUM_CLASSES, noisy_logits


def _numpy_one_iteration(image, logits, p: CRFParams):
  """One mean-field step with explicit N x N kernels (float64), Potts."""
  h, w, k = logits.shape
  yy, xx = np.mgrid[:h, :w]
  pos = np.stack([xx.ravel(), yy.ravel()], -1).astype(np.float64)
  rgb = image.reshape(-1, 3).astype(np.float64)
  d_pos = ((pos[:, None] - pos[None]) ** 2).sum(-1)
  d_rgb = ((rgb[:, None] - rgb[None]) ** 2).sum(-1)
  k_bi = np.exp(-d_pos / (2 * p.xy_bi ** 2) - d_rgb / (2 * p.rgb_bi ** 2))
  k_pos = np.exp(-d_pos / (2 * p.xy_pos ** 2))
  u = logits.reshape(-1, k).astype(np.float64)
  q = np.exp(u - u.max(-1, keepdims=True))
  q /= q.sum(-1, keepdims=True)
  m = 0
  for wk, kern in ((p.w_bi, k_bi), (p.w_pos, k_pos)):
    rows = kern.sum(1, keepdims=True)
    if p.normalisation == "per_pixel":
      m = m + wk * (kern @ q) / rows
    else:
      m = m + wk * (kern @ (q / np.sqrt(rows))) / np.sqrt(rows)
  z = u + m
  q = np.exp(z - z.max(-1, keepdims=True))
  return (q / q.sum(-1, keepdims=True)).reshape(h, w, k)


@pytest.mark.parametrize("normalisation", ["per_pixel", "symmetric"])
def test_exact_matches_numpy_reference(crop, normalisation):
  image, label = crop[0][:12, :12], crop[1][:12, :12]
  logits = noisy_logits(label, 1.0)
  p = PRESETS["v1_deeplab"].replace(iterations=1, normalisation=normalisation)
  ours = dense_crf(image, logits, p, method="exact")
  np.testing.assert_allclose(ours, _numpy_one_iteration(image, logits, p), atol=2e-5)


def test_lattice_agrees_with_exact_on_real_crop(crop):
  # experiments/benchmark_crf.py measured 0.981-1.0 argmax agreement on 64x64 CamVid crops
  image, label = crop
  logits = noisy_logits(label, 1.0)
  for name in ("v1_largefov", "v2_resnet"):
    exact = dense_crf(image, logits, name, method="exact")
    fast = dense_crf(image, logits, name)
    agree = (exact.argmax(-1) == fast.argmax(-1)).mean()
    assert agree > 0.97, (name, agree)
    assert np.abs(exact - fast).mean() < 0.02, name


@pytest.mark.parametrize("method", ["lattice", "exact"])
def test_zero_weights_return_softmax_of_unary(crop, method):
  image, label = crop
  logits = noisy_logits(label, 1.0)
  p = PRESETS["v2_resnet"].replace(w_bi=0.0, w_pos=0.0)
  q = dense_crf(image, logits, p, method=method)
  e = np.exp(logits - logits.max(-1, keepdims=True))
  np.testing.assert_allclose(q, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)
  assert (q.argmax(-1) == logits.argmax(-1)).all()


def test_probabilities_sum_to_one_and_inputs_agree(crop):
  image, label = crop
  logits = noisy_logits(label, 1.0)
  q = dense_crf(image, logits, "v2_resnet")
  assert q.shape == logits.shape and q.dtype == np.float32 and (q >= 0).all()
  np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-5)
  e = np.exp(logits - logits.max(-1, keepdims=True))
  from_probs = dense_crf(image, e / e.sum(-1, keepdims=True), "v2_resnet", inputs="probabilities")
  np.testing.assert_allclose(from_probs, q, atol=1e-4)


def test_symmetric_and_per_pixel_differ_and_potts_equals_its_matrix(crop):
  image, label = crop
  logits = noisy_logits(label, 1.0)
  p = PRESETS["v1_deeplab"]
  per_pixel = dense_crf(image, logits, p, method="exact")
  symmetric = dense_crf(image, logits, p.replace(normalisation="symmetric"), method="exact")
  # the same where every kernel row sums alike; they differ near edges and colour boundaries
  assert np.abs(per_pixel - symmetric).max() > 1e-2
  potts = 1.0 - np.eye(NUM_CLASSES, dtype=np.float32)
  np.testing.assert_allclose(dense_crf(image, logits, p, method="exact", compatibility=potts),
                             per_pixel, atol=1e-5)
  # a zero compatibility switches the pairwise terms off
  zero = dense_crf(image, logits, p, compatibility=np.zeros((NUM_CLASSES,) * 2, np.float32))
  assert (zero.argmax(-1) == logits.argmax(-1)).all()


def test_crf_brings_a_noisy_label_map_closer_to_ground_truth(camvid):
  image, label = camvid
  image, label = image[::4, ::4], label[::4, ::4]  # 90x120, the whole scene
  logits = noisy_logits(label, 1.2, seed=3)
  valid = label < NUM_CLASSES

  def miou(pred):
    ious = [((pred == c) & (label == c) & valid).sum() / (((pred == c) | (label == c)) & valid).sum()
            for c in range(NUM_CLASSES) if (label == c).any()]
    return float(np.mean(ious))

  before = miou(logits.argmax(-1))
  after = miou(dense_crf(image, logits, "v1_deeplab").argmax(-1))
  assert after > before + 0.15, (before, after)


def test_batch_jit_and_no_recompile_for_same_size(camvid):
  image, label = camvid
  images = np.stack([image[:32, :48], image[200:232, 300:348]])
  logits = np.stack([noisy_logits(label[:32, :48], 1.0), noisy_logits(label[200:232, 300:348], 1.0)])
  p = PRESETS["v1_deeplab"]
  both = mean_field(jnp.asarray(images), jnp.asarray(logits), p)
  assert both.shape == (2, 32, 48, NUM_CLASSES)
  before = mean_field_core._cache_size()
  for i in range(2):
    one = mean_field(jnp.asarray(images[i:i + 1]), jnp.asarray(logits[i:i + 1]), p)
    np.testing.assert_allclose(np.asarray(one[0]), np.asarray(both[i]), atol=1e-5)
  after_first = mean_field_core._cache_size()
  dense_crf(images[0], logits[0], p.replace(w_bi=3.0, xy_bi=40.0))  # other values, same shape
  assert mean_field_core._cache_size() == after_first == before + 1


def test_bad_inputs_name_the_argument(crop):
  image, label = crop
  logits = noisy_logits(label, 1.0)
  with pytest.raises(ValueError, match="image is 40x40 but logits are 39x40"):
    dense_crf(image, logits[1:], "v2_resnet")
  with pytest.raises(ValueError, match=r"image must be RGB of shape \(H, W, 3\)"):
    dense_crf(image[..., 0], logits, "v2_resnet")
  with pytest.raises(ValueError, match="image must be uint8"):
    dense_crf(image.astype(np.float32), logits, "v2_resnet")
  bad = logits.copy()
  bad[3, 4, 5] = np.nan
  with pytest.raises(ValueError, match="logits contain NaN or Inf"):
    dense_crf(image, bad, "v2_resnet")
  bad[3, 4, 5] = np.inf
  with pytest.raises(ValueError, match="logits contain NaN or Inf"):
    dense_crf(image, bad, "v2_resnet")
  with pytest.raises(ValueError, match="probabilities must lie in"):
    dense_crf(image, logits, "v2_resnet", inputs="probabilities")
  with pytest.raises(ValueError, match=r"CRFParams.xy_bi: a standard deviation must be"):
    dense_crf(image, logits, {"preset": "v2_resnet", "xy_bi": -1.0})
  with pytest.raises(ValueError, match=r"CRFParams.w_pos: a kernel weight must be"):
    dense_crf(image, logits, {"preset": "v2_resnet", "w_pos": -0.5})
  with pytest.raises(ValueError, match=r"CRFParams.iterations: must be an int >= 1"):
    dense_crf(image, logits, {"preset": "v2_resnet", "iterations": 0})
  with pytest.raises(ValueError, match=r"compatibility must be \(11, 11\)"):
    dense_crf(image, logits, "v2_resnet", compatibility=np.ones((3, 3)))
  with pytest.raises(ValueError, match="method='exact' is O"):
    dense_crf(np.zeros((80, 80, 3), np.uint8), np.zeros((80, 80, 2)), "v2_resnet", method="exact")
