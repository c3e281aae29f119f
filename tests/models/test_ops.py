"""Adaptive pooling and bilinear resize against hand-computed values and, where PyTorch is
installed, against F.interpolate (PyTorch semantics)."""
import jax.numpy as jnp
import numpy as np
import pytest

from psp_jax.models import ops
from psp_jax.models.ops import adaptive_pool, adaptive_pool_cells, resize_bilinear


def test_adaptive_pool_cells_overlap_like_pytorch():
  # L=5, n=3: [floor(0)=0, ceil(5/3)=2), [floor(5/3)=1, ceil(10/3)=4), [floor(10/3)=3, 5)
  assert adaptive_pool_cells(5, 3) == [(0, 2), (1, 4), (3, 5)]
  assert adaptive_pool_cells(6, 3) == [(0, 2), (2, 4), (4, 6)]
  assert adaptive_pool_cells(60, 6)[-1] == (50, 60)
  # More bins than positions: cells repeat (PyTorch allows it).
  assert adaptive_pool_cells(2, 3) == [(0, 1), (0, 2), (1, 2)]


def test_adaptive_avg_and_max_pool_hand_computed():
  x = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)
  avg = np.asarray(adaptive_pool(jnp.asarray(x), 3, "avg"))[0, :, :, 0]
  # Cell (0, 0) = rows 0-1, cols 0-1: mean(0, 1, 5, 6) = 3.
  assert avg[0, 0] == pytest.approx(3.0)
  # Cell (1, 2) = rows 1-3, cols 3-4: mean(8, 9, 13, 14, 18, 19) = 13.5.
  assert avg[1, 2] == pytest.approx(13.5)
  # Cell (2, 1) = rows 3-4, cols 1-3: mean(16, 17, 18, 21, 22, 23) = 19.5.
  assert avg[2, 1] == pytest.approx(19.5)
  mx = np.asarray(adaptive_pool(jnp.asarray(x), 3, "max"))[0, :, :, 0]
  np.testing.assert_array_equal(mx, [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
  one = np.asarray(adaptive_pool(jnp.asarray(x), 1, "avg"))
  assert one.shape == (1, 1, 1, 1) and one[0, 0, 0, 0] == pytest.approx(12.0)
  with pytest.raises(ValueError, match="mode"):
    adaptive_pool(jnp.asarray(x), 2, "median")


def test_resize_align_corners_true_hand_computed():
  # 1-D [0, 10] -> 3 points: corners kept, middle interpolated.
  x = jnp.asarray([[0.0, 10.0]]).reshape(1, 1, 2, 1)
  y = np.asarray(resize_bilinear(x, (1, 3), align_corners=True))[0, 0, :, 0]
  np.testing.assert_allclose(y, [0.0, 5.0, 10.0])
  # 3 -> 5 with align_corners: src = dst * 2/4 -> 0, .5, 1, 1.5, 2.
  x = jnp.asarray([1.0, 3.0, 7.0]).reshape(1, 3, 1, 1)
  y = np.asarray(resize_bilinear(x, (5, 1), align_corners=True))[0, :, 0, 0]
  np.testing.assert_allclose(y, [1.0, 2.0, 3.0, 5.0, 7.0])


def test_resize_align_corners_false_hand_computed():
  # 2 -> 4 half-pixel: src = (dst + .5) / 2 - .5 = -.25 (clamped 0), .25, .75, 1.25 (clamped hi).
  x = jnp.asarray([0.0, 8.0]).reshape(1, 1, 2, 1)
  y = np.asarray(resize_bilinear(x, (1, 4), align_corners=False))[0, 0, :, 0]
  np.testing.assert_allclose(y, [0.0, 2.0, 6.0, 8.0])
  # Downscaling 4 -> 2 without antialiasing: src = 0.5, 2.5 -> averages of neighbours.
  x = jnp.asarray([0.0, 2.0, 4.0, 100.0]).reshape(1, 4, 1, 1)
  y = np.asarray(resize_bilinear(x, (2, 1), align_corners=False))[0, :, 0, 0]
  np.testing.assert_allclose(y, [1.0, 52.0])


def test_resize_2d_hand_computed():
  # f(y, x) = 20 y + 10 x is linear, so bilinear interpolation gives 20 src_y + 10 src_x exactly.
  x = jnp.asarray([[0.0, 10.0], [20.0, 30.0]]).reshape(1, 2, 2, 1)
  y = np.asarray(resize_bilinear(x, (3, 3), align_corners=True))[0, :, :, 0]
  np.testing.assert_allclose(y, [[0, 5, 10], [10, 15, 20], [20, 25, 30]])
  # Half-pixel 2 -> 4 on both axes: src = 0 (clamped), .25, .75, 1 (clamped).
  y = np.asarray(resize_bilinear(x, (4, 4), align_corners=False))[0, :, :, 0]
  np.testing.assert_allclose(y, [[0.0, 2.5, 7.5, 10.0], [5.0, 7.5, 12.5, 15.0],
                                 [15.0, 17.5, 22.5, 25.0], [20.0, 22.5, 27.5, 30.0]])
  # 2 x 2 -> 1 x 3 with align_corners: the one row sits on row 0.
  y = np.asarray(resize_bilinear(x, (1, 3), align_corners=True))[0, :, :, 0]
  np.testing.assert_allclose(y, [[0.0, 5.0, 10.0]])


def test_same_size_is_the_identity_and_a_constant_stays_constant():
  x = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype(np.float32)
  for ac in (True, False):
    np.testing.assert_array_equal(np.asarray(resize_bilinear(jnp.asarray(x), (5, 7), ac)), x)
    const = resize_bilinear(jnp.full((1, 13, 6, 2), 3.5, jnp.float32), (97, 4), ac)
    np.testing.assert_allclose(np.asarray(const), 3.5, rtol=1e-6)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("size", [(9, 4), (3, 11), (1, 3)])
def test_resize_matches_torch_interpolate(align_corners, size):
  torch = pytest.importorskip("torch", reason="PyTorch (the optional convert extra) is the "
                                              "reference for F.interpolate")
  x = np.random.default_rng(1).normal(size=(2, 5, 7, 3)).astype(np.float32)
  ref = torch.nn.functional.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2)), size=size,
                                        mode="bilinear", align_corners=align_corners)
  y = np.asarray(resize_bilinear(jnp.asarray(x), size, align_corners))
  np.testing.assert_allclose(y, ref.numpy().transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)


