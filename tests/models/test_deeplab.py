"""DeepLab v1/v2/v3 families: published parameter counts (full size, eval_shape), output sizes
at output stride 8/16, multi-scale fusion, rate scaling, BN momentum, bad fields."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from psp_jax.models import build
from psp_jax.models.deeplab import (CAFFE_PREPROCESSING, DeepLabV1, DeepLabV2, DeepLabV3,
                                    rescale_images, scaled_size, upsample_logits)
from psp_jax.models.ops import resize_bilinear
from psp_jax.models.resnet import ResNet

RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}


def _shapes(model, size, **kw):
  x = jax.ShapeDtypeStruct((1, *size, 3), jnp.float32)
  return jax.eval_shape(lambda x: model.init_with_output(RNGS, x, **kw), x)


def _random_variables(model, x, seed=0):
  """Variables of the model's shapes drawn with NumPy (kernels ~ N(0, 1/fan_in), BN running
  statistics 0 / 1): compiling flax's initialisers costs far more than these tests need."""
  rng = np.random.default_rng(seed)
  abstract = jax.eval_shape(lambda x: model.init(RNGS, x), x)

  def draw(path, a):
    leaf = path[-1].key
    if leaf == "var":
      return np.ones(a.shape, a.dtype)
    if leaf == "mean":
      return np.zeros(a.shape, a.dtype)
    fan_in = int(np.prod(a.shape[:-1])) if len(a.shape) > 1 else 10
    return (rng.standard_normal(a.shape) / np.sqrt(fan_in)).astype(a.dtype)

  return jax.tree_util.tree_map_with_path(draw, abstract)


def _count(variables):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables["params"]))


def _tv(depth, **kw):
  return DeepLabV3(21, depth=depth, output_stride=8, multi_grid=(), flavour="torchvision",
                   dropout=0.5, align_corners=False, **kw)


@pytest.mark.parametrize("model,size,expected", [
    (DeepLabV1(21), 321, 20_505_429),
    (DeepLabV2(21), 321, 44_048_532),
    (DeepLabV2(21, backbone_type="vgg"), 321, 37_877_652),
    (_tv(50, aux=True), 513, 42_004_074),
    (_tv(50), 513, 39_638_869),
    (_tv(101, aux=True), 513, 60_996_202),
])
def test_published_parameter_counts(model, size, expected):
  _, v = _shapes(model, (size, size), return_aux=True)
  assert _count(v) == expected


def test_v1_output_stride_8_and_caffe_upsampling():
  native, _ = _shapes(DeepLabV1(21), (321, 321), native=True)
  assert native["logits"].shape == (1, 41, 41, 21)
  native, _ = _shapes(DeepLabV1(21), (513, 513), native=True)
  assert native["logits"].shape == (1, 65, 65, 21)
  (logits, aux), _ = _shapes(DeepLabV1(21), (97, 100), return_aux=True)
  assert logits.shape == (1, 97, 100, 21) and aux is None


def test_caffe_zoom_by_8_then_crop():
  """Interp zoom of [0, 8] by 8 is 0..8 exactly; a 41 map gives 321 = the 321 crop."""
  x = jnp.asarray([0.0, 8.0])[None, :, None, None] * jnp.ones((1, 2, 2, 1))
  out = upsample_logits(x, (9, 5), 8, align_corners=True)
  np.testing.assert_allclose(np.asarray(out[0, :, 0, 0]), np.arange(9.0), atol=1e-6)
  assert out.shape == (1, 9, 5, 1)
  y = jax.random.normal(jax.random.key(0), (1, 41, 41, 2))
  np.testing.assert_allclose(np.asarray(upsample_logits(y, (321, 321), 8, True)),
                             np.asarray(resize_bilinear(y, (321, 321), True)), rtol=1e-5, atol=1e-5)
  assert upsample_logits(y, (330, 321), 8, True).shape == (1, 330, 321, 2)  # edge rows repeated


