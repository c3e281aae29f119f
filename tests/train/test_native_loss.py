"""A family's own training loss (ModelFamily.native_loss, train.native_loss=True): the
data-parallel step minimises DeepLab v1's shrunk-label loss and v2's multi-scale sum, equal
to the loss computed on the whole batch at once."""
import jax
import ml_collections
import numpy as np
import pytest

from psp_jax.models import build
from psp_jax.parallel import make_mesh
from psp_jax.tasks.segmentation import native_objective
from psp_jax.train import deeplab_losses as dl
from psp_jax.train.losses import cross_entropy
from psp_jax.train.optim import make_optimizer
from psp_jax.train.state import create_train_state
from psp_jax.train.step import make_train_step

SIZE = 33  # 8k + 1: v1's stride-8 logits meet label_shrink(label, 8)
KEY = jax.random.key(0, impl="rbg")


def _config(native: bool):
  return ml_collections.ConfigDict(dict(train=dict(native_loss=native)))


@pytest.mark.parametrize("name, objective", [("deeplabv1", dl.v1_objective), ("deeplabv2", dl.msc_objective)])
def test_the_step_minimises_the_family_loss(name, objective):
  family = build.get_family(name)
  model = build.build_model(dict(family.tiny, name=name, dropout=0.0))
  loss = native_objective(_config(True), model)
  assert loss is objective
  variables = model.init(KEY, np.zeros((1, SIZE, SIZE, 3), np.float32))
  rng = np.random.default_rng(0)
  images = rng.normal(size=(4, SIZE, SIZE, 3)).astype(np.float32)
  labels = rng.integers(0, 3, size=(4, SIZE, SIZE)).astype(np.int32)
  labels[0, :10] = 255  # ignored pixels count nowhere, in every term
  optim = ml_collections.ConfigDict(dict(name="sgd", base_lr=0.0, momentum=0.9, weight_decay=0.0,
                                         schedule="constant", lr_multipliers={}))
  opt = make_optimizer(optim, variables["params"], 10)
  mesh = make_mesh(2)
  state = create_train_state(dict(variables, batch_stats={}), opt.tx, jax.random.key(1), mesh)
  step = make_train_step(model, opt, mesh, num_classes=3, native_loss=loss, donate=False)
  _, metrics = step(state, images, labels)
  outputs = model.apply(variables, images, train=True, native=True)
  expected = objective(outputs, labels)
  np.testing.assert_allclose(float(metrics["loss"]), float(dl.total(expected.terms)), rtol=1e-5)
  assert float(metrics["aux_loss"]) == 0.0
  assert int(metrics["labelled_pixels"]) == int(((expected.labels != 255)).sum())
  # not the plain objective: the CE of the upsampled logits differs
  upsampled = model.apply(variables, images, train=True)
  plain = float(cross_entropy(upsampled, labels))
  assert abs(plain - float(metrics["loss"])) > 1e-4


def test_native_loss_off_or_missing():
  pspnet = build.build_model(dict(build.get_family("pspnet").tiny, name="pspnet"))
  assert native_objective(_config(False), pspnet) is None
  with pytest.raises(ValueError, match="train.native_loss=True but the 'pspnet' family has no native loss"):
    native_objective(_config(True), pspnet)
  with pytest.raises(ValueError, match="class_weights apply to the cross-entropy"):
    v1 = build.build_model(dict(build.get_family("deeplabv1").tiny, name="deeplabv1"))
    make_train_step(v1, None, make_mesh(1), num_classes=3, class_weights=(1.0, 1.0, 1.0),
                    native_loss=dl.v1_objective)