def test_resize_rejects_wrong_rank():
  with pytest.raises(ValueError, match="rank 4"):
    resize_bilinear(jnp.zeros((3, 4, 5)), (2, 2), True)


def _conv_count(fn, *args) -> int:
  import jax
  return sum(e.primitive.name == "conv_general_dilated" for e in jax.make_jaxpr(fn)(*args).jaxpr.eqns)


def test_deep_convolutions_are_split_by_input_channel_and_agree():
  """ops.conv_general_dilated: a 3x3 convolution of 2048 input channels runs as 4 of 512
  (summed), with the plain convolution's values and gradients; narrower or 1x1 ones, and all
  of them with the switch off, are the plain convolution itself (the same bits)."""
  import jax
  from jax import lax
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(1, 6, 5, 2048)).astype(np.float32))
  k = jnp.asarray((rng.normal(size=(3, 3, 2048, 8)) * 0.02).astype(np.float32))
  args = dict(window_strides=(1, 1), padding=((2, 2), (2, 2)), rhs_dilation=(2, 2),
              dimension_numbers=("NHWC", "HWIO", "NHWC"))
  ours = lambda a, b: ops.conv_general_dilated(a, b, **args)  # noqa: E731
  plain = lambda a, b: lax.conv_general_dilated(a, b, **args)  # noqa: E731
  assert _conv_count(ours, x, k) == 2048 // ops.CONV_SPLIT_CHUNK == 4
  np.testing.assert_allclose(ours(x, k), plain(x, k), rtol=1e-5, atol=1e-5)
  g_ours = jax.grad(lambda a, b: (ours(a, b) ** 2).sum(), argnums=(0, 1))(x, k)
  g_plain = jax.grad(lambda a, b: (plain(a, b) ** 2).sum(), argnums=(0, 1))(x, k)
  for a, b in zip(g_ours, g_plain):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))
  narrow, k_narrow = x[..., :1024], k[:, :, :1024]
  assert _conv_count(ours, narrow, k_narrow) == 1
  assert np.array_equal(ours(narrow, k_narrow), plain(narrow, k_narrow))
  one_by_one = k[1:2, 1:2]
  assert _conv_count(ours, x, one_by_one) == 1


