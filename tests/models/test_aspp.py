"""DeepLab heads: LargeFOV / FC head, v2 ASPP-L (sum of branches), v3 ASPP and its head."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from psp_jax.models.aspp import ASPP, ASPPL, DeepLabV3Head, FCHead, check_rates


def _init(module, x, **kw):
  return module.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, x, **kw)


def _random(module, x, seed=0):
  """NumPy-drawn variables of the module's shapes (compiling flax's initialisers is slow)."""
  rng = np.random.default_rng(seed)
  abstract = jax.eval_shape(lambda: _init(module, x))
  def draw(path, a):
    if path[-1].key == "var":
      return rng.uniform(0.5, 1.5, a.shape).astype(a.dtype)
    fan_in = int(np.prod(a.shape[:-1])) if len(a.shape) > 1 else 10
    return (rng.standard_normal(a.shape) / np.sqrt(fan_in)).astype(a.dtype)
  return jax.tree_util.tree_map_with_path(draw, abstract)


def _dilations(module, x):
  seen = {}

  def grab(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.Conv):
      d = context.module.kernel_dilation
      seen["/".join(context.module.path)] = (d, d) if isinstance(d, int) else tuple(d)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(grab):
    jax.eval_shape(lambda: module.init(jax.random.key(0), x))
  return seen


def _conv(x, kernel, bias, rate):
  """Independent 'same' dilated conv (NHWC, HWIO) with lax, padding = rate."""
  y = lax.conv_general_dilated(x, kernel, (1, 1), ((rate, rate), (rate, rate)),
                               rhs_dilation=(rate, rate), dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y + bias


def test_largefov_head_layers_and_shapes():
  head = FCHead(21)
  x = jnp.zeros((1, 41, 41, 512))
  v = jax.eval_shape(lambda: _init(head, x))["params"]
  assert v["fc6"]["kernel"].shape == (3, 3, 512, 1024) and v["fc6"]["bias"].shape == (1024,)
  assert v["fc7"]["kernel"].shape == (1, 1, 1024, 1024)
  assert v["fc8"]["kernel"].shape == (1, 1, 1024, 21)
  assert _dilations(head, x)["fc6"] == (12, 12)
  out = jax.eval_shape(lambda: head.apply(_init(head, x), x))
  assert out.shape == (1, 41, 41, 21) and out.dtype == jnp.float32


def test_fc_head_dropout_only_in_training():
  head = FCHead(3, features=8, dilation=2, dropout=0.5)
  x = jax.random.normal(jax.random.key(2), (1, 6, 6, 4))
  v = _random(head, x)
  a = head.apply(v, x, train=False)
  assert np.array_equal(np.asarray(a), np.asarray(head.apply(v, x, train=False)))
  b = head.apply(v, x, train=True, rngs={"dropout": jax.random.key(3)})
  c = head.apply(v, x, train=True, rngs={"dropout": jax.random.key(4)})
  assert not np.allclose(np.asarray(b), np.asarray(c))


def test_fc8_init_is_normal_0_01_with_zero_bias():
  v = _init(FCHead(21, features=256, dilation=2), jnp.zeros((1, 8, 8, 16)))["params"]["fc8"]
  assert float(jnp.std(v["kernel"])) == pytest.approx(0.01, rel=0.1)
  assert not np.any(np.asarray(v["bias"]))


def test_aspp_l_resnet_is_the_sum_of_four_atrous_convs():
  aspp = ASPPL(5, rates=(1, 2, 3, 4), branch="resnet")
  x = jax.random.normal(jax.random.key(0), (2, 9, 8, 6))
  v = _random(aspp, x)
  expected = sum(_conv(x, v["params"][f"c{k}"]["kernel"], v["params"][f"c{k}"]["bias"], r)
                 for k, r in enumerate((1, 2, 3, 4)))
  np.testing.assert_allclose(np.asarray(aspp.apply(v, x)), np.asarray(expected), rtol=1e-5, atol=1e-5)
  assert set(v["params"]) == {"c0", "c1", "c2", "c3"}


def test_aspp_l_vgg_has_an_fc6_fc8_branch_per_rate():
  aspp = ASPPL(21, branch="vgg")
  x = jnp.zeros((1, 41, 41, 512))
  v = jax.eval_shape(lambda: _init(aspp, x))["params"]
  assert set(v) == {"branch0", "branch1", "branch2", "branch3"}
  assert set(v["branch2"]) == {"fc6", "fc7", "fc8"}
  dil = _dilations(aspp, x)
  assert [dil[f"branch{k}/fc6"] for k in range(4)] == [(6, 6), (12, 12), (18, 18), (24, 24)]


def test_v3_aspp_branches_concat_and_projection():
  x = jnp.zeros((1, 33, 33, 64))
  v = jax.eval_shape(lambda: _init(ASPP(features=16), x))
  p = v["params"]
  assert p["branch0_conv"]["kernel"].shape == (1, 1, 64, 16)
  assert [p[f"branch{k}_conv"]["kernel"].shape for k in (1, 2, 3)] == [(3, 3, 64, 16)] * 3
  assert p["pool_conv"]["kernel"].shape == (1, 1, 64, 16)
  assert p["project_conv"]["kernel"].shape == (1, 1, 5 * 16, 16)
  assert set(v["batch_stats"]) == {"branch0_bn", "branch1_bn", "branch2_bn", "branch3_bn", "pool_bn",
                                   "project_bn"}
  assert _dilations(ASPP(features=16), x)["branch3_conv"] == (18, 18)
  p = jax.eval_shape(lambda: _init(ASPP(features=16, image_pooling=False), x))["params"]
  assert "pool_conv" not in p and p["project_conv"]["kernel"].shape == (1, 1, 4 * 16, 16)


def test_v3_image_pooling_branch_is_a_constant_map():
  """With only the pooling branch varying, the output is spatially constant where the other
  branches are zero: zero their convs and check the projection sees a broadcast vector."""
  aspp = ASPP(rates=(2,), features=4, dropout=0.0)
  x = jax.random.normal(jax.random.key(1), (1, 5, 7, 3))
  v = _random(aspp, x)
  params = dict(v["params"])
  for name in ("branch0_conv", "branch1_conv"):
    params[name] = {"kernel": jnp.zeros_like(params[name]["kernel"])}
  out = np.asarray(aspp.apply({"params": params, "batch_stats": v["batch_stats"]}, x))
  np.testing.assert_allclose(out, np.broadcast_to(out[:, :1, :1], out.shape), rtol=1e-6)


def test_v3_head_flavours():
  x = jnp.zeros((1, 9, 9, 32))
  tv = jax.eval_shape(lambda: _init(DeepLabV3Head(21, (2, 3, 4), 16, extra_conv=True), x))["params"]
  assert tv["conv"]["kernel"].shape == (3, 3, 16, 16) and tv["classifier"]["bias"].shape == (21,)
  paper = jax.eval_shape(lambda: _init(DeepLabV3Head(21, (2, 3, 4), 16), x))["params"]
  assert set(paper) == {"aspp", "classifier"}


def test_rates_that_do_not_fit_are_errors():
  check_rates("X", "rates", (6, 12), (13, 13))
  check_rates("X", "rates", (1,), (1, 1))  # rate 1 is a plain conv: always fine
  with pytest.raises(ValueError, match=r"ASPPL.rates=\(6, 12, 18, 24\): rate 24 does not fit the "
                                       r"21x21 feature map.*rates < max\(h, w\) = 21"):
    _init(ASPPL(3), jnp.zeros((1, 21, 21, 4)))
  with pytest.raises(ValueError, match=r"FCHead.dilation=\(12,\): rate 12 does not fit the 9x9"):
    _init(FCHead(3, features=4), jnp.zeros((1, 9, 9, 4)))
  with pytest.raises(ValueError, match="rates must be positive integers"):
    _init(ASPP(rates=(0, 2), features=4), jnp.zeros((1, 9, 9, 4)))
  with pytest.raises(ValueError, match="ASPPL.branch must be 'vgg' or 'resnet'"):
    _init(ASPPL(3, rates=(1,), branch="dense"), jnp.zeros((1, 9, 9, 4)))
