"""PSPNet and its dilated ResNet: shapes, parameter counts, dilation patterns, dtypes, errors."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from psp_jax.models import PSPNet, PyramidPooling, ResNet
from psp_jax.models.aspp import ASPPL, DeepLabV3Head, FCHead
from psp_jax.models.build import build_model
from psp_jax.models.resnet import RESNET_LAYOUTS, stage_dilations
from psp_jax.checkpoint import init_variables


def _down(size, times):
  for _ in range(times):
    size = math.ceil(size / 2)
  return size


def _shapes(module, x_shape, **kw):
  x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
  out, variables = jax.eval_shape(
      lambda x: module.init_with_output(jax.random.key(0), x, **kw), x)
  return out, variables


@pytest.mark.parametrize("depth", sorted(RESNET_LAYOUTS))
@pytest.mark.parametrize("output_stride", [8, 16])
def test_backbone_feature_shapes_every_depth(depth, output_stride):
  feats, _ = _shapes(ResNet(depth, output_stride=output_stride), (1, 97, 100, 3))
  expansion = 4 if depth >= 50 else 1
  s2 = 3 if output_stride == 8 else 4
  assert feats["stem_conv"].shape == (1, 49, 50, 64)
  assert feats["layer1"].shape == (1, 25, 25, 64 * expansion)
  assert feats["layer2"].shape == (1, 13, 13, 128 * expansion)
  assert feats["layer3"].shape == (1, _down(97, s2), _down(100, s2), 256 * expansion)
  assert feats["layer4"].shape == (1, _down(97, s2), _down(100, s2), 512 * expansion)


@pytest.mark.parametrize("depth", sorted(RESNET_LAYOUTS))
@pytest.mark.parametrize("size", [(473, 473), (97, 97), (100, 97)])
def test_pspnet_logits_at_input_size(depth, size):
  for output_stride in (8, 16):
    model = PSPNet(21, depth=depth, output_stride=output_stride)
    (logits, aux), _ = _shapes(model, (2, *size, 3), train=False, return_aux=True)
    assert logits.shape == (2, *size, 21) and logits.dtype == jnp.float32
    assert aux.shape == (2, *size, 21)


@pytest.mark.parametrize("depth,with_aux,without_aux", [
    (50, 49_180_908, 46_782_550), (101, 68_173_036, 65_774_678)])
def test_parameter_counts_match_reference(depth, with_aux, without_aux):
  _, variables = _shapes(PSPNet(150, depth=depth), (1, 97, 97, 3), return_aux=True)
  params = flatten_dict(variables["params"])
  total = sum(p.size for p in params.values())
  aux = sum(p.size for k, p in params.items() if k[0] == "aux_head")
  assert total == with_aux
  assert total - aux == without_aux
  _, no_aux = _shapes(PSPNet(150, depth=depth, aux=False), (1, 97, 97, 3), return_aux=True)
  assert sum(p.size for p in jax.tree_util.tree_leaves(no_aux["params"])) == without_aux


def test_pspnet50_state_dict_entry_count():
  # semseg's state_dict has 370 entries: each BN holds 5 (weight, bias, running mean/var,
  # num_batches_tracked), each conv 1 (or 2 with bias).
  _, v = _shapes(PSPNet(150, depth=50), (1, 97, 97, 3), return_aux=True)
  params = flatten_dict(v["params"])
  bns = len(flatten_dict(v["batch_stats"])) // 2
  convs = len([k for k in params if k[-1] == "kernel"])
  biases = len([k for k in params if k[-1] == "bias" and k[-2] == "classifier"])
  assert convs + biases + 5 * bns == 370


def test_dilation_patterns():
  blocks = RESNET_LAYOUTS[50][1]
  semseg = stage_dilations(8, "semseg", blocks)
  assert semseg[2] == (1, [2] * 6) and semseg[3] == (1, [4] * 3)
  cascade = stage_dilations(8, "cascade", blocks)
  assert cascade[2] == (1, [1] + [2] * 5) and cascade[3] == (1, [1, 4, 4])
  assert stage_dilations(16, "semseg", blocks)[2:] == [(2, [1] * 6), (1, [2] * 3)]
  assert stage_dilations(16, "cascade", blocks)[3] == (1, [1, 2, 2])
  with pytest.raises(ValueError, match="output_stride"):
    stage_dilations(4, "semseg", blocks)
  with pytest.raises(ValueError, match="dilation_pattern"):
    stage_dilations(8, "deeplab", blocks)


def _conv_dilations(model, x):
  """{module path: kernel_dilation} of every conv the model runs."""
  seen = {}

  def grab(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.Conv):
      seen["/".join(context.module.path)] = tuple(context.module.kernel_dilation)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(grab):
    jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  return seen


@pytest.mark.parametrize("depth,conv", [(50, "conv2"), (18, "conv1")])
def test_models_run_the_dilation_patterns(depth, conv):
  x = jnp.zeros((1, 65, 65, 3))
  semseg = _conv_dilations(ResNet(depth), x)
  cascade = _conv_dilations(ResNet(depth, stem="classic", dilation_pattern="cascade"), x)
  assert semseg[f"layer3_0/{conv}"] == (2, 2) and semseg[f"layer4_0/{conv}"] == (4, 4)
  assert semseg[f"layer3_1/{conv}"] == (2, 2) and semseg[f"layer4_1/{conv}"] == (4, 4)
  assert cascade[f"layer3_0/{conv}"] == (1, 1) and cascade[f"layer4_0/{conv}"] == (1, 1)
  assert cascade[f"layer3_1/{conv}"] == (2, 2) and cascade[f"layer4_1/{conv}"] == (4, 4)
  assert semseg["layer2_0/" + conv] == (1, 1)
  # Shortcut convs of dilated stages keep stride 1 (layer3 stays at /8).
  assert semseg.get("layer3_0/downsample_conv", (1, 1)) == (1, 1)


def test_input_channels_and_classic_stem():
  feats, v = _shapes(ResNet(50, stem="classic", dilation_pattern="cascade"), (1, 64, 64, 6))
  assert v["params"]["conv1"]["kernel"].shape == (7, 7, 6, 64)
  assert feats["stem_conv"].shape == (1, 32, 32, 64)
  _, v = _shapes(PSPNet(5, in_channels=4, depth=50), (1, 64, 64, 4))
  assert v["params"]["backbone"]["conv1"]["kernel"].shape == (3, 3, 4, 64)
  _, v = _shapes(ResNet(50), (1, 64, 64, 4))
  assert v["params"]["conv1"]["kernel"].shape == (3, 3, 4, 64)
  assert v["params"]["conv3"]["kernel"].shape == (3, 3, 64, 128)


def test_fcn_baseline_has_no_ppm_and_head_sees_layer4():
  _, v = _shapes(PSPNet(150, depth=50, context="none"), (1, 97, 97, 3), return_aux=True)
  assert "ppm" not in v["params"]
  assert v["params"]["head"]["conv"]["kernel"].shape == (3, 3, 2048, 512)
  _, v = _shapes(PSPNet(150, depth=50), (1, 97, 97, 3), return_aux=True)
  assert v["params"]["head"]["conv"]["kernel"].shape == (3, 3, 4096, 512)


@pytest.mark.parametrize("context, rates, head", [
    ("largefov", (3,), lambda: FCHead(7, 2 * 16, 3, 3, 0.1)),
    ("aspp_l", (1, 2, 3), lambda: ASPPL(7, (1, 2, 3), "resnet")),
    ("aspp", (1, 2), lambda: DeepLabV3Head(7, (1, 2), 8, True, 0.1)),
])
def test_deeplab_heads_on_the_pspnet_backbone_are_deeplabs_own(context, rates, head):
  # context swaps pyramid pooling + head for the DeepLab head: same backbone, the head's own
  # parameters (names and shapes), logits at the input size, the aux head unchanged
  model = PSPNet(7, depth=18, stem="classic", width=8, head_features=16, aux_features=8,
                 context=context, context_rates=rates)
  (logits, aux), v = _shapes(model, (2, 41, 41, 3), return_aux=True)
  assert logits.shape == aux.shape == (2, 41, 41, 7) and "ppm" not in v["params"]
  _, own = _shapes(head(), (2, 6, 6, 64))
  shapes = lambda t: jax.tree.map(lambda a: a.shape, t)  # noqa: E731
  assert shapes(v["params"]["head"]) == shapes(own["params"])
  fcn = _shapes(PSPNet(7, depth=18, stem="classic", width=8, head_features=16, aux_features=8,
                       context="none"), (2, 41, 41, 3), return_aux=True)[1]
  assert shapes(v["params"]["backbone"]) == shapes(fcn["params"]["backbone"])
  assert shapes(v["params"]["aux_head"]) == shapes(fcn["params"]["aux_head"])


def test_deeplab_heads_default_rates_image_pooling_and_errors():
  kw = dict(depth=18, stem="classic", width=8, head_features=16)
  # () takes DeepLab's rates at output stride 8: v3's (6, 12, 18) at 16 doubled
  _, v = _shapes(PSPNet(3, context="aspp", **kw), (1, 321, 321, 3))
  assert [k for k in v["params"]["head"]["aspp"] if k.endswith("_conv")] == [
      "branch0_conv", "branch1_conv", "branch2_conv", "branch3_conv", "pool_conv", "project_conv"]
  assert v["params"]["head"]["aspp"]["branch3_conv"]["kernel"].shape == (3, 3, 64, 8)
  _, v = _shapes(PSPNet(3, context="aspp", context_rates=(2,), image_pooling=False, **kw), (1, 65, 65, 3))
  assert "pool_conv" not in v["params"]["head"]["aspp"]
  _, v = _shapes(PSPNet(3, context="aspp_l", **kw), (1, 321, 321, 3))
  assert sorted(v["params"]["head"]) == ["c0", "c1", "c2", "c3"]  # rates 6, 12, 18, 24
  with pytest.raises(ValueError, match=r"context_rates=\(3, 4\): context='largefov' takes one rate"):
    _shapes(PSPNet(3, context="largefov", context_rates=(3, 4), **kw), (1, 65, 65, 3))
  with pytest.raises(ValueError, match=r"ASPPL.rates=\(6, 12, 18, 24\): rate 12 does not fit the 9x9 feature map"):
    _shapes(PSPNet(3, context="aspp_l", **kw), (1, 65, 65, 3))


def test_ppm_variants_channels():
  x = (2, 13, 13, 64)
  assert _shapes(PyramidPooling(), x)[0].shape == (2, 13, 13, 128)
  assert _shapes(PyramidPooling(bins=(1,)), x)[0].shape == (2, 13, 13, 128)
  assert _shapes(PyramidPooling(reduction=False), x)[0].shape == (2, 13, 13, 64 * 5)
  out, v = _shapes(PyramidPooling(pool="max", branch_bn=False), x)
  assert out.shape == (2, 13, 13, 128) and "branch0_bn" not in v["params"]
  out, v = _shapes(PyramidPooling(branch_features=64, branch_bn=False, fusion="bottleneck",
                                  bottleneck_features=32, align_corners=False), x)
  assert out.shape == (2, 13, 13, 32)
  assert v["params"]["bottleneck"]["kernel"].shape == (1, 1, 64 * 5, 32)
  assert "bias" in v["params"]["bottleneck"]


def test_ppm_max_and_avg_differ_and_bins_one_is_global():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(1, 6, 6, 4)).astype(np.float32))
  ppm = PyramidPooling(bins=(1,), branch_bn=False, branch_features=4)
  v = ppm.init(jax.random.key(0), x)
  out = np.asarray(ppm.apply(v, x))
  kernel = np.asarray(v["params"]["branch0_conv"]["kernel"])[0, 0]
  expected = np.asarray(x).mean(axis=(1, 2)) @ kernel  # global average, projected
  np.testing.assert_allclose(out[0, 3, 2, 4:], expected[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out[..., :4], np.asarray(x))  # the input passes through
  out_max = np.asarray(ppm.clone(pool="max").apply(v, x))
  assert not np.allclose(out, out_max)


def test_bfloat16_compute_keeps_float32_params_and_logits():
  model = PSPNet(5, depth=18, width=8, head_features=16, aux_features=8, dtype=jnp.bfloat16)
  x = jnp.ones((1, 33, 33, 3))
  v = init_variables(model, jax.random.key(0))  # the fast-compiling init
  assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(v["params"]))
  logits = jax.jit(model.apply)(v, x)
  assert logits.dtype == jnp.float32 and np.isfinite(np.asarray(logits)).all()
  ref = jax.jit(PSPNet(5, depth=18, width=8, head_features=16, aux_features=8).apply)(v, x)
  assert np.max(np.abs(np.asarray(logits) - np.asarray(ref))) < 0.1 * np.max(np.abs(np.asarray(ref))) + 0.05


def test_bad_inputs_name_the_argument():
  x = jnp.zeros((1, 33, 33, 3))
  with pytest.raises(ValueError, match="depth must be one of"):
    PSPNet(5, depth=42).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="rank 4"):
    PSPNet(5, depth=18).init(jax.random.key(0), jnp.zeros((33, 33, 3)))
  with pytest.raises(ValueError, match="in_channels=3 channels"):
    PSPNet(5, depth=18).init(jax.random.key(0), jnp.zeros((1, 33, 33, 4)))
  with pytest.raises(ValueError, match="context"):
    PSPNet(5, depth=18, width=8, context="fpn").init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="bins"):
    PyramidPooling(bins=(1, 0)).init(jax.random.key(0), jnp.zeros((1, 6, 6, 8)))
  with pytest.raises(ValueError, match="do not split evenly"):
    PyramidPooling(bins=(1, 2, 3)).init(jax.random.key(0), jnp.zeros((1, 6, 6, 8)))
  with pytest.raises(ValueError, match="pool must be"):
    PyramidPooling(pool="sum").init(jax.random.key(0), jnp.zeros((1, 6, 6, 8)))
  with pytest.raises(ValueError, match="stem"):
    ResNet(18, stem="wide").init(jax.random.key(0), x)
  with pytest.raises(ValueError, match="model fields \\['depht'\\]"):
    build_model({"name": "pspnet", "num_classes": 3, "depht": 50})
  with pytest.raises(ValueError, match="model.name='psp'"):
    build_model({"name": "psp", "num_classes": 3})


def test_build_model_from_config_data():
  model = build_model({"name": "pspnet", "num_classes": 7, "depth": 18, "bins": [1, 2],
                       "dtype": "bfloat16"})
  assert isinstance(model, PSPNet) and model.bins == (1, 2) and model.dtype == jnp.bfloat16


def test_channel_dropout_drops_whole_channels():
  model = PSPNet(4, depth=18, width=8, head_features=16, aux_features=8, dropout=0.5)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 33, 33, 3)).astype(np.float32))
  v = init_variables(model, jax.random.key(0))  # the fast-compiling init
  captured = {}

  def grab(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if isinstance(context.module, nn.Dropout) and context.module.path[0] == "head":
      captured["in"], captured["out"] = args[0], out
    return out

  def run(v):
    with nn.intercept_methods(grab):
      model.apply(v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(1)})
    return captured["in"], captured["out"]

  captured["in"], captured["out"] = jax.jit(run)(v)
  zeroed = np.asarray(captured["out"] == 0) & np.asarray(captured["in"] != 0)
  per_channel = zeroed.reshape(2, -1, zeroed.shape[-1])
  # Any channel that was dropped is dropped at every pixel where it was non-zero.
  dropped = per_channel.any(axis=1)
  assert dropped.any() and not dropped.all()
  nonzero_in = np.asarray(captured["in"] != 0).reshape(2, -1, zeroed.shape[-1])
  assert np.array_equal(per_channel, nonzero_in & dropped[:, None, :])
