"""Cascade semantics with a stub model whose outputs are known functions of its inputs:
which passes run with which maps, the skip rule, averaging over kept regions, the fallback to
the global result, fast mode, and compilation counts across image sizes."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psp_jax.refine import cascade, tiling

SIG = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
S4_LOGIT = 0.5  # the stub's global s4c logit, everywhere
S4_SIGN = 2 * SIG(S4_LOGIT) - 1


class StubModel:
  """Stands in for RefinementModule.apply. Global forward (no inter maps): s1 = 10 * red channel
  of the normalised image, s4c = 0.5. Windows: s1 = 3 * seg + 2 * inter_s8 + 0.05 * (row in the
  window) when entered at pass 2, and 3 * inter_s8 + 2 * inter_s4 + seg at pass 3. Records the
  entry point of every traced call."""

  def __init__(self):
    self.calls = []

  def apply(self, variables, images, seg, inter_s8=None, inter_s4=None, train=False):
    assert not train and set(variables) == {"w"}
    n, h, w, _ = images.shape
    self.calls.append(("pass1" if inter_s8 is None else "pass2" if inter_s4 is None else "pass3",
                       images.shape))
    if inter_s8 is None:
      return {"s1": 10.0 * images[..., :1], "s4c": jnp.full((n, h, w, 1), S4_LOGIT)}
    if inter_s4 is None:
      rows = jnp.arange(h, dtype=jnp.float32)[None, :, None, None]
      return {"s1": 3.0 * seg + 2.0 * inter_s8 + 0.05 * rows}
    return {"s1": 3.0 * inter_s8 + 2.0 * inter_s4 + seg}


def _cascade(local_mode="official", bucket=8, window_batch=3):
  stub = StubModel()
  return stub, cascade.Cascade(stub, {"w": 0}, bucket=bucket, window_batch=window_batch,
                               local_mode=local_mode)


def _half_image(h, w, split):
  """Red 255 left of column `split` (global s1 > 0 there), 0 right of it."""
  image = np.zeros((h, w, 3), np.uint8)
  image[:, :split, 0] = 255
  return image


def test_fast_mode_runs_the_global_step_only():
  stub, c = _cascade()
  h, w = 120, 150
  image = _half_image(h, w, 60)
  prob, info = c.run(image, np.zeros((h, w), bool), L=96, stages="global")
  assert [k for k, _ in stub.calls] == ["pass1"]
  assert c.window_forward._cache_size() == 0 and info.windows_total == 0
  prob = np.asarray(prob)
  assert prob.shape == (h, w) and info.global_size == (76, 96)
  assert (prob[:, :55] > 0.99).all() and (prob[:, 65:] < 0.01).all()


def test_local_step_enters_at_pass2_with_the_global_maps_and_keeps_the_global_elsewhere():
  stub, c = _cascade("official")
  h, w, L = 200, 384, 96  # global step at exactly 1/4: the split stays at column 160
  image = _half_image(h, w, 160)
  prob, info = c.run(image, np.zeros((h, w), bool), L=L, stages="global+local")
  prob = np.asarray(prob)
  kinds = [k for k, _ in stub.calls]
  assert kinds == ["pass1", "pass2"]  # the window program is entered at pass 2
  assert stub.calls[1][1] == (3, 96, 96, 3)  # a fixed batch of L x L windows
  # the global s1, thresholded at the input size, is the left/right split
  s1_sign = np.where(np.arange(w) < 160, 1.0, -1.0)[None].repeat(h, 0)
  plan = tiling.plan_windows(h, w, L)
  frac = np.array([(s1_sign[y:y + L, x:x + L] > 0).mean() for y, x in plan.starts])
  used = (frac >= 0.1) & (frac <= 0.9)
  assert info.windows_run == used.sum() > 0 and info.windows_skipped == (~used).sum() > 0
  assert info.windows_total == len(plan)
  # expected: average over used windows' kept regions of sigmoid(3 s1 + 2 s4 + 0.05 row)
  total, count = np.zeros((h, w)), np.zeros((h, w))
  for (y, x), (t, b, l, r), u in zip(plan.starts, plan.keep, used):
    if u:
      rows = np.arange(L)[:, None]
      p = SIG(3 * s1_sign[y:y + L, x:x + L] + 2 * S4_SIGN + 0.05 * rows)
      total[y + t:y + b, x + l:x + r] += p[t:b, l:r]
      count[y + t:y + b, x + l:x + r] += 1
  covered = count > 0
  assert covered.any() and (~covered).any()
  np.testing.assert_allclose(prob[covered], (total / np.maximum(count, 1))[covered], atol=1e-5)
  # pixels no used window kept: the thresholded global result, exactly 0 or 1
  np.testing.assert_array_equal(prob[~covered], (s1_sign[~covered] + 1) / 2)


def test_pass3_mode_feeds_coarse_mask_and_global_maps():
  stub, c = _cascade("pass3", window_batch=2)
  h, w, L = 96, 96, 96  # no resizing: the global maps are the stub's outputs as they are
  image = _half_image(h, w, 48)
  mask = np.zeros((h, w), bool)
  mask[:, :30] = True
  prob, info = c.run(image, mask, L=L)
  assert [k for k, _ in stub.calls] == ["pass1", "pass3"]
  assert info.windows_run == info.windows_total == 1
  s1_sign = np.where(np.arange(w) < 48, 1.0, -1.0)
  seg = np.where(np.arange(w) < 30, 1.0, -1.0)
  expected = SIG(3 * s1_sign + 2 * S4_SIGN + seg)[None].repeat(h, 0)
  np.testing.assert_allclose(np.asarray(prob), expected, atol=1e-5)


@pytest.mark.parametrize("frac_cols,runs", [(9, False), (10, True), (86, True), (87, False)])
def test_skip_rule_ten_and_ninety_percent(frac_cols, runs):
  """One 96x96 window (image 96 x 96, stages='local'): the input mask's foreground fraction
  decides. 9/96 = 9.4% and 87/96 = 90.6% are skipped; 10.4% and 89.6% run."""
  stub, c = _cascade()
  h = w = 96
  mask = np.zeros((h, w), bool)
  mask[:, :frac_cols] = True
  prob, info = c.run(np.zeros((h, w, 3), np.uint8), mask, L=96, stages="local")
  assert info.windows_total == 1 and info.windows_run == int(runs)
  prob = np.asarray(prob)
  if runs:
    assert not np.isin(prob, (0.0, 1.0)).any()
  else:  # no window: the input mask itself
    np.testing.assert_array_equal(prob, mask.astype(np.float32))


def test_windows_batched_with_padding_of_the_last_batch():
  stub, c = _cascade(window_batch=4)
  h, w, L = 96, 380, 96  # windows along x only; all straddle the boundary -> all run
  mask = np.zeros((h, w), bool)
  mask[:48] = True
  prob, info = c.run(np.zeros((h, w, 3), np.uint8), mask, L=L, stages="local")
  n = len(tiling.plan_windows(h, w, L))
  assert info.windows_run == n and info.batches == -(-n // 4) and n % 4  # a padded last batch
  rows = np.arange(h)[:, None]
  seg = np.where(mask, 1.0, -1.0)
  np.testing.assert_allclose(np.asarray(prob), SIG(5 * seg + 0.05 * rows), atol=1e-5)


def test_no_recompilation_within_a_bucket():
  stub, c = _cascade(bucket=64, window_batch=2)
  L = 200
  for h, w in [(300, 250), (300, 231), (301, 240), (250, 300)]:
    image = _half_image(h, w, w // 2)
    c.run(image, np.zeros((h, w), bool), L=L)
  # global canvases: (200, 192) for the first three, (192, 200) for the transposed one;
  # windows are all 200 x 200
  assert c.global_forward._cache_size() == 2
  assert c.window_forward._cache_size() == 1
  assert cascade.canvas_size(200, 166, 64) == (200, 192)
  assert cascade.canvas_size(900, 602, 64) == (904, 640)
  assert cascade.canvas_size(602, 900, 8) == (608, 904)
  assert cascade.canvas_size(900, 900, 64) == (904, 904)
  assert cascade.canvas_size(648, 900, "official") == (656, 904)
  assert cascade.canvas_size(648, 896, "official") == (648, 896)


def test_bad_settings():
  with pytest.raises(ValueError, match="bucket"):
    cascade.Cascade(StubModel(), {}, bucket=12)
  with pytest.raises(ValueError, match="local_mode"):
    cascade.Cascade(StubModel(), {}, local_mode="fancy")
  _, c = _cascade()
  with pytest.raises(ValueError, match="L >= 66"):
    c.run(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), bool), L=64)
  with pytest.raises(ValueError, match="stages"):
    c.run(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 10), bool), L=96, stages="both")


def test_uint8_output_is_floor_255p():
  p = jnp.asarray([0.0, 0.5, 0.999, 1.0, 127.9 / 255, 128.2 / 255])
  np.testing.assert_array_equal(np.asarray(cascade.to_uint8(p)), [0, 127, 254, 255, 127, 128])
  assert jax.numpy.asarray(cascade.to_uint8(p)).dtype == jnp.uint8
