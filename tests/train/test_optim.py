"""Poly schedule values, per-module learning-rate multipliers, weight decay, frozen groups."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from psp_jax.train.optim import group_labels, make_optimizer, make_schedule
from psp_jax.train.schedules import poly_schedule, step_schedule


def test_poly_schedule_start_middle_end():
  s = poly_schedule(0.01, 1000, power=0.9)
  assert float(s(0)) == pytest.approx(0.01)
  assert float(s(500)) == pytest.approx(0.01 * 0.5 ** 0.9, rel=1e-6)
  assert float(s(250)) == pytest.approx(0.01 * 0.75 ** 0.9, rel=1e-6)
  assert float(s(999)) == pytest.approx(0.01 * 0.001 ** 0.9, rel=1e-4)  # float32
  assert float(s(1000)) == pytest.approx(0.0, abs=1e-12)
  assert float(s(5000)) == pytest.approx(0.0, abs=1e-12)  # clamped past the end


def test_poly_schedule_with_warmup():
  s = poly_schedule(0.01, 1000, warmup_steps=100, warmup_init_lr=0.001)
  assert float(s(0)) == pytest.approx(0.001)
  assert float(s(50)) == pytest.approx(0.001 + 0.5 * (0.01 * 0.9 ** 0.9 - 0.001), rel=1e-6)
  assert float(s(100)) == pytest.approx(0.01 * 0.9 ** 0.9, rel=1e-6)
  assert float(s(550)) == pytest.approx(0.01 * 0.45 ** 0.9, rel=1e-6)
  with pytest.raises(ValueError, match="warmup_steps"):
    poly_schedule(0.01, 100, warmup_steps=100)


def test_step_schedule_cascadepsp():
  s = step_schedule(2.25e-4, (22500, 37500))
  assert float(s(0)) == pytest.approx(2.25e-4)
  assert float(s(22499)) == pytest.approx(2.25e-4)
  assert float(s(22500)) == pytest.approx(2.25e-5)
  assert float(s(40000)) == pytest.approx(2.25e-6)


PARAMS = {"backbone": {"conv1": {"kernel": jnp.ones((3,))}, "layer4_0": {"w": jnp.ones((2,))}},
          "ppm": {"branch0_conv": {"kernel": jnp.ones((2,))}},
          "head": {"classifier": {"kernel": jnp.ones((2,)), "bias": jnp.ones((2,))}}}


def _cfg(**kw):
  base = dict(name="sgd", base_lr=0.01, momentum=0.9, weight_decay=0.0, schedule="poly",
              power=0.9, lr_multipliers={"ppm": 10.0, "head": 10.0})
  base.update(kw)
  return ml_collections.ConfigDict(base)


def test_head_moves_ten_times_as_far_as_backbone_with_identical_gradients():
  opt = make_optimizer(_cfg(), PARAMS, total_steps=100)
  grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 0.3), PARAMS)
  state = opt.tx.init(PARAMS)
  params = PARAMS
  for _ in range(3):  # momentum accumulates identically in every group
    updates, state = opt.tx.update(grads, state, params)
    new = optax.apply_updates(params, updates)
    back = float(new["backbone"]["conv1"]["kernel"][0] - params["backbone"]["conv1"]["kernel"][0])
    head = float(new["head"]["classifier"]["kernel"][0] - params["head"]["classifier"]["kernel"][0])
    ppm = float(new["ppm"]["branch0_conv"]["kernel"][0] - params["ppm"]["branch0_conv"]["kernel"][0])
    assert back < 0 and head == pytest.approx(10 * back, rel=1e-5) and ppm == pytest.approx(head)
    params = new
  rates = opt.learning_rates(0)
  assert float(rates["base"]) == pytest.approx(0.01) and float(rates["head"]) == pytest.approx(0.1)


def test_first_sgd_step_matches_pytorch_formula():
  """PyTorch SGD: buf = g + wd * p; p -= lr * buf (first step), lr from the poly schedule."""
  cfg = _cfg(weight_decay=1e-4, lr_multipliers={})
  opt = make_optimizer(cfg, PARAMS, total_steps=100)
  grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 0.5), PARAMS)
  updates, _ = opt.tx.update(grads, opt.tx.init(PARAMS), PARAMS)
  np.testing.assert_allclose(np.asarray(updates["head"]["classifier"]["bias"]),
                             -0.01 * (0.5 + 1e-4 * 1.0), rtol=1e-6)


def test_nested_multiplier_longest_match_wins():
  labels = group_labels(PARAMS, {"backbone": 1.0, "backbone/layer4_0": 2.0})
  assert labels["backbone"]["layer4_0"]["w"] == "backbone/layer4_0"
  assert labels["backbone"]["conv1"]["kernel"] == "backbone"
  assert labels["head"]["classifier"]["bias"] == "base"


def test_multiplier_naming_no_module_is_an_error():
  with pytest.raises(ValueError, match="'aux_haed'.*top-level modules are \\['backbone', 'head', 'ppm'\\]"):
    make_optimizer(_cfg(lr_multipliers={"aux_haed": 10.0}), PARAMS, 100)
  # A module the model may leave out (aux head off) is allowed when declared optional.
  opt = make_optimizer(_cfg(lr_multipliers={"head": 10.0, "aux_head": 10.0}), PARAMS, 100,
                       optional_modules=("aux_head",))
  assert "aux_head" not in opt.multipliers


def test_frozen_parameters_do_not_move_even_with_weight_decay():
  opt = make_optimizer(_cfg(weight_decay=1e-2), PARAMS, 100, frozen_paths=[("backbone", "conv1")])
  grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 0.3), PARAMS)
  updates, _ = opt.tx.update(grads, opt.tx.init(PARAMS), PARAMS)
  assert np.all(np.asarray(updates["backbone"]["conv1"]["kernel"]) == 0)
  assert np.all(np.asarray(updates["backbone"]["layer4_0"]["w"]) != 0)


def test_adam_and_clipping_and_unknown_names():
  opt = make_optimizer(_cfg(name="adam", schedule="step", base_lr=1e-3, boundaries=(10,),
                            grad_clip_norm=1.0, lr_multipliers={}), PARAMS, 100)
  grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 100.0), PARAMS)
  updates, _ = opt.tx.update(grads, opt.tx.init(PARAMS), PARAMS)
  # Adam's first step moves every parameter by ~lr whatever the gradient scale.
  np.testing.assert_allclose(np.asarray(updates["ppm"]["branch0_conv"]["kernel"]), -1e-3, rtol=1e-3)
  with pytest.raises(ValueError, match="optim.name='lamb'"):
    make_optimizer(_cfg(name="lamb"), PARAMS, 100)
  with pytest.raises(ValueError, match="optim.schedule='cosine'"):
    make_optimizer(_cfg(schedule="cosine"), PARAMS, 100)


def test_step_boundaries_as_fractions_follow_the_step_count():
  """configs/cascadepsp.py gives the decays as fractions: the paper's 22.5K / 37.5K of 45K,
  and the same proportions when train.steps is overridden."""
  from configs import cascadepsp
  cfg = cascadepsp.paper().optim
  s = make_schedule(cfg, 45_000)
  assert float(s(22_499)) == pytest.approx(2.25e-4)
  assert float(s(22_500)) == pytest.approx(2.25e-5)
  assert float(s(37_499)) == pytest.approx(2.25e-5)
  assert float(s(37_500)) == pytest.approx(2.25e-6)
  s = make_schedule(cfg, 600)
  assert float(s(299)) == pytest.approx(2.25e-4) and float(s(300)) == pytest.approx(2.25e-5)
  assert float(s(500)) == pytest.approx(2.25e-6)