def test_the_split_switch_turns_it_off(monkeypatch):
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(1, 4, 4, 2048)).astype(np.float32))
  k = jnp.asarray((rng.normal(size=(3, 3, 2048, 4)) * 0.02).astype(np.float32))
  # the switch is read when a function is traced (JAX caches traces: a new function each time)
  fn = lambda: lambda a, b: ops.conv_general_dilated(  # noqa: E731
      a, b, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  assert _conv_count(fn(), x, k) == 4
  monkeypatch.setattr(ops, "CONV_SPLIT_MIN_CHANNELS", 0)
  assert _conv_count(fn(), x, k) == 1


def test_the_pspnet_head_runs_split(monkeypatch):
  """PSPNet-50's 3x3 4096->512 head (the largest convolution) takes the split path: the
  traced forward has 7 more convolutions than plain convolutions would give."""
  import jax
  import jax.extend.core
  from psp_jax.models.build import build_model
  model = build_model({"name": "pspnet", "num_classes": 3, "depth": 50})
  x = jnp.zeros((1, 33, 33, 3), jnp.float32)
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))

  def convs():
    apply = lambda v, a: model.apply(v, a, train=False)  # noqa: E731  (a new trace each time)
    found = 0
    def walk(jaxpr):
      nonlocal found
      for e in jaxpr.eqns:
        found += e.primitive.name == "conv_general_dilated"
        for sub in jax.extend.core.jaxprs_in_params(e.params):
          walk(sub)
    walk(jax.make_jaxpr(apply)(variables, x).jaxpr)
    return found
  split = convs()
  monkeypatch.setattr(ops, "CONV_SPLIT_MIN_CHANNELS", 0)
  plain = convs()
  assert split - plain == 4096 // ops.CONV_SPLIT_CHUNK - 1


@pytest.mark.parametrize("strides,padding", [((1, 1), ((0, 0), (0, 0))), ((2, 2), "SAME"),
                                             ((2, 2), "VALID")])
@pytest.mark.parametrize("forward_dot", [False, True])
def test_large_pointwise_convolutions_take_dot_gradients(strides, padding, forward_dot, monkeypatch):
  """A 1x1 convolution with >= POINTWISE_DOT_GRAD_MIN_WEIGHTS weights: XLA's convolution
  forward (the same bits), gradients as matrix products that agree with XLA's convolution
  gradients (odd sizes, so a stride-2 input has rows the output never reads: their gradient
  is zero). With POINTWISE_DOT_MIN_WEIGHTS too, the forward is a matrix product as well, within
  float rounding of the convolution, and its gradients (autodiff's) agree the same way."""
  import jax
  from jax import lax
  monkeypatch.setattr(ops, "POINTWISE_DOT_MIN_WEIGHTS", 512 * 512 if forward_dot else 0)
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(2, 7, 9, 512)).astype(np.float32))
  k = jnp.asarray((rng.normal(size=(1, 1, 512, 512)) * 0.05).astype(np.float32))
  args = dict(window_strides=strides, padding=padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  ours = lambda a, b: ops.conv_general_dilated(a, b, **args)  # noqa: E731
  plain = lambda a, b: lax.conv_general_dilated(a, b, **args)  # noqa: E731
  eqns = [e.primitive.name for e in jax.make_jaxpr(ours)(x, k).jaxpr.eqns]
  if forward_dot:
    assert "dot_general" in eqns and "conv_general_dilated" not in eqns, eqns
    np.testing.assert_allclose(ours(x, k), plain(x, k), rtol=1e-5, atol=1e-5)
  else:
    assert "custom_vjp_call" in eqns, eqns
    assert np.array_equal(ours(x, k), plain(x, k))
  loss = lambda f: lambda a, b: (f(a, b) ** 3).sum()  # noqa: E731
  g_ours = jax.grad(loss(ours), argnums=(0, 1))(x, k)
  g_plain = jax.grad(loss(plain), argnums=(0, 1))(x, k)
  for a, b in zip(g_ours, g_plain):
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.abs(b).max()))
  if strides == (2, 2):
    assert float(jnp.abs(g_ours[0][:, 1::2]).max()) == 0.0


