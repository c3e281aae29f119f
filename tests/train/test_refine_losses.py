"""The CascadePSP objective against a direct NumPy restatement of the spec."""
import numpy as np
import pytest
from scipy import ndimage

import jax.numpy as jnp

from psp_jax.train import refine_losses as rl


def _np_grad_mag(x):  # x (H, W); zero padding 1, cross-correlation
  smooth = ndimage.correlate(x, np.full((3, 3), 1 / 9), mode="constant")
  sx = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]]) / 4
  gx = ndimage.correlate(smooth, sx, mode="constant")
  gy = ndimage.correlate(smooth, sx.T, mode="constant")
  return np.sqrt(gx ** 2 + gy ** 2 + 1e-4)


def _np_loss(outputs, gt):
  total = 0.0
  for k, ce_w, l_w in zip(rl.OUTPUTS, rl.PUBLISHED_CE_WEIGHTS, rl.PUBLISHED_L1L2_WEIGHTS):
    z = outputs[k][..., 0].astype(np.float64)
    p = 1 / (1 + np.exp(-z))
    bce = np.maximum(z, 0) - z * gt + np.log1p(np.exp(-np.abs(z)))
    total += ce_w * bce.mean() + l_w * (np.abs(p - gt).mean() + ((p - gt) ** 2).mean())
  p1 = 1 / (1 + np.exp(-outputs["s1"][..., 0].astype(np.float64)))
  grad = np.mean([np.abs(_np_grad_mag(p1[i]) - _np_grad_mag(gt[i])).mean() for i in range(len(gt))])
  return total + 5 * grad


def test_loss_matches_numpy_restatement():
  rng = np.random.default_rng(0)
  gt = (rng.random((2, 24, 16)) > 0.5).astype(np.float32)
  outputs = {k: rng.normal(size=(2, 24, 16, 1)).astype(np.float32) * 3 for k in rl.OUTPUTS}
  sums, count = rl.refinement_loss_sums({k: jnp.asarray(v) for k, v in outputs.items()}, jnp.asarray(gt))
  assert float(count) == gt.size
  np.testing.assert_allclose(float(sums["total"]) / float(count), _np_loss(outputs, gt), rtol=1e-5)
  # the published weights: BCE on the OS8/OS4 outputs only, L1+L2 on OS4/OS1, gradient on s1
  assert set(sums) == {"ce/s8a", "ce/s8b", "ce/s8c", "ce/s4b", "ce/s4c", "l1l2/s4b", "l1l2/s4c",
                       "l1l2/s1", "grad", "total"}


def test_perfect_prediction_has_near_zero_l1l2_and_grad():
  gt = np.zeros((1, 16, 16), np.float32)
  gt[:, 4:12, 4:12] = 1
  logits = jnp.asarray((gt * 2 - 1) * 40)[..., None]
  sums, count = rl.refinement_loss_sums({k: logits for k in rl.OUTPUTS}, jnp.asarray(gt))
  assert float(sums["grad"]) / float(count) < 1e-6
  assert float(sums["l1l2/s1"]) / float(count) < 1e-6
  assert float(sums["total"]) / float(count) < 1e-6


def test_gradient_term_sees_boundaries_only():
  """A prediction with the right region but a blurred edge pays mostly through the gradient
  term (L1/L2 a little); shifting the edge raises the gradient loss further."""
  gt = np.zeros((1, 32, 32), np.float32)
  gt[:, :, :16] = 1
  cols = np.broadcast_to(np.arange(32, dtype=np.float32), gt.shape)
  logits = {"sharp": np.where(gt > 0, 8.0, -8.0), "blurred": (15.5 - cols) * 0.5,
            "shifted": np.where(cols < 12, 8.0, -8.0)}
  assert np.array_equal(logits["blurred"] > 0, gt > 0)  # the same region as the ground truth
  loss = {}
  for name, z in logits.items():
    out = jnp.asarray(z, jnp.float32)[..., None]
    sums, count = rl.refinement_loss_sums({k: out for k in rl.OUTPUTS}, jnp.asarray(gt))
    loss[name] = {k: float(sums[k]) / float(count) for k in ("grad", "l1l2/s1")}
  assert loss["sharp"]["grad"] < 1e-3 and loss["sharp"]["l1l2/s1"] < 1e-3
  assert loss["blurred"]["grad"] > 100 * loss["sharp"]["grad"]
  assert loss["blurred"]["grad"] > 2 * loss["blurred"]["l1l2/s1"]
  assert loss["shifted"]["grad"] > 1.5 * loss["blurred"]["grad"]
  # the term is 5 x the mean |G(p) - G(gt)| of the docstring (NumPy/SciPy restatement)
  p = 1 / (1 + np.exp(-logits["blurred"][0].astype(np.float64)))
  expected = 5 * np.abs(_np_grad_mag(p) - _np_grad_mag(gt[0].astype(np.float64))).mean()
  assert loss["blurred"]["grad"] == pytest.approx(expected, rel=1e-5)
  # the magnitude is ~0.01 (sqrt 1e-4) in flat regions and large at the edge
  g = rl.gradient_magnitude(jnp.asarray(gt)[..., None])
  assert float(g[0, 16, 2, 0]) == pytest.approx(0.01, rel=1e-3)
  assert float(g[0, 16, 15, 0]) > 0.2


def test_weights_are_configurable_and_checked():
  gt = jnp.zeros((1, 8, 8))
  outs = {k: jnp.zeros((1, 8, 8, 1)) for k in rl.OUTPUTS}
  sums, _ = rl.refinement_loss_sums(outs, gt, ce_weights=(0,) * 6, l1l2_weights=(0,) * 5 + (1,),
                                    grad_weight=0)
  assert set(sums) == {"l1l2/s1", "total"}
  assert float(sums["total"]) == pytest.approx(64 * (0.5 + 0.25))
  with pytest.raises(ValueError, match="ce_weights must have 6"):
    rl.refinement_loss_sums(outs, gt, ce_weights=(1, 1, 1))
  with pytest.raises(ValueError, match=r"\['s1'\] are missing"):
    rl.refinement_loss_sums({k: v for k, v in outs.items() if k != "s1"}, gt)


def test_shorter_cascade_drops_the_terms_of_skipped_passes():
  rng = np.random.default_rng(3)
  gt = jnp.asarray(rng.random((2, 8, 8)) > 0.5, jnp.float32)
  outs = {k: jnp.asarray(rng.standard_normal((2, 8, 8, 1)), jnp.float32) for k in rl.OUTPUTS}
  full, _ = rl.refinement_loss_sums(outs, gt)
  short, _ = rl.refinement_loss_sums({k: outs[k] for k in ("s8c", "s4c", "s1")}, gt)
  assert set(full) - set(short) == {"ce/s8a", "ce/s8b", "ce/s4b", "l1l2/s4b"}
  dropped = sum(float(full[k]) for k in set(full) - set(short))
  assert float(short["total"]) == pytest.approx(float(full["total"]) - dropped, rel=1e-5)
  with pytest.raises(ValueError, match=r"\['s8c'\] are missing"):
    rl.refinement_loss_sums({k: outs[k] for k in ("s4c", "s1")}, gt)
