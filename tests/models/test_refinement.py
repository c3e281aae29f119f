"""CascadePSP refinement module: size, outputs, cascade entry points, dtype, registration."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from psp_jax.models.build import build_model
from psp_jax.models.refinement import (OUTPUT_KEYS, RefinementModule, cascade_outputs,
                                       pad_to_multiple)


def _abstract(model, h=32, w=32):
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, h, w, 3)),
                                           jnp.zeros((1, h, w, 1))))


def test_parameter_count_and_state_dict_entries_match_the_official_model():
  variables = _abstract(RefinementModule())
  params = jax.tree.leaves(variables["params"])
  stats = jax.tree.leaves(variables["batch_stats"])
  assert sum(int(np.prod(p.shape)) for p in params) == 67_683_433  # "67.68 M"
  assert all(p.dtype == jnp.float32 for p in params)
  # torch entries: params + running mean/var + one num_batches_tracked per BatchNorm.
  assert len(params) + len(stats) + len(stats) // 2 == 426
  assert sorted(variables["params"]) == ["feats", "final_11", "final_21", "final_28_0", "final_28_2",
                                         "final_56_0", "final_56_2", "psp", "up_1", "up_2", "up_3"]
  up = variables["params"]["up_1"]
  assert sorted(up) == ["conv2_0", "conv2_2", "conv2_3", "conv2_5", "conv_0", "conv_2", "conv_3",
                        "conv_5", "shortcut"]
  assert up["conv_2"]["kernel"].shape == (3, 3, 1024 + 256, 512)
  assert variables["params"]["feats"]["conv1"]["kernel"].shape == (7, 7, 6, 64)
  assert variables["params"]["psp"]["branch0_conv"]["kernel"].shape == (1, 1, 2048, 2048)
  assert variables["params"]["psp"]["bottleneck"]["kernel"].shape == (1, 1, 5 * 2048, 1024)


def _random_variables(model, seed=0):
  """Random variables of the model's shapes without running its (slow to compile) init."""
  rng = np.random.default_rng(seed)

  def draw(path, s):
    if path[-1].key == "var":
      return jnp.asarray(rng.uniform(0.5, 1.5, s.shape), s.dtype)
    if path[-1].key == "scale":
      return jnp.asarray(rng.uniform(0.5, 1.5, s.shape), s.dtype)
    fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) == 4 else 1
    return jnp.asarray(rng.standard_normal(s.shape) * (1.0 / fan_in) ** 0.5 * 0.5, s.dtype)

  return jax.tree_util.tree_map_with_path(draw, _abstract(model))


@pytest.fixture(scope="module")
def small():
  model = RefinementModule(width=8)
  rng = np.random.default_rng(0)
  image = jnp.asarray(rng.standard_normal((2, 24, 40, 3)), jnp.float32)
  seg = jnp.asarray(np.where(rng.random((2, 24, 40, 1)) > 0.5, 1.0, -1.0), jnp.float32)
  variables = _random_variables(model)
  apply = jax.jit(lambda v, *a: model.apply(v, *a))
  return model, variables, image, seg, apply


def test_outputs_and_cascade_entry_points(small):
  model, variables, image, seg, apply = small
  out = apply(variables, image, seg)
  assert sorted(out) == sorted(OUTPUT_KEYS)
  for k, v in out.items():
    assert v.shape == (2, 24, 40, 1) and v.dtype == jnp.float32, k
    assert np.isfinite(np.asarray(v)).all(), k
  # Entering at pass 2 with tanh(s8a) reproduces passes 2 and 3.
  out2 = apply(variables, image, seg, jnp.tanh(out["s8a"]))
  assert sorted(out2) == ["s1", "s4b", "s4c", "s8b", "s8c"]
  for k in out2:
    np.testing.assert_allclose(out2[k], out[k], rtol=1e-5, atol=1e-5 * float(jnp.abs(out[k]).max()))
  # Entering at pass 3 with tanh(s8b), tanh(s4b) reproduces pass 3 (the local step's entry).
  out3 = apply(variables, image, seg, jnp.tanh(out["s8b"]), jnp.tanh(out["s4b"]))
  assert sorted(out3) == ["s1", "s4c", "s8c"]
  for k in out3:
    np.testing.assert_allclose(out3[k], out[k], rtol=1e-5, atol=1e-5 * float(jnp.abs(out[k]).max()))