def test_pointwise_dot_gradients_only_above_the_threshold_and_switch(monkeypatch):
  """Narrow 1x1 kernels (every mini model's) and 3x3 kernels stay the plain convolution; the
  switches at 0 turn the rewrites off: the forward dot first, then the dot gradients."""
  import jax
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(1, 4, 4, 512)).astype(np.float32))
  fn = lambda: lambda a, b: ops.conv_general_dilated(  # noqa: E731  (a new trace each time)
      a, b, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  prims = lambda k: [e.primitive.name for e in jax.make_jaxpr(fn())(x, k).jaxpr.eqns]  # noqa: E731
  assert "dot_general" in prims(jnp.zeros((1, 1, 512, 512)))
  assert prims(jnp.zeros((1, 1, 512, 256))) == ["conv_general_dilated"]
  monkeypatch.setattr(ops, "POINTWISE_DOT_MIN_WEIGHTS", 0)
  assert prims(jnp.zeros((1, 1, 512, 512))) == ["custom_vjp_call"]
  assert prims(jnp.zeros((1, 1, 512, 256))) == ["conv_general_dilated"]  # 131072 < 262144
  monkeypatch.setattr(ops, "TAP_DOT_GRAD_MIN_WEIGHTS", 0)  # (3x3 kernels have their own rule)
  assert prims(jnp.zeros((3, 3, 512, 512))) == ["conv_general_dilated"]
  monkeypatch.setattr(ops, "POINTWISE_DOT_GRAD_MIN_WEIGHTS", 0)
  assert prims(jnp.zeros((1, 1, 512, 512))) == ["conv_general_dilated"]


@pytest.mark.parametrize("forward_dot", [False, True])
def test_pointwise_dot_gradients_under_shard_map_sum_over_devices(forward_dot, monkeypatch):
  """In the data-parallel step a replicated kernel meets per-device inputs: the kernel
  gradient is the sum over devices, as with the plain convolution (custom gradients or the
  forward dot's own)."""
  import jax
  from jax import lax
  from jax.sharding import PartitionSpec as P
  monkeypatch.setattr(ops, "POINTWISE_DOT_MIN_WEIGHTS", 512 * 512 if forward_dot else 0)
  devices = jax.devices()[:2]
  if len(devices) < 2:
    pytest.skip("needs 2 devices (tests run with 8 simulated CPU devices)")
  mesh = jax.sharding.Mesh(np.array(devices), ("data",))
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(2, 3, 3, 512)).astype(np.float32))
  k = jnp.asarray((rng.normal(size=(1, 1, 512, 512)) * 0.05).astype(np.float32))

  def grads(conv):
    def local(a, b):
      g = jax.grad(lambda b: (conv(a, b, (1, 1), "VALID",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC")) ** 2).sum())(b)
      return lax.psum(g, "data")
    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P("data"), P()), out_specs=P()))(x, k)
  np.testing.assert_allclose(grads(ops.conv_general_dilated), grads(lax.conv_general_dilated),
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("special", [None, np.nan, np.inf, -np.inf])
def test_materialize_is_the_identity_bit_for_bit(special):
  """`materialize` returns its input exactly, whatever the first element (its index is read from
  it: 0 * NaN is NaN), gradients included, and the update stays in the jitted program."""
  import jax
  rng = np.random.default_rng(5)
  x = rng.normal(size=(2, 3, 4, 1024)).astype(np.float32)
  if special is not None:
    x[0, 0, 0, 0] = special
  x = jnp.asarray(x)
  out = jax.jit(ops.materialize)(x)
  assert np.array_equal(np.asarray(out), np.asarray(x), equal_nan=True)
  hlo = jax.jit(ops.materialize).lower(x).compile().as_text()
  assert "dynamic-update-slice" in hlo or "dynamic_update_slice" in hlo
  if special is None:
    w = jnp.asarray(rng.normal(size=x.shape).astype(np.float32))
    g = jax.grad(lambda a: (ops.materialize(a) * w).sum())(x)
    assert np.array_equal(np.asarray(g), np.asarray(w))


def test_materialize_only_wide_arrays_and_switch(monkeypatch):
  """Below MATERIALIZE_MIN_CHANNELS (every mini model's blocks) and with the switch at 0 the
  array passes through untouched (no operation in the trace)."""
  import jax
  prims = lambda shape: [e.primitive.name for e in  # noqa: E731  (a new trace each time)
                         jax.make_jaxpr(lambda a: ops.materialize(a))(jnp.zeros(shape)).jaxpr.eqns]
  assert "dynamic_update_slice" in prims((1, 2, 2, 1024))
  assert prims((1, 2, 2, 512)) == []
  monkeypatch.setattr(ops, "MATERIALIZE_MIN_CHANNELS", 0)
  assert prims((1, 2, 2, 1024)) == []


def test_resnet50_blocks_materialize_their_wide_outputs():
  """PSPNet-50's residual blocks of layer3 (1024 channels) and layer4 (2048) materialize their
  outputs: 6 + 3 of them; layer1/2 (256/512 channels) do not."""
  import jax
  from psp_jax.models.resnet import ResNet
  model = ResNet(50, output_stride=8)
  x = jnp.zeros((1, 33, 33, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  found = []

  def walk(jaxpr):
    for e in jaxpr.eqns:
      if e.primitive.name == "dynamic_update_slice":
        found.append(e.outvars[0].aval.shape[-1])
      for v in e.params.values():
        for sub in (v if isinstance(v, (list, tuple)) else [v]):
          if hasattr(sub, "jaxpr"):
            walk(sub.jaxpr if hasattr(sub.jaxpr, "eqns") else sub)
          elif hasattr(sub, "eqns"):
            walk(sub)
  walk(jax.make_jaxpr(lambda v, a: model.apply(v, a, train=False))(variables, x).jaxpr)
  assert sorted(found) == [1024] * 6 + [2048] * 3


def _tap_conv_args(padding, dilation):
  return dict(window_strides=(1, 1), padding=padding, rhs_dilation=dilation,
              dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("kernel,padding,dilation", [
    ((3, 3), ((1, 1), (1, 1)), (1, 1)),
    ((3, 3), ((4, 4), (4, 4)), (4, 4)),   # layer4's dilated 3x3
    ((3, 3), "SAME", (2, 3)),
    ((3, 3), "VALID", (1, 1)),
    ((3, 3), ((0, 2), (1, 0)), (1, 1)),   # asymmetric padding
    ((1, 3), ((0, 0), (2, 2)), (1, 2)),   # a non-square kernel
])
def test_tap_dot_weight_gradients_match_the_convolution(kernel, padding, dilation):
  """A stride-1 convolution with a spatial kernel of >= TAP_DOT_GRAD_MIN_WEIGHTS weights: the
  forward is XLA's convolution bit for bit, the input gradient is autodiff's, and the weight
  gradient (one dot per kernel tap) agrees with XLA's convolution gradient."""
  import jax
  from jax import lax
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.normal(size=(2, 9, 7, 256)).astype(np.float32))
  k = jnp.asarray((rng.normal(size=kernel + (256, 256)) * 0.05).astype(np.float32))
  args = _tap_conv_args(padding, dilation)
  ours = lambda a, b: ops.conv_general_dilated(a, b, **args)  # noqa: E731
  plain = lambda a, b: lax.conv_general_dilated(a, b, **args)  # noqa: E731
  assert [e.primitive.name for e in jax.make_jaxpr(ours)(x, k).jaxpr.eqns] == ["custom_vjp_call"]
  assert np.array_equal(jax.jit(ours)(x, k), jax.jit(plain)(x, k))
  loss = lambda f: lambda a, b: (f(a, b) ** 3).sum()  # noqa: E731
  g_ours = jax.jit(jax.grad(loss(ours), argnums=(0, 1)))(x, k)
  g_plain = jax.jit(jax.grad(loss(plain), argnums=(0, 1)))(x, k)
  for a, b in zip(g_ours, g_plain):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.abs(b).max()))


def test_tap_dot_weight_gradients_of_a_split_convolution(monkeypatch):
  """PSPNet's head (>= CONV_SPLIT_MIN_CHANNELS inputs): the forward stays the split sum, and
  both gradients agree with the single convolution's."""
  import jax
  from jax import lax
  monkeypatch.setattr(ops, "CONV_SPLIT_MIN_CHANNELS", 1024)
  monkeypatch.setattr(ops, "CONV_SPLIT_CHUNK", 256)
  rng = np.random.default_rng(7)
  x = jnp.asarray(rng.normal(size=(1, 5, 6, 1024)).astype(np.float32))
  k = jnp.asarray((rng.normal(size=(3, 3, 1024, 64)) * 0.05).astype(np.float32))
  args = _tap_conv_args(((1, 1), (1, 1)), (1, 1))
  ours = lambda a, b: ops.conv_general_dilated(a, b, **args)  # noqa: E731
  plain = lambda a, b: lax.conv_general_dilated(a, b, **args)  # noqa: E731
  split_prims = [e.primitive.name for e in jax.make_jaxpr(ours)(x, k).jaxpr.eqns[0].params[
      "call_jaxpr"].jaxpr.eqns]
  assert split_prims.count("conv_general_dilated") == 1024 // 256, split_prims
  np.testing.assert_allclose(ours(x, k), plain(x, k), rtol=1e-5, atol=1e-4)
  g_ours = jax.grad(lambda a, b: (ours(a, b) ** 2).sum(), argnums=(0, 1))(x, k)
  g_plain = jax.grad(lambda a, b: (plain(a, b) ** 2).sum(), argnums=(0, 1))(x, k)
  for a, b in zip(g_ours, g_plain):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.abs(b).max()))


