"""Adaptive pooling and bilinear resize against hand-computed values and, where PyTorch is
installed, against F.interpolate (PyTorch semantics)."""
import jax.numpy as jnp
import numpy as np
import pytest

from psp_jax.models.ops import adaptive_pool, adaptive_pool_cells, resize_bilinear


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


def test_resize_2d_hand_computed():
  # f(y, x) = 20 y + 10 x is linear, so bilinear interpolation gives 20 src_y + 10 src_x exactly.
  x = jnp.asarray([[0.0, 10.0], [20.0, 30.0]]).reshape(1, 2, 2, 1)
  y = np.asarray(resize_bilinear(x, (3, 3), align_corners=True))[0, :, :, 0]
  np.testing.assert_allclose(y, [[0, 5, 10], [10, 15, 20], [20, 25, 30]])
  # Half-pixel 2 -> 4 on both axes: src = 0 (clamped), .25, .75, 1 (clamped).
  y = np.asarray(resize_bilinear(x, (4, 4), align_corners=False))[0, :, :, 0]
  np.testing.assert_allclose(y, [[0.0, 2.5, 7.5, 10.0], [5.0, 7.5, 12.5, 15.0],
                                 [15.0, 17.5, 22.5, 25.0], [20.0, 22.5, 27.5, 30.0]])
  # 2 x 2 -> 1 x 3 with align_corners: the one row sits on row 0.
  y = np.asarray(resize_bilinear(x, (1, 3), align_corners=True))[0, :, :, 0]
  np.testing.assert_allclose(y, [[0.0, 5.0, 10.0]])


def test_same_size_is_the_identity_and_a_constant_stays_constant():
  x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype(np.float32)
  for ac in (True, False):
    np.testing.assert_array_equal(np.asarray(resize_bilinear(jnp.asarray(x), (5, 7), ac)), x)
    const = resize_bilinear(jnp.full((1, 13, 6, 2), 3.5, jnp.float32), (97, 4), ac)
    np.testing.assert_allclose(np.asarray(const), 3.5, rtol=1e-6)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("size", [(9, 4), (3, 11), (1, 3)])
def test_resize_matches_torch_interpolate(align_corners, size):
  torch = pytest.importorskip("torch", reason="PyTorch (the optional convert extra) is the "
                                              "reference for F.interpolate")
  x = np.random.default_rng(1).normal(size=(2, 5, 7, 3)).astype(np.float32)
  ref = torch.nn.functional.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2)), size=size,
                                        mode="bilinear", align_corners=align_corners)
  y = np.asarray(resize_bilinear(jnp.asarray(x), size, align_corners))
  np.testing.assert_allclose(y, ref.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)


def test_resize_rejects_wrong_rank():
  with pytest.raises(ValueError, match="rank 4"):
    resize_bilinear(jnp.zeros((3, 4, 5)), (2, 2), True)
