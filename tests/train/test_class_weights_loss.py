"""Class-weighted cross-entropy (Caffe's SoftmaxWithLoss normalisation) in the loss and the
data-parallel train step: hand-computed values, the difference from PyTorch's weighted mean,
None unchanged, and the bad-weight errors."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from psp_jax.models.resnet import BNConfig
from psp_jax.parallel import make_mesh
from psp_jax.train.losses import check_class_weights, cross_entropy, cross_entropy_sum
from psp_jax.train.optim import make_optimizer
from psp_jax.train.state import create_train_state
from psp_jax.train.step import make_train_step

WEIGHTS = (0.5, 2.0, 0.0, 4.0)


def _data(seed=0):
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(2, 5, 6, 4)).astype(np.float32)
  labels = rng.integers(0, 4, size=(2, 5, 6)).astype(np.int32)
  labels[0, :2] = 255
  return logits, labels


def _nll(logits, labels):
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  mask = labels != 255
  return -np.take_along_axis(logp, np.where(mask, labels, 0)[..., None], -1)[..., 0], mask


def test_weighted_loss_is_caffe_normalised_by_the_pixel_count():
  logits, labels = _data()
  nll, mask = _nll(logits, labels)
  w = np.asarray(WEIGHTS)[np.where(mask, labels, 0)]
  expected = (w * nll)[mask].sum() / mask.sum()
  got = cross_entropy(jnp.asarray(logits), jnp.asarray(labels), class_weights=WEIGHTS)
  np.testing.assert_allclose(float(got), expected, rtol=1e-5)
  total, count = cross_entropy_sum(jnp.asarray(logits), jnp.asarray(labels), class_weights=list(WEIGHTS))
  assert float(count) == mask.sum()  # the count is not the sum of the weights
  np.testing.assert_allclose(float(total), (w * nll)[mask].sum(), rtol=1e-5)
  # PyTorch's weighted mean divides by sum(w[y]) instead: a different number
  torch = pytest.importorskip("torch", reason="the PyTorch weighted-mean comparison needs torch")
  ref = torch.nn.functional.cross_entropy(torch.from_numpy(logits.transpose(0, 3, 1, 2).copy()),
                                          torch.from_numpy(labels.astype(np.int64)),
                                          weight=torch.tensor(WEIGHTS), ignore_index=255)
  np.testing.assert_allclose(float(ref) * w[mask].sum() / mask.sum(), float(got), rtol=1e-5)
  assert abs(float(ref) - float(got)) > 1e-3


def test_no_weights_is_unchanged_and_unit_weights_agree():
  logits, labels = jnp.asarray(_data(1)[0]), jnp.asarray(_data(1)[1])
  plain = cross_entropy(logits, labels)
  assert float(cross_entropy(logits, labels, class_weights=None)) == float(plain)
  assert float(cross_entropy(logits, labels, class_weights=(1.0,) * 4)) == float(plain)


def test_bad_weights_name_the_key_and_what_was_expected():
  with pytest.raises(ValueError, match="train.class_weights has 3 values but the model has 4 classes"):
    check_class_weights((1.0, 2.0, 3.0), 4)
  with pytest.raises(ValueError, match=r"finite and >= 0.*\(1, -1.0\)"):
    check_class_weights((1.0, -1.0, 1.0, 1.0), 4)
  with pytest.raises(ValueError, match="finite"):
    check_class_weights((1.0, float("nan"), 1.0, 1.0), 4)
  with pytest.raises(ValueError, match="list of 4 numbers"):
    check_class_weights("heavy", 4)
  with pytest.raises(ValueError, match="has 3 values"):
    cross_entropy(jnp.zeros((1, 2, 2, 4)), jnp.zeros((1, 2, 2), jnp.int32), class_weights=(1, 2, 3))


class _Toy(nn.Module):
  """A 1x1-conv segmentation model with the step's calling convention."""
  num_classes: int = 4
  bn: BNConfig = BNConfig()

  @nn.compact
  def __call__(self, images, train=False, return_aux=False):
    logits = nn.Conv(self.num_classes, (1, 1))(images)
    return (logits, None) if return_aux else logits


def test_train_step_uses_the_weights_on_two_devices():
  model = _Toy()
  rng = np.random.default_rng(2)
  images = rng.normal(size=(4, 6, 6, 3)).astype(np.float32)
  labels = rng.integers(0, 4, size=(4, 6, 6)).astype(np.int32)
  labels[1] = 255
  variables = {"params": model.init(jax.random.key(0), images)["params"], "batch_stats": {}}
  cfg = ml_collections.ConfigDict(dict(name="sgd", base_lr=0.1, momentum=0.0, weight_decay=0.0,
                                       schedule="constant", lr_multipliers={}))
  opt = make_optimizer(cfg, variables["params"], 10)
  mesh = make_mesh(2)
  logits = model.apply(variables, images)
  for weights in (None, WEIGHTS):
    state = create_train_state(variables, opt.tx, jax.random.key(1), mesh)
    step = make_train_step(model, opt, mesh, num_classes=4, donate=False, class_weights=weights)
    _, metrics = step(state, images, labels)
    expected = cross_entropy(logits, jnp.asarray(labels), class_weights=weights)
    assert float(metrics["main_loss"]) == pytest.approx(float(expected), rel=1e-5)
  with pytest.raises(ValueError, match="has 2 values but the model has 4 classes"):
    make_train_step(model, opt, mesh, num_classes=4, class_weights=(1.0, 2.0))