def test_tap_dot_weight_gradients_only_where_they_apply(monkeypatch):
  """Narrow kernels (every mini model's: 128x128 at most), 1x1 kernels, strided convolutions
  and input dilation keep the plain convolution; the switch at 0 turns the rule off."""
  import jax
  x = jnp.zeros((1, 8, 8, 256))

  def prims(k, **kw):
    args = dict(window_strides=(1, 1), padding="SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    args.update(kw)
    fn = lambda a, b: ops.conv_general_dilated(a, b, **args)  # noqa: E731
    return [e.primitive.name for e in jax.make_jaxpr(fn)(x, k).jaxpr.eqns]
  assert prims(jnp.zeros((3, 3, 256, 256))) == ["custom_vjp_call"]
  assert prims(jnp.zeros((3, 3, 256, 128))) == ["conv_general_dilated"]   # 32768 < 65536
  assert prims(jnp.zeros((3, 3, 256, 256)), window_strides=(2, 2)) == ["conv_general_dilated"]
  assert prims(jnp.zeros((3, 3, 256, 256)), lhs_dilation=(2, 2),
               padding=((1, 1), (1, 1))) == ["conv_general_dilated"]
  assert prims(jnp.zeros((1, 1, 256, 256))) == ["conv_general_dilated"]   # below the 1x1 rules
  monkeypatch.setattr(ops, "TAP_DOT_GRAD_MIN_WEIGHTS", 0)
  assert prims(jnp.zeros((3, 3, 256, 256))) == ["conv_general_dilated"]


def test_tap_dot_weight_gradients_are_off_where_xla_compiles_its_own_convolutions(monkeypatch):
  """Traced inside xla_own_convolutions() (as the train steps are where they compile with
  XLA's own CPU convolutions) the plain convolution's gradient is kept; outside it, and with
  TAP_DOT_GRAD_WITH_XLA_CONVOLUTIONS=1, the tap dots apply."""
  import jax
  x, k = jnp.zeros((1, 8, 8, 256)), jnp.zeros((3, 3, 256, 256))

  def prims():  # a new function each time: JAX caches the traces of one function
    fn = lambda a, b: ops.conv_general_dilated(  # noqa: E731
        a, b, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return [e.primitive.name for e in jax.make_jaxpr(fn)(x, k).jaxpr.eqns]
  with ops.xla_own_convolutions():
    assert not ops.tap_dot_grads_on()
    assert prims() == ["conv_general_dilated"]
    with ops.xla_own_convolutions(False):
      assert prims() == ["custom_vjp_call"]
    assert prims() == ["conv_general_dilated"]
  assert ops.tap_dot_grads_on() and prims() == ["custom_vjp_call"]
  monkeypatch.setattr(ops, "TAP_DOT_GRAD_WITH_XLA_CONVOLUTIONS", 1)
  with ops.xla_own_convolutions():
    assert prims() == ["custom_vjp_call"]


def test_tap_dot_weight_gradients_are_off_where_they_do_not_pay_on_the_cpu(monkeypatch):
  """Traced inside tap_dot_grads_pay(False) (as the train steps are on the CPUs of
  xla_cpu.tap_dot_grads_pay) the plain gradient is kept, unless TAP_DOT_GRAD_CPU_RULE is 0."""
  import jax
  x, k = jnp.zeros((1, 8, 8, 256)), jnp.zeros((3, 3, 256, 256))

  def prims():  # a new function each time: JAX caches the traces of one function
    fn = lambda a, b: ops.conv_general_dilated(  # noqa: E731
        a, b, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return [e.primitive.name for e in jax.make_jaxpr(fn)(x, k).jaxpr.eqns]
  with ops.tap_dot_grads_pay(False):
    assert not ops.tap_dot_grads_on() and prims() == ["conv_general_dilated"]
    with ops.tap_dot_grads_pay():
      assert prims() == ["custom_vjp_call"]
  assert prims() == ["custom_vjp_call"]
  monkeypatch.setattr(ops, "TAP_DOT_GRAD_CPU_RULE", 0)
  with ops.tap_dot_grads_pay(False):
    assert prims() == ["custom_vjp_call"]
  with ops.xla_own_convolutions(), ops.tap_dot_grads_pay(False):
    assert prims() == ["conv_general_dilated"]  # XLA's own convolutions: off whatever the rule


def test_tap_dot_weight_gradients_under_shard_map_sum_over_devices():
  """A replicated 3x3 kernel meeting per-device inputs: its gradient is summed over devices."""
  import jax
  from jax import lax
  from jax.sharding import PartitionSpec as P
  devices = jax.devices()[:2]
  if len(devices) < 2:
    pytest.skip("needs 2 devices (tests run with 8 simulated CPU devices)")
  mesh = jax.sharding.Mesh(np.array(devices), ("data",))
  rng = np.random.default_rng(8)
  x = jnp.asarray(rng.normal(size=(2, 5, 5, 256)).astype(np.float32))
  k = jnp.asarray((rng.normal(size=(3, 3, 256, 256)) * 0.05).astype(np.float32))

  def grads(conv):
    def local(a, b):
      g = jax.grad(lambda b: (conv(a, b, **_tap_conv_args("SAME", (2, 2))) ** 2).sum())(b)
      return lax.psum(g, "data")
    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P("data"), P()), out_specs=P()))(x, k)
  np.testing.assert_allclose(grads(ops.conv_general_dilated), grads(lax.conv_general_dilated),
                             rtol=1e-4, atol=1e-4)


