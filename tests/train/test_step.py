"""The data-parallel step: SyncBN equivalence with one device, BN modes, metrics, eval step."""
import dataclasses

import jax
import ml_collections
import numpy as np
import pytest

from psp_jax.checkpoint import init_variables
from psp_jax.models import PSPNet
from psp_jax.models.resnet import BNConfig
from psp_jax.parallel import make_mesh
from psp_jax.train.optim import batchnorm_paths, make_optimizer
from psp_jax.train.state import create_train_state
from psp_jax.train.step import make_eval_step, make_train_step

NUM_CLASSES = 5
MODEL = PSPNet(NUM_CLASSES, depth=18, width=8, head_features=16, aux_features=8, bins=(1, 2),
               dropout=0.0)


@pytest.fixture(scope="module")
def setup():
  variables = init_variables(MODEL, jax.random.key(0))
  # lr 1, no momentum, no decay: the parameter change of one step IS minus the gradient.
  cfg = ml_collections.ConfigDict(dict(name="sgd", base_lr=1.0, momentum=0.0, weight_decay=0.0,
                                       schedule="constant", lr_multipliers={}))
  opt = make_optimizer(cfg, variables["params"], 10)
  rng = np.random.default_rng(0)
  images = rng.normal(size=(16, 33, 33, 3)).astype(np.float32)
  labels = rng.integers(0, NUM_CLASSES, size=(16, 33, 33)).astype(np.int32)
  labels[3, :10] = 255
  labels[12] = 255  # one image entirely ignored: the global mean must not be per-device
  return variables, opt, images, labels


def _run(setup, devices, **kw):
  variables, opt, images, labels = setup
  mesh = make_mesh(devices)
  state = create_train_state(variables, opt.tx, jax.random.key(1), mesh)
  step = make_train_step(MODEL, opt, mesh, num_classes=NUM_CLASSES, donate=False, **kw)
  new, metrics = step(state, images, labels)
  grads = jax.tree_util.tree_map(lambda a, b: np.asarray(b) - np.asarray(a), new.params,
                                 variables["params"])
  return new, {k: float(v) for k, v in metrics.items()}, grads


def _max_rel_err(a, b):
  errs = jax.tree_util.tree_map(
      lambda x, y: np.max(np.abs(np.asarray(x) - np.asarray(y))) / (np.max(np.abs(np.asarray(y))) + 1e-12), a, b)
  return max(jax.tree_util.tree_leaves(errs))


def test_sync_bn_on_8_devices_equals_one_device_with_the_whole_batch(setup):
  new8, m8, g8 = _run(setup, 8)
  new1, m1, g1 = _run(setup, 1)
  assert m8["loss"] == pytest.approx(m1["loss"], rel=1e-4)
  assert m8["main_loss"] == pytest.approx(m1["main_loss"], rel=1e-4)
  assert m8["aux_loss"] == pytest.approx(m1["aux_loss"], rel=1e-4)
  assert m8["loss"] == pytest.approx(m8["main_loss"] + 0.4 * m8["aux_loss"], rel=1e-6)
  assert _max_rel_err(g8, g1) < 1e-4          # gradients (not 8x: the pmean trap)
  assert _max_rel_err(new8.batch_stats, new1.batch_stats) < 1e-4
  assert m8["grad_norm"] == pytest.approx(m1["grad_norm"], rel=1e-4)
  assert m8["labelled_pixels"] == m1["labelled_pixels"] == (setup[3] != 255).sum()


def test_without_sync_the_statistics_are_per_device(setup):
  _, m8, g8 = _run(setup, 8, sync_bn=False)
  _, m1, g1 = _run(setup, 1)
  assert abs(m8["loss"] - m1["loss"]) > 1e-3
  assert _max_rel_err(g8, g1) > 1e-2


def test_bn_groups_equal_per_device_bn_on_fewer_larger_devices(setup):
  """Groups of 2 devices x 2 images normalise like 4 devices x 4 images without sync."""
  new_g, m_g, g_g = _run(setup, 8, sync_bn=True, bn_group_size=2)
  new_4, m_4, g_4 = _run(setup, 4, sync_bn=False)
  assert m_g["loss"] == pytest.approx(m_4["loss"], rel=1e-4)
  assert _max_rel_err(g_g, g_4) < 1e-4
  assert _max_rel_err(new_g.batch_stats, new_4.batch_stats) < 1e-4


def test_frozen_bn_keeps_statistics_and_affine_parameters(setup):
  variables, _, images, labels = setup
  frozen_model = MODEL.clone(bn=dataclasses.replace(MODEL.bn, frozen=True))
  bn_paths = batchnorm_paths(variables["batch_stats"])
  assert ("backbone", "layer1_0", "bn1") in bn_paths and ("head", "bn") in bn_paths
  cfg = ml_collections.ConfigDict(dict(name="sgd", base_lr=0.1, momentum=0.9, weight_decay=1e-2,
                                       schedule="constant", lr_multipliers={"head": 10.0}))
  opt = make_optimizer(cfg, variables["params"], 10, frozen_paths=bn_paths)
  mesh = make_mesh(8)
  state = create_train_state(variables, opt.tx, jax.random.key(1), mesh)
  step = make_train_step(frozen_model, opt, mesh, num_classes=NUM_CLASSES, donate=False)
  new, _ = step(state, images, labels)
  new, _ = step(new, images, labels)
  assert _max_rel_err(new.batch_stats, variables["batch_stats"]) == 0
  bn_before = variables["params"]["backbone"]["layer1_0"]["bn1"]
  bn_after = new.params["backbone"]["layer1_0"]["bn1"]
  assert _max_rel_err(bn_after, bn_before) == 0
  conv_before = variables["params"]["backbone"]["layer1_0"]["conv1"]["kernel"]
  assert not np.allclose(np.asarray(new.params["backbone"]["layer1_0"]["conv1"]["kernel"]),
                         np.asarray(conv_before))


def test_invalid_labels_are_reported_and_step_counts(setup):
  variables, opt, images, labels = setup
  bad = labels.copy()
  bad[0, 0, :7] = 9
  state = create_train_state(variables, opt.tx, jax.random.key(1))
  step = make_train_step(MODEL, opt, make_mesh(8), num_classes=NUM_CLASSES, donate=False)
  new, metrics = step(state, images, bad)
  assert int(metrics["invalid_label_pixels"]) == 7
  assert int(new.step) == 1
  assert np.isfinite(float(metrics["loss"]))
  assert float(metrics["lr/base"]) == 1.0


def test_eval_step_confusion_matrix_sums_over_devices(setup):
  variables, _, images, labels = setup
  cm = np.asarray(make_eval_step(MODEL, make_mesh(8), num_classes=NUM_CLASSES)(
      variables, images, labels))
  logits = jax.jit(MODEL.apply)(variables, images)
  preds = np.asarray(logits).argmax(-1)
  valid = labels != 255
  expected = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
  np.add.at(expected, (labels[valid], preds[valid]), 1)
  np.testing.assert_array_equal(cm, expected)
