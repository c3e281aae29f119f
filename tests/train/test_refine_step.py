"""The refinement module's data-parallel train step: global-batch semantics and learning."""
import functools

import numpy as np
import pytest

import jax

from psp_jax import checkpoint as ckpt_lib
from psp_jax.models.refinement import RefinementModule
from psp_jax.parallel import make_mesh
from psp_jax.train.optim import make_optimizer
from psp_jax.train.refine_step import make_refine_train_step
from psp_jax.train.state import create_train_state

import ml_collections

MODEL = RefinementModule(depth=18, width=8)
OPTIM = ml_collections.ConfigDict(dict(name="adam", base_lr=2.25e-4, weight_decay=1e-4,
                                       schedule="step", boundaries=(5,), decay_factor=0.1,
                                       lr_multipliers={}, grad_clip_norm=0.0))


def _batch(n=8, size=32, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.normal(size=(n, size, size, 3)).astype(np.float32)
  gt = np.zeros((n, size, size), np.float32)
  for i in range(n):
    y, x = rng.integers(4, 16, 2)
    gt[i, y:y + 12, x:x + 12] = 1
    images[i, y:y + 12, x:x + 12] += 1.5  # the object is visible in the image
  seg = gt.copy()
  seg[:, ::5, :] = 1 - seg[:, ::5, :]  # a perturbed input
  return images, seg, gt


# rbg keys: XLA compiles threefry's random init of a many-layer module slowly on CPU (3x here)
KEY = jax.random.key(0, impl="rbg")


@functools.lru_cache(maxsize=None)
def _initial(model=MODEL):
  return jax.device_get(ckpt_lib.init_variables(model, KEY))


@functools.lru_cache(maxsize=None)
def _compiled(num_devices: int, model=MODEL):
  """(mesh, optimizer, step) per device count and model, compiled once for the whole module:
  every test of one shape reuses the same program."""
  mesh = make_mesh(num_devices)
  opt = make_optimizer(OPTIM, _initial(model)["params"], 10)
  return mesh, opt, make_refine_train_step(model, opt, mesh, donate=False)


def _state(num_devices, model=MODEL):
  mesh, opt, _ = _compiled(num_devices, model)
  return create_train_state(_initial(model), opt.tx, jax.random.key(1), mesh)


def _run(num_devices, steps=1, seed=0, model=MODEL, batch=None):
  step = _compiled(num_devices, model)[2]
  state = _state(num_devices, model)
  images, seg, gt = batch or _batch(seed=seed)
  history = []
  for _ in range(steps):
    state, metrics = step(state, images, seg, gt)
    history.append(jax.device_get(metrics))
  return state, history


ONE_PASS = RefinementModule(depth=18, width=8, passes=1)


def test_eight_devices_equal_one_device_on_the_global_batch():
  """On the one-pass module (a third of the compile; the reductions are the same code)."""
  s8, m8 = _run(8, model=ONE_PASS)
  s1, m1 = _run(1, model=ONE_PASS)
  np.testing.assert_allclose(m8[0]["loss"], m1[0]["loss"], rtol=1e-5)
  for k in ["ce/s8c", "ce/s4c", "l1l2/s4c", "l1l2/s1", "grad", "iou", "input_iou"]:
    np.testing.assert_allclose(m8[0][k], m1[0][k], rtol=1e-4, atol=1e-6, err_msg=k)
  # float32 reductions in another order (1.2e-4 measured); a wrong reduction is off by x8
  np.testing.assert_allclose(m8[0]["grad_norm"], m1[0]["grad_norm"], rtol=3e-4)
  # Adam's first update is ~lr * sign(grad): gradients that are ~0 may flip sign between the
  # two reductions, so parameters agree to within one update (the gradient norm above is tight)
  moved = 0
  for a, b, a0 in zip(jax.tree.leaves(jax.device_get(s8.params)), jax.tree.leaves(jax.device_get(s1.params)),
                      jax.tree.leaves(_initial(ONE_PASS)["params"])):
    np.testing.assert_allclose(a, b, atol=2.5 * OPTIM.base_lr)
    moved += int(np.sum(np.abs(a - a0) > 0.5 * OPTIM.base_lr))
  assert moved > 1000
  for a, b in zip(jax.tree.leaves(jax.device_get(s8.batch_stats)),
                  jax.tree.leaves(jax.device_get(s1.batch_stats))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  assert m8[0]["invalid_label_pixels"] == 0
  assert 0.3 < m8[0]["input_iou"] < 1.0


def test_loss_decreases_and_schedule_steps():
  _, hist = _run(1, steps=8)
  losses = [h["loss"] for h in hist]
  assert losses[-1] < losses[0] * 0.9, losses
  assert hist[0]["lr/base"] == pytest.approx(2.25e-4)
  assert hist[-1]["lr/base"] == pytest.approx(2.25e-5)


def test_a_one_pass_cascade_trains_on_the_pass3_terms_only():
  _, hist = _run(1, steps=3, model=ONE_PASS)
  terms = sorted(k for k in hist[0] if k.startswith(("ce/", "l1l2/")))
  assert terms == ["ce/s4c", "ce/s8c", "l1l2/s1", "l1l2/s4c"]
  assert hist[-1]["loss"] < hist[0]["loss"]


def test_invalid_gt_values_are_counted():
  images, seg, gt = _batch()
  gt[0, 0, :5] = 255
  _, hist = _run(1, batch=(images, seg, gt))
  assert int(hist[0]["invalid_label_pixels"]) == 5