def test_shorter_cascades_skip_passes_and_share_the_parameters(small):
  model, variables, image, seg, apply = small
  full = apply(variables, image, seg)
  for passes, entry in ((2, (seg,)), (1, (seg, seg))):
    short = RefinementModule(width=8, passes=passes)
    out = jax.jit(lambda v, *a, m=short: m.apply(v, *a))(variables, image, seg)
    assert sorted(out) == sorted(cascade_outputs(passes)), passes
    # passes=2 is the full cascade entered at pass 2 with t8a = seg; passes=1 at pass 3 with
    # t8b = t4b = seg: the same (shared) parameters, the input standing for skipped maps.
    ref = apply(variables, image, seg, *entry)
    for k in out:
      np.testing.assert_allclose(out[k], ref[k], rtol=1e-5, atol=1e-5 * float(jnp.abs(ref[k]).max()))
    first = cascade_outputs(passes)[0]  # the OS 8 logits of the first pass run: its input differs
    assert float(jnp.abs(out[first] - full[first]).max()) > 2e-5, passes
  assert cascade_outputs(3) == OUTPUT_KEYS
  assert jax.tree.structure(_abstract(RefinementModule(width=8, passes=1))) == jax.tree.structure(
      variables)
  with pytest.raises(ValueError, match="passes must be 1, 2 or 3"):
    RefinementModule(width=8, passes=4).apply(variables, image, seg)


def test_train_mode_updates_every_batch_norm(small):
  model, variables, image, seg, _ = small
  image, seg = image[:, :16, :16], seg[:, :16, :16]
  maps = jnp.tanh(seg * 0.5)
  # Pass 3 alone goes through every module (feats, psp, up_1..3, all heads).
  train_apply = jax.jit(lambda v, *a: model.apply(v, *a, train=True, mutable=["batch_stats"]))
  out, updates = train_apply(variables, image, seg, maps, maps)
  assert sorted(out) == ["s1", "s4c", "s8c"]
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables["batch_stats"],
                         updates["batch_stats"])
  assert all(jax.tree.leaves(changed))


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  model = RefinementModule(width=8, dtype=jnp.bfloat16)
  image, seg = jnp.ones((1, 16, 16, 3)), -jnp.ones((1, 16, 16, 1))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(_abstract(model)["params"]))
  variables = _random_variables(model)
  out = jax.jit(model.apply)(variables, image, seg, jnp.zeros_like(seg), jnp.zeros_like(seg))
  assert all(v.dtype == jnp.float32 for v in out.values())


def test_input_validation():
  model = RefinementModule(width=8)
  v = {"params": {}, "batch_stats": {}}
  with pytest.raises(ValueError, match="multiple of 8"):
    model.apply(v, jnp.zeros((1, 20, 16, 3)), jnp.zeros((1, 20, 16, 1)))
  with pytest.raises(ValueError, match="seg must have shape"):
    model.apply(v, jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 16, 16, 3)))
  with pytest.raises(ValueError, match="inter_s4 needs inter_s8"):
    model.apply(v, jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 16, 16, 1)), None, jnp.zeros((1, 16, 16, 1)))


def test_pad_to_multiple():
  x = np.ones((1, 227, 301, 1), np.float32)
  padded, size = pad_to_multiple(x, 8, -1.0)
  assert size == (227, 301) and padded.shape == (1, 232, 304, 1)
  assert (padded[:, 227:] == -1).all() and (padded[:, :, 301:] == -1).all()
  assert (padded[:, :227, :301] == 1).all()
  same, _ = pad_to_multiple(jnp.zeros((1, 224, 224, 3)))
  assert same.shape == (1, 224, 224, 3)


def test_registered_as_cascadepsp_family():
  model = build_model({"name": "cascadepsp", "width": 16, "dtype": "bfloat16"})
  assert model == RefinementModule(width=16, dtype=jnp.bfloat16)


def test_seg_skip_adds_its_learned_gain_times_the_input_to_every_output(small):
  _, variables, image, seg, _ = small
  image, seg = image[:, :16, :16], seg[:, :16, :16]
  plain = RefinementModule(width=8, passes=1)
  skip = RefinementModule(width=8, passes=1, seg_skip=2.0)
  # Off (the published module) there is no extra parameter; on, exactly one scalar, init g.
  assert "seg_skip_gain" not in variables["params"]
  abstract = _abstract(skip)["params"]
  assert set(abstract) - set(variables["params"]) == {"seg_skip_gain"}
  assert abstract["seg_skip_gain"].shape == ()
  assert float(skip.init(jax.random.PRNGKey(0), image[:1], seg[:1])["params"]["seg_skip_gain"]) == 2.0
  gain = 1.5
  v_skip = {**variables, "params": {**variables["params"], "seg_skip_gain": jnp.float32(gain)}}
  run = lambda m, v: jax.jit(lambda v, *a: m.apply(v, *a))(v, image, seg)
  ref, out = run(plain, variables), run(skip, v_skip)
  assert sorted(out) == sorted(ref) == ["s1", "s4c", "s8c"]
  for k in out:
    np.testing.assert_allclose(out[k], ref[k] + gain * seg, rtol=1e-6, atol=1e-5)
  with pytest.raises(ValueError, match="seg_skip must be >= 0"):
    RefinementModule(width=8, seg_skip=-1.0).apply(variables, image, seg)
