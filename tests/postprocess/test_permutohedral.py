"""The permutohedral-lattice Gaussian filter against the exact all-pairs sum."""
import jax.numpy as jnp
import numpy as np
import pytest

from psp_jax.postprocess.kernels import exact_filter
from psp_jax.postprocess.permutohedral import build_lattice, lattice_filter


def _normalised_error(features, values, capacity=None):
  lattice = build_lattice(jnp.asarray(features), capacity)
  fast = lattice_filter(lattice, jnp.asarray(values)) / lattice_filter(
      lattice, jnp.ones(values.shape[:2] + (1,)))
  exact = exact_filter(jnp.asarray(features), jnp.asarray(values)) / exact_filter(
      jnp.asarray(features), jnp.ones(values.shape[:2] + (1,)))
  return np.abs(np.asarray(fast) - np.asarray(exact)), lattice


@pytest.mark.parametrize("d,extent,bound", [(2, 6.0, 0.004), (5, 4.0, 0.015)])
def test_normalised_filter_close_to_exact_gaussian(d, extent, bound):
  # 600 random points in [0, extent]^d, unit-std kernel: measured mean |error| of the
  # normalised filter 0.0018 (d=2) and 0.0067 (d=5; it grows where points are sparse)
  rng = np.random.default_rng(0)
  features = rng.uniform(0, extent, (1, 600, d)).astype(np.float32)
  values = rng.uniform(0, 1, (1, 600, 3)).astype(np.float32)
  err, lattice = _normalised_error(features, values, capacity=600 * (d + 1))
  assert err.mean() < bound, err.mean()
  assert not bool(lattice.overflow())
  np.testing.assert_allclose(np.asarray(lattice.weight).sum(-1), 1.0, atol=1e-5)
  assert np.all(np.asarray(lattice.weight) >= -1e-6)


def test_identical_features_filter_to_the_mean():
  features = np.zeros((1, 300, 5), np.float32)
  values = np.random.default_rng(1).uniform(size=(1, 300, 4)).astype(np.float32)
  err, lattice = _normalised_error(features, values, capacity=300 * 6)
  assert int(lattice.count[0]) == 6  # one simplex
  assert err.max() < 1e-5


def test_batch_equals_single_images_and_overflow_is_reported():
  rng = np.random.default_rng(2)
  features = rng.uniform(0, 4, (2, 300, 5)).astype(np.float32)
  values = rng.uniform(size=(2, 300, 4)).astype(np.float32)
  full = 300 * 6
  both = lattice_filter(build_lattice(jnp.asarray(features), full), jnp.asarray(values))
  for i in range(2):
    one = lattice_filter(build_lattice(jnp.asarray(features[i:i + 1]), full),
                         jnp.asarray(values[i:i + 1]))
    np.testing.assert_allclose(np.asarray(both[i]), np.asarray(one[0]), rtol=1e-5, atol=1e-6)
  small = build_lattice(jnp.asarray(features), 10)
  assert bool(small.overflow()) and int(small.count.sum()) > 20
  assert not bool(build_lattice(jnp.asarray(features), full).overflow())


def test_bad_shapes():
  with pytest.raises(ValueError, match=r"features must be \(B, N, d\)"):
    build_lattice(jnp.zeros((10, 5)))
  with pytest.raises(ValueError, match="capacity must be >= 1"):
    build_lattice(jnp.zeros((1, 10, 5)), 0)
