"""DeepLab v1 (shrunk label) and v2 (multi-scale) losses on the models' native outputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psp_jax.models.deeplab import DeepLabV1
from psp_jax.train import deeplab_losses as dl


def _ce(logits, labels):
  """Independent mean CE over labels != 255 with NumPy."""
  logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
  z = logits - logits.max(-1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
  valid = labels != 255
  picked = np.take_along_axis(logp, np.where(valid, labels, 0)[..., None], -1)[..., 0]
  return -picked[valid].mean()


def test_label_shrink_takes_every_8th_label():
  labels = jnp.arange(321 * 321).reshape(1, 321, 321)
  shrunk = dl.label_shrink(labels, 8)
  assert shrunk.shape == (1, 41, 41)
  assert int(shrunk[0, 1, 2]) == 8 * 321 + 16 and int(shrunk[0, 40, 40]) == 320 * 321 + 320


def test_nearest_resize_of_labels():
  labels = jnp.arange(8)[None, None, :] * jnp.ones((1, 4, 1), jnp.int32)
  np.testing.assert_array_equal(np.asarray(dl.resize_labels_nearest(labels, (2, 4)))[0, 0], [1, 3, 5, 7])
  np.testing.assert_array_equal(np.asarray(dl.resize_labels_nearest(labels, (4, 3)))[0, 0], [1, 4, 6])


def test_v1_loss_on_41x41_logits_of_a_321_crop():
  """The native v1 logits of a 321 crop are 41x41 and meet the shrunk label."""
  model = DeepLabV1(3, width=4, fc_features=4)
  x = jax.ShapeDtypeStruct((1, 321, 321, 3), jnp.float32)
  out, _ = jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x, native=True), x)
  assert out["logits"].shape == (1, 41, 41, 3)
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.standard_normal((1, 41, 41, 3)), jnp.float32)
  labels = rng.integers(0, 3, (1, 321, 321))
  labels[0, ::16] = 255
  terms = dl.v1_loss_terms({"logits": logits}, jnp.asarray(labels))
  assert float(dl.total(terms)) == pytest.approx(_ce(logits, labels[:, ::8, ::8]), rel=1e-5)
  assert float(terms["logits"][1]) == np.sum(labels[:, ::8, ::8] != 255)


def test_v1_loss_refuses_logits_that_miss_the_shrunk_label():
  with pytest.raises(ValueError, match=r"logits 9x9 do not match label_shrink\(label, 8\) of a 64x64 "
                                       r"label, 8x8; use crops of size 8k \+ 1"):
    dl.v1_loss_terms({"logits": jnp.zeros((1, 9, 9, 3))}, jnp.zeros((1, 64, 64), jnp.int32))


def test_msc_loss_sums_every_output_against_its_resized_label():
  rng = np.random.default_rng(1)
  outputs = {"scale_1": rng.standard_normal((2, 41, 41, 4)), "scale_0.75": rng.standard_normal((2, 31, 31, 4)),
             "scale_0.5": rng.standard_normal((2, 21, 21, 4)), "max": rng.standard_normal((2, 41, 41, 4))}
  outputs = {k: jnp.asarray(v, jnp.float32) for k, v in outputs.items()}
  labels = rng.integers(0, 4, (2, 321, 321))
  terms = dl.msc_loss_terms(outputs, jnp.asarray(labels))
  assert set(terms) == set(outputs)
  expected = 0.0
  for logits in outputs.values():
    h = logits.shape[1]
    idx = np.minimum(((np.arange(h) + 0.5) * 321 / h).astype(int), 320)
    expected += _ce(logits, labels[:, idx][:, :, idx])
  assert float(dl.total(terms)) == pytest.approx(expected, rel=1e-5)