def test_v2_multiscale_outputs_at_their_own_sizes():
  native, _ = _shapes(DeepLabV2(21), (321, 321), native=True)
  assert {k: v.shape[1] for k, v in native.items()} == {
      "scale_1": 41, "scale_0.75": 31, "scale_0.5": 21, "max": 41}
  assert [scaled_size(321, s, True) for s in (0.75, 0.5)] == [241, 161]
  assert [scaled_size(321, s, False) for s in (0.75, 0.5)] == [240, 160]
  native, _ = _shapes(DeepLabV2(21, scales=(1.0,)), (321, 321), native=True)
  assert set(native) == {"scale_1"}


@pytest.mark.parametrize("align_corners", [True, False])
def test_v2_fusion_is_the_pixelwise_max_of_the_resized_scales(align_corners):
  model = DeepLabV2(3, backbone_type="vgg", width=4, rates=(1, 2), fc_features=4,
                    align_corners=align_corners)
  x = jax.random.normal(jax.random.key(3), (1, 40, 36, 3))
  v = _random_variables(model, x)
  out = jax.jit(lambda v, x: model.apply(v, x, native=True))(v, x)
  size = out["scale_1"].shape[1:3]
  expected = np.maximum.reduce([np.asarray(resize_bilinear(out[k], size, align_corners))
                                for k in ("scale_1", "scale_0.75", "scale_0.5")])
  np.testing.assert_allclose(np.asarray(out["max"]), expected, rtol=1e-6)
  # Each scale is the same network on the rescaled image.
  single = model.clone(scales=(1.0,))
  small = jax.jit(lambda v, x: single.apply(v, x, native=True))(
      v, rescale_images(x, 0.5, align_corners))["scale_1"]
  np.testing.assert_allclose(np.asarray(out["scale_0.5"]), np.asarray(small), rtol=1e-5, atol=1e-6)
  assert jax.eval_shape(model.apply, v, x).shape == (1, 40, 36, 3)


def test_pytorch_scale_factor_resize_of_the_inputs():
  """align_corners=False samples with step 1/scale (F.interpolate(scale_factor=0.5)): a 2x
  shrink of a ramp averages neighbour pairs."""
  ramp = jnp.arange(8.0)[None, :, None, None] * jnp.ones((1, 8, 2, 1))
  out = rescale_images(ramp, 0.5, align_corners=False)
  np.testing.assert_allclose(np.asarray(out[0, :, 0, 0]), [0.5, 2.5, 4.5, 6.5], atol=1e-6)
  out = rescale_images(ramp, 0.5, align_corners=True)  # 8 -> 4 rows at 0, 7/3, 14/3, 7
  np.testing.assert_allclose(np.asarray(out[0, :, 0, 0]), [0, 7 / 3, 14 / 3, 7], atol=1e-5)


def _dilations(model, size):
  seen = {}

  def grab(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.Conv):
      d = context.module.kernel_dilation
      seen["/".join(context.module.path)] = d if isinstance(d, int) else d[0]
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(grab):
    jax.eval_shape(lambda: model.init(RNGS, jnp.zeros((1, size, size, 3))))
  return seen


@pytest.mark.parametrize("output_stride,feat,rates,grid", [
    (16, 33, (6, 12, 18), (2, 4, 8)), (8, 65, (12, 24, 36), (4, 8, 16))])
def test_v3_output_stride_rates_and_multigrid(output_stride, feat, rates, grid):
  model = DeepLabV3(21, output_stride=output_stride)
  native, v = _shapes(model, (513, 513), native=True)
  assert native["logits"].shape == (1, feat, feat, 21)
  assert model.effective_rates() == rates
  dil = _dilations(model, 513)
  assert tuple(dil[f"head/aspp/branch{k}_conv"] for k in (1, 2, 3)) == rates
  assert tuple(dil[f"backbone/layer4_{i}/conv2"] for i in range(3)) == grid


def test_v3_trains_at_16_and_evaluates_at_8_with_the_same_parameters():
  shapes = lambda v: {k: a.shape for k, a in flatten_dict(v).items()}  # noqa: E731
  small = dict(depth=50, width=16, aux=True, rates=(1, 2, 3))
  _, v16 = _shapes(DeepLabV3(21, **small), (97, 97), return_aux=True)
  _, v8 = _shapes(DeepLabV3(21, output_stride=8, **small), (97, 97), return_aux=True)
  assert shapes(v16) == shapes(v8)
  (logits, aux), _ = _shapes(DeepLabV3(21, output_stride=8, **small), (97, 100), return_aux=True)
  assert logits.shape == aux.shape == (1, 97, 100, 21)


