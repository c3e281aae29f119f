"""Adaptive pooling and bilinear resize against hand-computed values (PyTorch semantics)."""
import jax.numpy as jnp
import numpy as np
import pytest

from psp_jax.models.ops import (adaptive_pool, adaptive_pool_cells, linear_interpolation_matrix,
                                resize_bilinear)


def test_adaptive_pool_cells_overlap_like_pytorch():
  # L=5, n=3: [floor(0)=0, ceil(5/3)=2), [floor(5/3)=1, ceil(10/3)=4), [floor(10/3)=3, 5)
  assert adaptive_pool_cells(5, 3) == [(0, 2), (1, 4), (3, 5)]
  assert adaptive_pool_cells(6, 3) == [(0, 2), (2, 4), (4, 6)]
  assert adaptive_pool_cells(60, 6)[-1] == (50, 60)
  # More bins than positions: cells repeat (PyTorch allows it).
  assert adaptive_pool_cells(2, 3) == [(0, 1), (0, 2), (1, 2)]


def test_adaptive_avg_and_max_pool_hand_computed():
  x = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)
  avg = np.asarray(adaptive_pool(jnp.asarray(x), 3, "avg"))[0, :, :, 0]
  # Cell (0, 0) = rows 0-1, cols 0-1: mean(0, 1, 5, 6) = 3.
  assert avg[0, 0] == pytest.approx(3.0)
  # Cell (1, 2) = rows 1-3, cols 3-4: mean(8, 9, 13, 14, 18, 19) = 13.5.
  assert avg[1, 2] == pytest.approx(13.5)
  # Cell (2, 1) = rows 3-4, cols 1-3: mean(16, 17, 18, 21, 22, 23) = 19.5.
  assert avg[2, 1] == pytest.approx(19.5)
  mx = np.asarray(adaptive_pool(jnp.asarray(x), 3, "max"))[0, :, :, 0]
  np.testing.assert_array_equal(mx, [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
  one = np.asarray(adaptive_pool(jnp.asarray(x), 1, "avg"))
  assert one.shape == (1, 1, 1, 1) and one[0, 0, 0, 0] == pytest.approx(12.0)
  with pytest.raises(ValueError, match="mode"):
    adaptive_pool(jnp.asarray(x), 2, "median")


def test_resize_align_corners_true_hand_computed():
  # 1-D [0, 10] -> 3 points: corners kept, middle interpolated.
  x = jnp.asarray([[0.0, 10.0]]).reshape(1, 1, 2, 1)
  y = np.asarray(resize_bilinear(x, (1, 3), align_corners=True))[0, 0, :, 0]
  np.testing.assert_allclose(y, [0.0, 5.0, 10.0])
  # 3 -> 5 with align_corners: src = dst * 2/4 -> 0, .5, 1, 1.5, 2.
  x = jnp.asarray([1.0, 3.0, 7.0]).reshape(1, 3, 1, 1)
  y = np.asarray(resize_bilinear(x, (5, 1), align_corners=True))[0, :, 0, 0]
  np.testing.assert_allclose(y, [1.0, 2.0, 3.0, 5.0, 7.0])


def test_resize_align_corners_false_hand_computed():
  # 2 -> 4 half-pixel: src = (dst + .5) / 2 - .5 = -.25 (clamped 0), .25, .75, 1.25 (clamped hi).
  x = jnp.asarray([0.0, 8.0]).reshape(1, 1, 2, 1)
  y = np.asarray(resize_bilinear(x, (1, 4), align_corners=False))[0, 0, :, 0]
  np.testing.assert_allclose(y, [0.0, 2.0, 6.0, 8.0])
  # Downscaling 4 -> 2 without antialiasing: src = 0.5, 2.5 -> averages of neighbours.
  x = jnp.asarray([0.0, 2.0, 4.0, 100.0]).reshape(1, 4, 1, 1)
  y = np.asarray(resize_bilinear(x, (2, 1), align_corners=False))[0, :, 0, 0]
  np.testing.assert_allclose(y, [1.0, 52.0])


def test_resize_is_separable_2d_and_identity_when_same_size():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 7, 3)).astype(np.float32)
  y = np.asarray(resize_bilinear(jnp.asarray(x), (9, 4), align_corners=True))
  mh = linear_interpolation_matrix(5, 9, True)
  mw = linear_interpolation_matrix(7, 4, True)
  np.testing.assert_allclose(y, np.einsum("oh,pw,nhwc->nopc", mh, mw, x), rtol=1e-5, atol=1e-6)
  assert resize_bilinear(jnp.asarray(x), (5, 7), True) is not None
  np.testing.assert_array_equal(np.asarray(resize_bilinear(jnp.asarray(x), (5, 7), False)), x)
  # Rows of an interpolation matrix sum to one (a constant image stays constant).
  for ac in (True, False):
    np.testing.assert_allclose(linear_interpolation_matrix(13, 97, ac).sum(1), 1.0, rtol=1e-6)


def test_resize_rejects_wrong_rank():
  with pytest.raises(ValueError, match="rank 4"):
    resize_bilinear(jnp.zeros((3, 4, 5)), (2, 2), True)