def test_parse_switches_names_the_flag_and_the_switches():
  """The benchmarks' NAME=INT switches: every name in SWITCHES is a module integer; a bad item
  is refused naming its flag."""
  assert all(isinstance(getattr(ops, name), int) for name in ops.SWITCHES)
  assert ops.parse_switches(["TAP_DOT_GRAD_MIN_WEIGHTS=0", "CONV_SPLIT_CHUNK=256"], "--ops") == {
      "TAP_DOT_GRAD_MIN_WEIGHTS": 0, "CONV_SPLIT_CHUNK": 256}
  for bad in ("TAP_DOT_GRAD_MIN_WEIGHTS", "NOT_A_SWITCH=1", "CONV_SPLIT_CHUNK=-1"):
    with pytest.raises(ValueError, match=r"--before .*TAP_DOT_GRAD_MIN_WEIGHTS"):
      ops.parse_switches([bad], "--before")


# --- max pooling as window slices (MAX_POOL_SLICES_MIN_CHANNELS) ---------------------------------
def _plain_max_pool(x, kernel, stride, pads):
  from jax import lax
  return lax.reduce_window(x, -jnp.inf, lax.max, (1, kernel, kernel, 1), (1, stride, stride, 1),
                           ((0, 0),) + tuple(pads) + ((0, 0),))


