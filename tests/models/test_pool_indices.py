"""Max pooling with indices and unpooling (psp_jax.models.pool_indices): against PyTorch's
max_pool2d(return_indices=True, ceil_mode=True) / max_unpool2d, hand-computed ties and odd
sizes, the pool -> unpool round trip, gradients and the bad-input errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from psp_jax.models.pool_indices import (max_pool_with_argmax, max_unpool, pooled_size,
                                         unpool_scatter)

SHAPES = [(2, 8, 10, 3), (1, 7, 9, 2), (3, 5, 4, 1), (1, 1, 3, 2), (2, 45, 60, 2)]


def _inputs(shape, seed, ties):
  rng = np.random.default_rng(seed)
  if ties:  # few distinct values: most windows hold equal maxima
    return rng.integers(0, 3, size=shape).astype(np.float32)
  return rng.normal(size=shape).astype(np.float32)


def _torch_reference(x):
  """PyTorch's (pooled, indices, unpooled) of NHWC x (NCHW inside torch)."""
  torch = pytest.importorskip("torch", reason="the PyTorch reference needs torch (the 'convert' extra)")
  fn = torch.nn.functional
  t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  y, idx = fn.max_pool2d(t, 2, 2, ceil_mode=True, return_indices=True)
  up = fn.max_unpool2d(y, idx, 2, 2, output_size=x.shape[1:3])
  return tuple(a.numpy().transpose(0, 2, 3, 1) for a in (y, idx, up))


@jax.jit
def _pool_unpool(x):
  y, idx, in_hw = max_pool_with_argmax(x)
  return y, idx, max_unpool(y, idx, in_hw), unpool_scatter(y, idx, in_hw)


@pytest.mark.parametrize("shape", SHAPES)
def test_pool_and_unpool_match_torch(shape):
  for ties in (False, True):
    x = _inputs(shape, sum(shape), ties)
    y_ref, idx_ref, up_ref = _torch_reference(x)
    y, idx, up, up_scatter = _pool_unpool(jnp.asarray(x))
    assert idx.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(y), y_ref)
    np.testing.assert_array_equal(np.asarray(idx), idx_ref)
    np.testing.assert_array_equal(np.asarray(up), up_ref)
    np.testing.assert_array_equal(np.asarray(up_scatter), up_ref)


def test_ties_go_to_first_in_row_major_order_and_odd_edges():
  x = np.array([[1, 1, 0],
                [0, 1, 2],
                [3, 3, 4]], np.float32).reshape(1, 3, 3, 1)
  y, idx, in_hw = max_pool_with_argmax(jnp.asarray(x))
  # window (0,0) = {1, 1, 0, 1}: first max at (0,0); window (0,1) sees only column 2: {0, 2}.
  # window (1,0) sees only row 2: {3, 3} -> (2,0); window (1,1) is the single pixel (2,2).
  np.testing.assert_array_equal(np.asarray(y)[0, :, :, 0], [[1, 2], [3, 4]])
  np.testing.assert_array_equal(np.asarray(idx)[0, :, :, 0], [[0, 5], [6, 8]])
  assert in_hw == (3, 3)


def test_segnet_shape_chain_with_ceil_rounding():
  sizes = [(360, 480)]
  for _ in range(5):
    sizes.append((pooled_size(sizes[-1][0]), pooled_size(sizes[-1][1])))
  assert sizes == [(360, 480), (180, 240), (90, 120), (45, 60), (23, 30), (12, 15)]
  x = jnp.zeros((1, 45, 60, 1))
  y, idx = jax.eval_shape(lambda v: max_pool_with_argmax(v)[:2], x)
  assert y.shape == idx.shape == (1, 23, 30, 1)
  assert max_pool_with_argmax(x)[2] == (45, 60)


@pytest.mark.parametrize("shape", [(2, 7, 9, 3), (1, 6, 4, 2)])
def test_round_trip_keeps_maxima_and_zeros_elsewhere(shape):
  x = jnp.asarray(np.abs(_inputs(shape, 3, ties=False)) + 0.1)  # positive: maxima beat the zeros
  y, idx, _ = max_pool_with_argmax(x)

  @jax.jit
  def round_trip(v):  # the input size is static: it comes from the traced shape
    return max_unpool(*max_pool_with_argmax(v))

  up = round_trip(x)
  assert up.shape == x.shape
  kept = np.asarray(up) != 0
  np.testing.assert_array_equal(np.asarray(up)[kept], np.asarray(x)[kept])
  assert kept.reshape(shape[0], -1, shape[3]).sum(1).tolist() == [[y.shape[1] * y.shape[2]] * shape[3]] * shape[0]
  y2, idx2, _ = max_pool_with_argmax(up)  # pooling the unpooled map gives the maxima back
  np.testing.assert_array_equal(np.asarray(y2), np.asarray(y))
  np.testing.assert_array_equal(np.asarray(idx2), np.asarray(idx))


def test_gradients():
  x = jnp.asarray(_inputs((2, 5, 7, 2), 11, ties=False))
  check_grads(jax.jit(lambda v: max_pool_with_argmax(v)[0]), (x,), order=1, modes=("rev",), eps=1e-3)
  y, idx, in_hw = max_pool_with_argmax(x)
  check_grads(jax.jit(lambda v: max_unpool(v, idx, in_hw)), (y,), order=1, modes=("fwd", "rev"))
  # the unpool's gradient is the gather of the output gradient at the indices
  g = jnp.asarray(np.random.default_rng(0).normal(size=x.shape).astype(np.float32))
  grad = jax.jit(jax.grad(lambda v: jnp.sum(max_unpool(v, idx, in_hw) * g)))(y)
  gathered = jnp.take_along_axis(g.reshape(2, -1, 2), idx.reshape(2, -1, 2), axis=1).reshape(y.shape)
  np.testing.assert_allclose(np.asarray(grad), np.asarray(gathered))
  # ties: the pool's gradient goes to the chosen (first) maximum only
  tied = jnp.ones((1, 2, 2, 1))
  gx = jax.jit(jax.grad(lambda v: jnp.sum(max_pool_with_argmax(v)[0])))(tied)
  np.testing.assert_array_equal(np.asarray(gx)[0, :, :, 0], [[1, 0], [0, 0]])


def test_bad_inputs_name_the_problem():
  y, idx, in_hw = max_pool_with_argmax(jnp.zeros((1, 6, 8, 2)))
  with pytest.raises(ValueError, match="does not fit the pooled size 3x4"):
    max_unpool(y, idx, (8, 8))
  with pytest.raises(ValueError, match=r"indices must lie in \[0, 48\)"):
    max_unpool(y, idx + 48, in_hw)
  with pytest.raises(ValueError, match=r"indices must lie in \[0, 48\)"):
    unpool_scatter(y, idx - 1, in_hw)
  with pytest.raises(ValueError, match="indices shape"):
    max_unpool(y, idx[:, :2], in_hw)
  with pytest.raises(ValueError, match="keep the batch and channels"):
    max_unpool(y, idx, (2, 6, 8, 2))
  with pytest.raises(ValueError, match="rank 4"):
    max_pool_with_argmax(jnp.zeros((6, 8, 2)))
  with pytest.raises(ValueError, match="floating"):
    max_pool_with_argmax(jnp.zeros((1, 6, 8, 2), jnp.int32))
