"""SegNet and SegNet-Basic (psp_jax.models.segnet): the spec's parameter counts and shape chain
(full size through jax.eval_shape only), the prototxt's layer names and order, Caffe's
initialisation, SegNet-Basic's input LRN and ReLU-free decoder, tiny forwards at odd sizes,
and the two registry entries."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psp_jax.models import build
from psp_jax.models.lrn import local_response_norm
from psp_jax.models.segnet import SegNet, SegNetBasic, msra_init
from psp_jax.preprocessing import Preprocessing

CAMVID_HW = (360, 480)


def _param_count(tree) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def _abstract(model, hw=CAMVID_HW):
  x = jnp.zeros((1, *hw, 3))
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  out, state = jax.eval_shape(lambda v, x: model.apply(v, x, mutable=["intermediates"]), variables, x)
  pools = [state["intermediates"][f"pool{s}"][0].shape[1:3] for s in range(1, len(state["intermediates"]) + 1)]
  return variables, out, pools


def test_segnet_parameter_count_and_shape_chain():
  variables, out, pools = _abstract(SegNet(num_classes=11))
  assert _param_count(variables["params"]) == 29_449_355
  assert pools == [(180, 240), (90, 120), (45, 60), (23, 30), (12, 15)]
  assert out.shape == (1, 360, 480, 11) and out.dtype == jnp.float32


def test_segnet_basic_parameter_count_and_shape_chain():
  variables, out, pools = _abstract(SegNetBasic(num_classes=11))
  assert _param_count(variables["params"]) == 1_416_587
  assert pools == [(180, 240), (90, 120), (45, 60), (23, 30)]
  assert out.shape == (1, 360, 480, 11)


def test_layer_names_and_widths_follow_the_prototxts():
  params = _abstract(SegNet(num_classes=11))[0]["params"]
  enc = {"conv1_1": 64, "conv1_2": 64, "conv2_1": 128, "conv2_2": 128, "conv3_1": 256, "conv3_2": 256,
         "conv3_3": 256, "conv4_1": 512, "conv4_2": 512, "conv4_3": 512, "conv5_1": 512, "conv5_2": 512,
         "conv5_3": 512}
  dec = {"conv5_3_D": 512, "conv5_2_D": 512, "conv5_1_D": 512, "conv4_3_D": 512, "conv4_2_D": 512,
         "conv4_1_D": 256, "conv3_3_D": 256, "conv3_2_D": 256, "conv3_1_D": 128, "conv2_2_D": 128,
         "conv2_1_D": 64, "conv1_2_D": 64}
  convs = {**enc, **dec, "conv1_1_D": 11}
  expected = set(convs) | {f"{n}_bn" for n in {**enc, **dec}}  # the classifier has no BN
  assert set(params) == expected
  for name, width in convs.items():
    kernel = params[name]["kernel"].shape
    assert kernel[:2] == (3, 3) and kernel[3] == width and params[name]["bias"].shape == (width,)
  assert params["conv1_1_D"]["kernel"].shape == (3, 3, 64, 11)
  basic = _abstract(SegNetBasic(num_classes=11))[0]["params"]
  names = [f"conv{s}" for s in range(1, 5)] + [f"conv_decode{s}" for s in range(1, 5)]
  assert set(basic) == set(names) | {f"{n}_bn" for n in names} | {"conv_classifier"}
  assert all(basic[n]["kernel"].shape == (7, 7, basic[n]["kernel"].shape[2], 64) for n in names)
  assert basic["conv_classifier"]["kernel"].shape == (1, 1, 64, 11)


def _run_tiny(model, x):
  """init, eval forward (with the pooled sizes and every module's output) and a train-mode
  forward of `model` on x, in ONE compiled program (CPU compiles dominate these tests)."""
  def run(key, x):
    variables = model.init(key, x, return_aux=True)
    logits, state = model.apply(variables, x, capture_intermediates=True, mutable=["intermediates"])
    (train_logits, aux), updates = model.apply(variables, x, train=True, return_aux=True,
                                               mutable=["batch_stats"])
    assert aux is None
    return variables, logits, state["intermediates"], train_logits, updates["batch_stats"]
  # an 'rbg' key: XLA compiles its generator several times faster than threefry's on CPU
  return jax.jit(run)(jax.random.key(0, impl="rbg"), x)


@pytest.fixture(scope="module")
def tiny_basic():
  model = SegNetBasic(num_classes=3, width=4)
  x = jnp.asarray(np.random.default_rng(1).uniform(0, 255, size=(2, 13, 11, 3)).astype(np.float32))
  return model, x, _run_tiny(model, x)


def test_caffe_initialisation(tiny_basic):
  params = tiny_basic[2][0]["params"]
  for name in ("conv2", "conv_decode1"):
    np.testing.assert_array_equal(np.asarray(params[f"{name}_bn"]["scale"]), 1.0)
    np.testing.assert_allclose(np.asarray(params[f"{name}_bn"]["bias"]), 0.001)
    np.testing.assert_array_equal(np.asarray(params[name]["bias"]), 0.0)
  # "msra": N(0, 2 / fan_in); 200k samples of a 7x7 64 -> 64 kernel -> std within 1%
  kernel = np.asarray(jax.jit(lambda k: msra_init(k, (7, 7, 64, 64)))(jax.random.key(3)))
  assert float(np.std(kernel)) == pytest.approx(np.sqrt(2.0 / (7 * 7 * 64)), rel=0.01)
  assert abs(float(np.mean(kernel))) < 1e-3


def test_basic_decoder_has_no_relu_and_feeds_the_classifier(tiny_basic):
  _, _, (variables, logits, inter, _, _) = tiny_basic
  bn_out = inter["conv_decode1_bn"]["__call__"][0]
  assert float(jnp.min(bn_out)) < 0  # negatives reach the classifier: no ReLU after the BN
  w, b = variables["params"]["conv_classifier"]["kernel"], variables["params"]["conv_classifier"]["bias"]
  np.testing.assert_allclose(np.asarray(logits), np.asarray(bn_out @ w[0, 0] + b), rtol=1e-5, atol=1e-5)
  # the input LRN feeds conv1
  x = tiny_basic[1]
  np.testing.assert_allclose(np.asarray(inter["conv1"]["__call__"][0]),
                             np.asarray(jax.lax.conv_general_dilated(
                                 local_response_norm(x), variables["params"]["conv1"]["kernel"], (1, 1),
                                 ((3, 3), (3, 3)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
                                 + variables["params"]["conv1"]["bias"]), rtol=1e-4, atol=1e-4)


def _check_tiny(model, x, result):
  variables, logits, _, train_logits, batch_stats = result
  assert logits.shape == (*x.shape[:3], model.num_classes) and logits.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(logits))) and train_logits.shape == logits.shape
  changed = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), batch_stats, variables["batch_stats"])
  assert all(jax.tree_util.tree_leaves(changed))  # train mode uses (and updates) batch statistics
  with pytest.raises(ValueError, match="in_channels=3"):
    jax.eval_shape(model.apply, variables, x[..., :2])


def test_tiny_forward_odd_size_train_and_aux(tiny_basic):
  _check_tiny(*tiny_basic)
  model = SegNet(num_classes=4, width=2)
  x = jnp.asarray(np.random.default_rng(2).uniform(0, 255, size=(1, 19, 23, 3)).astype(np.float32))
  _check_tiny(model, x, _run_tiny(model, x))


def test_registry_entries_and_preprocessing():
  raw_bgr = Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_scale=1.0, channel_order="BGR")
  for name, cls in (("segnet", SegNet), ("segnet_basic", SegNetBasic)):
    family = build.family_of(name)
    assert family.module is cls and family.task == "segmentation"
    assert family.preprocessing == raw_bgr
    model = build.build_model({"name": name, "num_classes": 11, "width": 8, "dtype": "float32"})
    assert isinstance(model, cls) and model.width == 8
    assert build.model_config(model) == {"name": name, "num_classes": 11, "in_channels": 3,
                                         "width": 8, "dtype": "float32"}
  np.testing.assert_array_equal(raw_bgr.normalize(np.array([[10, 20, 30]], np.uint8)), [[30, 20, 10]])
