"""Parity with pydensecrf (Krähenbühl's C++ DenseCRF; the optional `crf` extra, pydensecrf2)
on a real image. Our spatial term is an exact separable Gaussian where pydensecrf uses its
lattice, so the two differ by the lattice's approximation of that term."""
import numpy as np
import pytest

from psp_jax.postprocess import PRESETS, dense_crf

from crf_samples import NUM_CLASSES, camvid_pair, noisy_logits


def _pydensecrf(dcrf, image, logits, p):
  h, w, k = logits.shape
  crf = dcrf.DenseCRF2D(w, h, k)
  z = logits - logits.max(-1, keepdims=True)
  log_probs = z - np.log(np.exp(z).sum(-1, keepdims=True))
  crf.setUnaryEnergy(np.ascontiguousarray(-log_probs.reshape(-1, k).T, dtype=np.float32))
  norm = {"symmetric": dcrf.NORMALIZE_SYMMETRIC, "per_pixel": dcrf.NORMALIZE_AFTER}[p.normalisation]
  crf.addPairwiseGaussian(sxy=p.xy_pos, compat=p.w_pos, normalization=norm)
  crf.addPairwiseBilateral(sxy=p.xy_bi, srgb=p.rgb_bi, rgbim=np.ascontiguousarray(image),
                           compat=p.w_bi, normalization=norm)
  return np.array(crf.inference(p.iterations)).T.reshape(h, w, k)


@pytest.mark.parametrize("normalisation", ["symmetric", "per_pixel"])
def test_argmax_agrees_with_pydensecrf(shared_data, normalisation):
  dcrf = pytest.importorskip(
      "pydensecrf.densecrf", reason="pydensecrf not installed (pip install -e '.[crf]')")
  image, label = camvid_pair(shared_data)
  image, label = np.ascontiguousarray(image[::3, ::3]), label[::3, ::3]  # 120x160
  logits = noisy_logits(label, 1.0)
  p = PRESETS["v2_resnet"].replace(normalisation=normalisation)
  ours = dense_crf(image, logits, p)
  theirs = _pydensecrf(dcrf, image, logits, p)
  # measured at 360x480: 0.999 for all presets and both normalisations
  agree = (ours.argmax(-1) == theirs.argmax(-1)).mean()
  assert agree > 0.99, agree
  assert np.abs(ours - theirs).mean() < 0.005
  assert ours.shape == (120, 160, NUM_CLASSES)