def test_v3_torchvision_flavour_structure():
  _, v = _shapes(_tv(50, aux=True), (289, 289), return_aux=True)
  p = v["params"]
  assert p["head"]["conv"]["kernel"].shape == (3, 3, 256, 256)
  assert p["aux_head"]["conv"]["kernel"].shape == (3, 3, 1024, 256)
  dil = _dilations(_tv(50), 289)
  assert dil["backbone/layer4_0/conv2"] == 2 and dil["backbone/layer4_1/conv2"] == 4
  assert tuple(dil[f"head/aspp/branch{k}_conv"] for k in (1, 2, 3)) == (12, 24, 36)
  _, v = _shapes(DeepLabV3(21, depth=50), (289, 289), return_aux=True)
  assert "conv" not in v["params"]["head"] and "aux_head" not in v["params"]


def test_v3_bn_momentum_override():
  """bn_momentum=0.9997 (TF's decay): running mean = 0.9997 * 0 + 0.0003 * batch mean."""
  model = DeepLabV3(3, depth=18, width=8, output_stride=8, multi_grid=(1, 2), rates=(1,),
                    aspp_features=8, bn_momentum=0.9997)
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3)) + 3.0
  v = _random_variables(model, x)
  _, upd = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"],
                                            rngs={"dropout": jax.random.key(2)}))(v, x)
  stem = ResNet(18, "classic", 8, "semseg", 8).apply(
      {"params": v["params"]["backbone"], "batch_stats": v["batch_stats"]["backbone"]}, x)["stem_conv"]
  expected = (1 - 0.9997) * np.asarray(jnp.mean(stem, axis=(0, 1, 2)))
  np.testing.assert_allclose(np.asarray(upd["batch_stats"]["backbone"]["bn1"]["mean"]), expected,
                             rtol=1e-4, atol=1e-9)


def test_bad_fields_are_errors_naming_the_field():
  with pytest.raises(ValueError, match=r"DeepLabV3.output_stride must be one of \(8, 16\), got 32"):
    _shapes(DeepLabV3(21, output_stride=32), (65, 65))
  with pytest.raises(ValueError, match=r"DeepLabV3.multi_grid=\(1, 2, 4\): the torchvision flavour"):
    _shapes(DeepLabV3(21, flavour="torchvision"), (65, 65))
  with pytest.raises(ValueError, match="DeepLabV3.flavour must be one of"):
    _shapes(DeepLabV3(21, flavour="tf"), (65, 65))
  with pytest.raises(ValueError, match=r"multi_grid=\(1, 2\) needs one positive factor per layer4"):
    _shapes(DeepLabV3(21, multi_grid=(1, 2)), (65, 65))
  with pytest.raises(ValueError, match=r"DeepLabV2.scales=\(0.75, 0.5\): distinct positive scales"):
    _shapes(DeepLabV2(21, scales=(0.75, 0.5)), (65, 65))
  with pytest.raises(ValueError, match="DeepLabV2.backbone_type must be"):
    _shapes(DeepLabV2(21, backbone_type="xception"), (65, 65))
  with pytest.raises(ValueError, match=r"ASPP.rates=\(12, 24, 36\): rate 24 does not fit the 17x17"):
    _shapes(DeepLabV3(21, output_stride=8), (129, 129))


def test_families_registered_with_their_preprocessing():
  for name in ("deeplabv1", "deeplabv2"):
    pre = build.get_family(name).preprocessing
    assert pre == CAFFE_PREPROCESSING
    assert pre.mean == (104.008, 116.669, 122.675) and pre.std == (1.0, 1.0, 1.0)
    assert pre.input_scale == 1.0 and pre.channel_order == "BGR"
  pre = build.get_family("deeplabv3").preprocessing
  assert pre.mean == (0.485, 0.456, 0.406) and pre.channel_order == "RGB" and pre.input_scale == 255.0
  model = build.build_model({"name": "deeplabv3", "num_classes": 5, "rates": [1], "multi_grid": []})
  assert model.rates == (1,) and model.multi_grid == ()
  assert build.model_config(model)["rates"] == [1]
