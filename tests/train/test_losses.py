"""Cross-entropy over labelled pixels: ignore label, all-ignored batches, invalid labels."""
import jax
import jax.numpy as jnp
import numpy as np

from psp_jax.train.losses import cross_entropy, cross_entropy_sum, invalid_label_count


def _data(seed=0):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
  labels = rng.integers(0, 4, size=(2, 5, 6)).astype(np.int32)
  labels[0, :2] = 255
  labels[1, 3, 4] = 255
  return jnp.asarray(logits), jnp.asarray(labels)


def test_matches_hand_computed_mean_over_labelled_pixels():
  logits, labels = _data()
  lg, lb = np.asarray(logits), np.asarray(labels)
  logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
  mask = lb != 255
  expected = -np.take_along_axis(logp, np.where(mask, lb, 0)[..., None], -1)[..., 0][mask].mean()
  np.testing.assert_allclose(float(cross_entropy(logits, labels)), expected, rtol=1e-5)
  total, count = cross_entropy_sum(logits, labels)
  assert float(count) == mask.sum()


def test_ignored_pixels_change_neither_loss_nor_gradients():
  logits, labels = _data()
  ignored = np.asarray(labels) == 255
  noise = np.random.default_rng(1).normal(scale=50.0, size=logits.shape).astype(np.float32)
  changed = jnp.where(ignored[..., None], logits + noise, logits)
  loss_grad = jax.value_and_grad(cross_entropy)
  l1, g1 = loss_grad(logits, labels)
  l2, g2 = loss_grad(changed, labels)
  assert float(l1) == float(l2)
  np.testing.assert_array_equal(np.asarray(g1), np.asarray(g2))
  assert np.all(np.asarray(g1)[ignored] == 0)


def test_all_ignored_batch_gives_zero_not_nan():
  logits, _ = _data()
  labels = jnp.full(logits.shape[:3], 255, jnp.int32)
  loss, grad = jax.value_and_grad(cross_entropy)(logits, labels)
  assert float(loss) == 0.0
  assert np.all(np.asarray(grad) == 0)


def test_labels_outside_the_classes_are_counted_not_trained():
  logits, labels = _data()
  bad = np.asarray(labels).copy()
  bad[1, 0, :3] = 7   # not a class, not the ignore label
  bad[1, 1, 0] = -1
  assert int(invalid_label_count(jnp.asarray(bad), 4)) == 4
  assert int(invalid_label_count(labels, 4)) == 0
  _, count_ok = cross_entropy_sum(logits, labels)
  _, count_bad = cross_entropy_sum(logits, jnp.asarray(bad))
  assert float(count_ok - count_bad) == 4
  assert np.isfinite(float(cross_entropy(logits, jnp.asarray(bad))))
