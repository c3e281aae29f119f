"""DeepLab's backbones: Caffe/PyTorch ceil pooling, VGG-16 (DeepLab and ImageNet layouts) and
the ResNet layout fields (MSRA stride placement, torchvision dilation, multi-grid)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from psp_jax.models.pooling import avg_pool, max_pool, pooled_length
from psp_jax.models.resnet import ResNet, stage_dilations
from psp_jax.models.vgg import VGG16, VGG16Classifier


def _shapes(module, x_shape, **kw):
  x = jax.ShapeDtypeStruct(x_shape, jnp.float32)
  return jax.eval_shape(lambda x: module.init_with_output(jax.random.key(0), x, **kw), x)


def _convs(model, x_shape):
  """{conv path: (strides, dilation)} of every nn.Conv the model runs."""
  seen = {}

  def grab(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.Conv):
      m = context.module
      seen["/".join(m.path)] = (tuple(m.strides), tuple(m.kernel_dilation))
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(grab):
    jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x_shape)))
  return seen


def _n_params(variables):
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables["params"]))


# ---- pooling -------------------------------------------------------------------------------

@pytest.mark.parametrize("length,kernel,stride,pad,ceil,expected", [
    (321, 3, 2, 1, True, 161), (161, 3, 2, 1, True, 81), (81, 3, 2, 1, True, 41),
    (513, 3, 2, 1, True, 257), (64, 3, 2, 1, True, 33), (64, 3, 2, 1, False, 32),
    (41, 3, 1, 1, True, 41), (224, 2, 2, 0, False, 112), (7, 2, 2, 0, True, 4),
    (5, 2, 2, 1, True, 3),  # ceil gives 4, but that window would start in the padding
])
def test_pooled_length_follows_the_caffe_pytorch_rule(length, kernel, stride, pad, ceil, expected):
  assert pooled_length(length, kernel, stride, pad, ceil) == expected


def test_pooling_rejects_bad_windows():
  with pytest.raises(ValueError, match="padding=2 must be at most half the kernel"):
    pooled_length(10, 3, 2, 2, True)
  with pytest.raises(ValueError, match="larger than the input"):
    pooled_length(2, 5, 1, 1, False)


def _oracle_pool(x, kernel, stride, pad, ceil, mode):
  """Direct window loop over a small (H, W) plane: max over valid pixels, or sum / the window's
  overlap with the zero-padded input [-pad, L + pad)."""
  h, w = x.shape
  oh, ow = (pooled_length(h, kernel, stride, pad, ceil), pooled_length(w, kernel, stride, pad, ceil))
  out = np.zeros((oh, ow))
  for i in range(oh):
    for j in range(ow):
      r0, c0 = i * stride - pad, j * stride - pad
      r1, c1 = min(r0 + kernel, h + pad), min(c0 + kernel, w + pad)
      win = x[max(r0, 0):min(r1, h), max(c0, 0):min(c1, w)]
      out[i, j] = win.max() if mode == "max" else win.sum() / ((r1 - r0) * (c1 - c0))
  return out


@pytest.mark.parametrize("shape", [(9, 7), (8, 11), (5, 5)])
@pytest.mark.parametrize("kernel,stride,pad,ceil", [(3, 2, 1, True), (3, 1, 1, False), (2, 2, 0, False),
                                                    (2, 2, 1, True)])
def test_pools_equal_a_direct_window_loop(shape, kernel, stride, pad, ceil):
  x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
  got_max = np.asarray(max_pool(jnp.asarray(x)[None, :, :, None], kernel, stride, pad, ceil))[0, :, :, 0]
  got_avg = np.asarray(avg_pool(jnp.asarray(x)[None, :, :, None], kernel, stride, pad, ceil))[0, :, :, 0]
  np.testing.assert_allclose(got_max, _oracle_pool(x, kernel, stride, pad, ceil, "max"), rtol=1e-6)
  np.testing.assert_allclose(got_avg, _oracle_pool(x, kernel, stride, pad, ceil, "avg"), rtol=1e-5, atol=1e-6)


def test_pools_match_torch_ceil_mode():
  torch = pytest.importorskip("torch", reason="PyTorch not installed: the torch cross-check of "
                              "ceil-mode pooling needs the optional 'convert' extra")
  x = np.random.default_rng(1).standard_normal((2, 3, 13, 10)).astype(np.float32)
  tx = torch.from_numpy(x)
  ref_max = torch.nn.functional.max_pool2d(tx, 3, 2, 1, ceil_mode=True).numpy().transpose(0, 2, 3, 1)
  ref_avg = torch.nn.functional.avg_pool2d(tx, 3, 2, 1, ceil_mode=True, count_include_pad=True)
  xj = jnp.asarray(x.transpose(0, 2, 3, 1))
  np.testing.assert_allclose(np.asarray(max_pool(xj, 3, 2, 1, True)), ref_max, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(avg_pool(xj, 3, 2, 1, True)),
                             ref_avg.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)


# ---- VGG-16 --------------------------------------------------------------------------------

@pytest.mark.parametrize("size,out", [(321, 41), (513, 65), (64, 9)])
def test_deeplab_vgg_output_stride_8_with_ceil_pools(size, out):
  feats, v = _shapes(VGG16("deeplab", pool5a=True), (1, size, size, 3))
  first = pooled_length(size, 3, 2, 1, True)
  assert feats["pool1"].shape[1] == first
  assert feats["pool3"].shape == (1, out, out, 256)
  assert feats["pool4"].shape == feats["pool5"].shape == feats["pool5a"].shape == (1, out, out, 512)
  assert feats["out"].shape == (1, out, out, 512)
  assert _n_params(v) == 14_714_688  # VGG-16's 13 convs


def test_deeplab_vgg_dilates_conv5_only_and_imagenet_layout_does_not():
  deeplab = _convs(VGG16("deeplab"), (1, 33, 33, 3))
  imagenet = _convs(VGG16("imagenet"), (1, 32, 32, 3))
  assert len(deeplab) == len(imagenet) == 13
  for name, (strides, dilation) in deeplab.items():
    assert strides == (1, 1)
    assert dilation == ((2, 2) if name.startswith("conv5") else (1, 1)), name
  assert all(d == (1, 1) for _, d in imagenet.values())


def test_imagenet_vgg_stride_32_and_the_published_parameter_count():
  feats, v = _shapes(VGG16Classifier(), (1, 224, 224, 3))
  assert feats["pool5"].shape == (1, 7, 7, 512)
  assert feats["logits"].shape == (1, 7, 7, 1000)
  assert _n_params(v) == 138_357_544  # torchvision's vgg16
  params = v["params"]
  assert params["head"]["fc6"]["kernel"].shape == (7, 7, 512, 4096)
  assert "pool5a" not in feats


def test_vgg_rejects_bad_fields():
  with pytest.raises(ValueError, match="VGG16.layout must be one of"):
    _shapes(VGG16("caffe"), (1, 32, 32, 3))
  with pytest.raises(ValueError, match="pool5a=True needs layout='deeplab'"):
    _shapes(VGG16("imagenet", pool5a=True), (1, 32, 32, 3))


# ---- ResNet layouts ------------------------------------------------------------------------

def test_msra_layout_strides_the_first_1x1_and_pools_with_ceil():
  tv = _convs(ResNet(50, stem="classic"), (1, 64, 64, 3))
  msra = _convs(ResNet(50, stem="classic", layout="msra"), (1, 64, 64, 3))
  assert tv["layer2_0/conv1"][0] == (1, 1) and tv["layer2_0/conv2"][0] == (2, 2)
  assert msra["layer2_0/conv1"][0] == (2, 2) and msra["layer2_0/conv2"][0] == (1, 1)
  assert msra["layer2_0/downsample_conv"][0] == (2, 2)
  f_tv, v_tv = _shapes(ResNet(50, stem="classic"), (1, 64, 64, 3))
  f_ms, v_ms = _shapes(ResNet(50, stem="classic", layout="msra"), (1, 64, 64, 3))
  assert f_tv["stem"].shape[1] == 16 and f_ms["stem"].shape[1] == 17  # floor vs ceil of 31/2
  assert f_ms["layer4"].shape == (1, 9, 9, 2048)
  shapes = lambda v: {k: a.shape for k, a in flatten_dict(v).items()}  # noqa: E731
  assert shapes(v_tv) == shapes(v_ms)  # a layout moves strides, not parameters


def test_msra_resnet101_at_321_gives_41():
  feats, _ = _shapes(ResNet(101, stem="classic", layout="msra"), (1, 321, 321, 3))
  assert feats["stem"].shape[1] == 81 and feats["layer4"].shape == (1, 41, 41, 2048)


def test_torchvision_dilation_pattern():
  blocks = (3, 4, 6, 3)
  assert stage_dilations(8, "torchvision", blocks) == [
      (1, [1, 1, 1]), (2, [1, 1, 1, 1]), (1, [1, 2, 2, 2, 2, 2]), (1, [2, 4, 4])]
  assert stage_dilations(16, "torchvision", blocks)[2:] == [(2, [1] * 6), (1, [1, 2, 2])]
  convs = _convs(ResNet(50, stem="classic", dilation_pattern="torchvision"), (1, 65, 65, 3))
  assert convs["layer4_0/conv2"] == ((1, 1), (2, 2)) and convs["layer4_1/conv2"][1] == (4, 4)
  assert convs["layer3_0/conv2"] == ((1, 1), (1, 1)) and convs["layer3_1/conv2"][1] == (2, 2)


@pytest.mark.parametrize("output_stride,expected", [(16, [2, 4, 8]), (8, [4, 8, 16])])
def test_multi_grid_scales_layer4_rates(output_stride, expected):
  dil = stage_dilations(output_stride, "semseg", (3, 4, 23, 3), multi_grid=(1, 2, 4))
  assert dil[3] == (1, expected)
  assert dil[2][1] == [2 if output_stride == 8 else 1] * 23
  convs = _convs(ResNet(101, stem="classic", output_stride=output_stride, multi_grid=(1, 2, 4)),
                 (1, 33, 33, 3))
  assert [convs[f"layer4_{i}/conv2"][1][0] for i in range(3)] == expected


def test_resnet_layout_errors_name_the_field():
  with pytest.raises(ValueError, match=r"multi_grid=\(1, 2, 4\) needs one positive factor per "
                                       r"layer4 block; this depth has 8 layer4 blocks"):
    stage_dilations(16, "semseg", (3, 30, 48, 8), multi_grid=(1, 2, 4))
  with pytest.raises(ValueError, match="layout='msra' needs a bottleneck depth"):
    _shapes(ResNet(18, layout="msra"), (1, 32, 32, 3))
  with pytest.raises(ValueError, match="ResNet layout must be one of"):
    _shapes(ResNet(50, layout="caffe"), (1, 32, 32, 3))
  with pytest.raises(ValueError, match="dilation_pattern must be one of"):
    stage_dilations(8, "dense", (3, 4, 6, 3))
  with pytest.raises(ValueError, match="output_stride must be 8, 16 or 32, got 4"):
    stage_dilations(4, "semseg", (3, 4, 6, 3))


def test_pools_are_differentiable():
  """Gradients flow to the max of each window (and evenly for the average)."""
  x = jnp.asarray(np.random.default_rng(2).standard_normal((1, 7, 6, 2)), jnp.float32)
  g_max = jax.grad(lambda x: jnp.sum(max_pool(x, 3, 2, 1, True)))(x)
  g_avg = jax.grad(lambda x: jnp.sum(avg_pool(x, 3, 1, 1)))(x)
  assert float(jnp.sum(g_max)) == pytest.approx(np.prod(max_pool(x, 3, 2, 1, True).shape))
  assert float(g_avg[0, 3, 3, 0]) == pytest.approx(1.0)  # an interior pixel is in 9 windows of 1/9
