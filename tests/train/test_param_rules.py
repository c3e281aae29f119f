"""optim.param_rules (psp_jax.train.param_rules): Caffe's per-parameter lr and decay
multipliers (SegNet's biases at 2x lr without weight decay) through make_optimizer."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from psp_jax.train.optim import make_optimizer

PARAMS = {"conv1": {"kernel": jnp.ones((3,)), "bias": jnp.ones((2,))},
          "conv1_bn": {"scale": jnp.ones((2,)), "bias": jnp.ones((2,))}}
SEGNET_RULES = [{"pattern": "*_bn/bias", "lr": 1.0, "decay": 0}, {"pattern": "*/bias", "lr": 2.0, "decay": 0}]


def _update(rules, lr_multipliers=None, frozen_paths=()):
  """The first SGD update (lr 1, no momentum, wd 0.1) with all-ones params and gradients:
  -(lr multiplier) * (1 + 0.1 * decay)."""
  cfg = ml_collections.ConfigDict(dict(name="sgd", base_lr=1.0, momentum=0.0, weight_decay=0.1,
                                       schedule="constant", lr_multipliers=lr_multipliers or {},
                                       param_rules=rules))
  opt = make_optimizer(cfg, PARAMS, 10, frozen_paths=frozen_paths)
  grads = jax.tree_util.tree_map(jnp.ones_like, PARAMS)
  updates, _ = opt.tx.update(grads, opt.tx.init(PARAMS), PARAMS)
  return {k: {n: float(v[0]) for n, v in d.items()} for k, d in updates.items()}, opt


def test_segnet_rules_bias_lr_2x_and_no_decay():
  up, opt = _update(SEGNET_RULES)
  assert up["conv1"]["kernel"] == pytest.approx(-1.1)
  assert up["conv1"]["bias"] == pytest.approx(-2.0)      # lr x2, no decay
  assert up["conv1_bn"]["scale"] == pytest.approx(-1.1)  # decayed, as Caffe's BN scale
  assert up["conv1_bn"]["bias"] == pytest.approx(-1.0)   # first rule: lr x1, no decay
  assert {k: float(v) for k, v in opt.learning_rates(0).items()} == {"base": 1.0, "base|*/bias": 2.0}


def test_no_rules_unchanged_and_module_multipliers_compose():
  up, _ = _update([])
  assert all(v == pytest.approx(-1.1) for d in up.values() for v in d.values())
  up, _ = _update(SEGNET_RULES, lr_multipliers={"conv1": 10.0})
  assert up["conv1"]["bias"] == pytest.approx(-20.0) and up["conv1"]["kernel"] == pytest.approx(-11.0)
  up, _ = _update(SEGNET_RULES, frozen_paths=[("conv1_bn",)])
  assert up["conv1_bn"]["bias"] == 0.0 and up["conv1_bn"]["scale"] == 0.0


def test_bad_rules_name_the_rule():
  with pytest.raises(ValueError, match=r"patterns \['head/\*'\] match no parameter"):
    _update([{"pattern": "head/*", "lr": 2.0}])
  with pytest.raises(ValueError, match=r"optim.param_rules\[0\].decay=0.5: must be 0"):
    _update([{"pattern": "*/bias", "decay": 0.5}])
  with pytest.raises(ValueError, match=r"optim.param_rules\[1\].*must be a dict with 'pattern'"):
    _update([{"pattern": "*/bias"}, {"lr": 2.0}])
  np.testing.assert_array_equal(np.asarray(PARAMS["conv1"]["bias"]), 1.0)