@pytest.mark.parametrize("kernel,stride,pads", [
    (3, 2, ((1, 1), (1, 1))),   # ResNet's stem pool
    (3, 2, ((1, 2), (1, 1))),   # ceil rounding: an overhang at the bottom
    (3, 1, ((1, 1), (1, 1))),   # DeepLab's pool4/pool5
    (2, 2, ((0, 0), (0, 0))),   # VGG's pools: windows do not overlap
])
def test_max_pool_slices_match_xla_pooling_forward_bit_for_bit_and_gradient(kernel, stride, pads):
  """Wide inputs: the same maxima bit for bit; the gradient is XLA's (each window's to its first
  maximum, so ties after a ReLU go where XLA and PyTorch send them), exact where windows do not
  overlap and up to the order of the sums where they do."""
  import jax
  rng = np.random.default_rng(11)
  x = jnp.asarray(np.maximum(rng.normal(size=(2, 9, 10, 128)), 0).astype(np.float32))  # ReLU'd: ties at 0
  ours = lambda a: ops.max_pool_window(a, kernel, stride, pads)  # noqa: E731
  plain = lambda a: _plain_max_pool(a, kernel, stride, pads)  # noqa: E731
  assert "reduce_window" not in str(jax.make_jaxpr(ours)(x))
  y, y_plain = jax.jit(ours)(x), jax.jit(plain)(x)
  assert y.shape == y_plain.shape and np.array_equal(y, y_plain)
  g = jnp.asarray(rng.normal(size=y.shape).astype(np.float32))
  d = jax.jit(lambda a, g: jax.vjp(ours, a)[1](g)[0])(x, g)
  d_plain = jax.jit(lambda a, g: jax.vjp(plain, a)[1](g)[0])(x, g)
  if kernel == stride:
    assert np.array_equal(d, d_plain)
  np.testing.assert_allclose(d, d_plain, rtol=1e-6, atol=1e-6)


def test_max_pool_slices_give_a_tied_window_s_gradient_to_its_first_maximum():
  import jax
  x = jnp.ones((1, 4, 4, 128))
  d = jax.grad(lambda a: ops.max_pool_window(a, 2, 2, ((0, 0), (0, 0))).sum())(x)
  expected = np.zeros((4, 4))
  expected[::2, ::2] = 1.0  # the top-left element of each 2x2 window
  np.testing.assert_array_equal(np.asarray(d[0, :, :, 0]), expected)
  np.testing.assert_array_equal(d, jax.grad(lambda a: _plain_max_pool(a, 2, 2, ((0, 0), (0, 0))).sum())(x))


def test_max_pool_slices_only_for_wide_inputs_and_switch(monkeypatch):
  """Narrow inputs (every mini model's pools: 64 channels at most) keep XLA's pooling, as does
  everything with the switch at 0; the ResNet stem and the VGG pools go through it."""
  import jax
  from psp_jax.models.pooling import max_pool
  pads = ((1, 1), (1, 1))
  assert "reduce_window" in str(jax.make_jaxpr(lambda a: ops.max_pool_window(a, 3, 2, pads))(jnp.zeros((1, 8, 8, 64))))
  wide = jnp.zeros((1, 8, 8, 128))
  assert "reduce_window" not in str(jax.make_jaxpr(lambda a: max_pool(a, 3, 2, padding=1, ceil=True))(wide))
  monkeypatch.setattr(ops, "MAX_POOL_SLICES_MIN_CHANNELS", 0)
  assert "reduce_window" in str(jax.make_jaxpr(lambda a: ops.max_pool_window(a, 3, 2, pads))(wide))
