"""The model contract (psp_jax/models/contract.py), checked on EVERY registered family and on a
toy one-conv family registered by this test alone (no other file knows it).

For each family, at its `tiny` size: build from plain config data and back; init creates every
variable from the family's example inputs; the lr_modules are real modules; one data-parallel
train step of its task on 2 simulated devices (finite loss, parameters changed, BatchNorm
statistics updated); save, then `psp_jax.load`: identical outputs; and the task's user-facing
call on a uint8 image (`psp_jax.predict` -> a label map of the image's size; `Refiner.refine`
-> a mask of the image's size). The per-task parts below are the tasks' interfaces, not
families': nothing here names a family except the toy.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import traverse_util

import psp_jax
from psp_jax import checkpoint as ckpt_lib
from psp_jax.models import build
from psp_jax.models.contract import ModelFamily, image_inputs
from psp_jax.models.resnet import BNConfig
from psp_jax.parallel import make_mesh
from psp_jax.preprocessing import Preprocessing
from psp_jax.train.optim import make_optimizer
from psp_jax.train.state import create_train_state

SIZE = 32
RNG = np.random.default_rng(0)
# rbg keys: XLA compiles threefry's random init of many-layer models very slowly on CPU
KEY = jax.random.key(0, impl="rbg")


class ToyConv(nn.Module):
  """One 3x3 conv + BatchNorm: the smallest segmentation family."""
  num_classes: int = 2
  features: int = 4
  bn: BNConfig = BNConfig()
  dtype: str = "float32"

  @nn.compact
  def __call__(self, images, train: bool = False, return_aux: bool = False):
    x = nn.Conv(self.features, (3, 3), name="stem")(images)
    x = nn.relu(self.bn.make("stem_bn", jnp.float32)(x, train))
    logits = nn.Conv(self.num_classes, (1, 1), name="classifier")(x).astype(jnp.float32)
    return (logits, None) if return_aux else logits


TOY = ModelFamily(name="toy_conv", module=ToyConv, task="segmentation",
                  example_inputs=image_inputs(return_aux=True), lr_modules=("classifier",),
                  preprocessing=Preprocessing((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 1.0, "BGR"),
                  tiny=dict(num_classes=2, features=4))


@pytest.fixture(scope="module", autouse=True)
def toy_family():
  build.register(TOY)
  yield
  build.unregister(TOY.name)


FAMILIES = sorted(build.FAMILIES) + [TOY.name]


def tiny_model(name: str, bn: BNConfig | None = None):
  family = build.get_family(name)
  assert family.tiny, f"family {name!r} declares no `tiny` constructor fields"
  return family, build.build_model(dict(family.tiny, name=name), bn=bn)


@pytest.mark.parametrize("name", FAMILIES)
def test_builds_from_config_data_and_writes_it_back(name):
  family, model = tiny_model(name)
  assert build.family_of(model) is family
  cfg = build.model_config(model)
  assert cfg["name"] == name
  rebuilt = build.build_model(cfg)
  assert build.model_config(rebuilt) == cfg
  with pytest.raises(ValueError, match="not accepted"):
    build.build_model(dict(cfg, not_a_field=1))


@pytest.mark.parametrize("name", FAMILIES)
def test_example_inputs_create_every_variable_and_lr_modules_exist(name):
  family, model = tiny_model(name)
  variables = ckpt_lib.init_variables(model, KEY, abstract=True)
  params = variables["params"]
  assert params, "no parameters"
  missing = [m for m in family.lr_modules if m not in params]
  assert not missing, f"lr_modules {missing} are not top-level modules of the tiny model ({sorted(params)})"
  # a second forward in training mode creates nothing new
  args, kwargs = family.example_inputs(model, SIZE)
  full = jax.eval_shape(lambda: model.init(KEY, *args, **kwargs))
  assert jax.tree.structure(dict(full["params"])) == jax.tree.structure(dict(params))


def _segmentation_step(model, family, opt, mesh):
  from psp_jax.train.step import make_train_step
  step = make_train_step(model, opt, mesh, num_classes=int(model.num_classes), donate=False)
  images = RNG.normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
  labels = RNG.integers(0, model.num_classes, size=(2, SIZE, SIZE)).astype(np.int32)
  return step, (images, labels)


def _refinement_step(model, family, opt, mesh):
  from psp_jax.train.refine_step import make_refine_train_step
  step = make_refine_train_step(model, opt, mesh, donate=False)
  images = RNG.normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
  gt = (RNG.random((2, SIZE, SIZE)) > 0.5).astype(np.float32)
  return step, (images, gt, gt)


TRAIN_STEPS = {"segmentation": _segmentation_step, "refinement": _refinement_step}


@pytest.mark.parametrize("name", FAMILIES)
def test_one_data_parallel_train_step(name):
  family = build.get_family(name)
  if family.task not in TRAIN_STEPS:
    assert family.task == "backbone"  # backbones are init_checkpoint sources, never trained alone
    return
  _, model = tiny_model(name)
  mesh = make_mesh(2)
  variables = ckpt_lib.init_variables(model, KEY)
  optim = ml_collections.ConfigDict(dict(name="sgd", base_lr=0.1, momentum=0.9, weight_decay=0.0,
                                         schedule="constant",
                                         lr_multipliers={m: 2.0 for m in family.lr_modules}))
  opt = make_optimizer(optim, variables["params"], 10, optional_modules=family.lr_modules)
  state = create_train_state(variables, opt.tx, jax.random.key(1), mesh)  # the state keeps threefry keys
  step, batch = TRAIN_STEPS[family.task](model, family, opt, mesh)
  new_state, metrics = step(state, *batch)
  assert np.isfinite(float(metrics["loss"]))
  before = traverse_util.flatten_dict(jax.device_get(variables["params"]))
  after = traverse_util.flatten_dict(jax.device_get(new_state.params))
  changed = [k for k in before if not np.array_equal(before[k], after[k])]
  assert len(changed) > len(before) // 2, f"only {len(changed)} of {len(before)} parameters changed"
  if variables["batch_stats"]:
    stats0 = jax.tree.leaves(jax.device_get(variables["batch_stats"]))
    stats1 = jax.tree.leaves(jax.device_get(new_state.batch_stats))
    assert any(not np.array_equal(a, b) for a, b in zip(stats0, stats1)), "BN statistics not updated"


def _meta(model, family) -> dict:
  meta = {"format_version": ckpt_lib.FORMAT_VERSION, "model": build.model_config(model),
          "preprocessing": family.preprocessing.to_meta()}
  if family.task == "segmentation":
    meta["inference"] = {"crop_size": [SIZE, SIZE], "base_size": None, "scales": [1.0], "flip": False}
  return meta


def _perturbed(variables):
  """Random values everywhere (BN statistics too), so a load that drops anything shows. Drawn
  with numpy: jax.random per leaf would compile one kernel per leaf shape (a minute on CPU)."""
  rng = np.random.default_rng(3)
  return jax.tree.map(lambda x: np.asarray(x) + 0.1 * rng.standard_normal(x.shape).astype(x.dtype)
                      if jnp.issubdtype(x.dtype, jnp.floating) else x, jax.device_get(variables))


@pytest.mark.parametrize("name", FAMILIES)
def test_save_load_gives_identical_outputs_and_the_task_runs_on_uint8(name, tmp_path):
  family, model = tiny_model(name)
  variables = _perturbed(ckpt_lib.init_variables(model, KEY))
  ckpt_lib.save_checkpoint(tmp_path / "ckpt", variables, _meta(model, family))
  loaded_model, loaded = psp_jax.load(tmp_path / "ckpt")
  assert build.model_config(loaded_model) == build.model_config(model)
  args, kwargs = family.example_inputs(model, SIZE)
  args = tuple(jnp.asarray(RNG.normal(size=a.shape), jnp.float32) for a in args)
  kwargs.pop("return_aux", None)
  # the loaded module has the saved one's config (asserted above), so one compiled forward
  # serves both sets of variables
  forward = jax.jit(lambda v, *a: model.apply(v, *a, train=False, **kwargs))
  out = forward(variables, *args)
  again = forward(loaded, *args)
  for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(again)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  image = RNG.integers(0, 256, size=(37, 45, 3), dtype=np.uint8)
  if family.task == "segmentation":
    labels = psp_jax.predict(tmp_path / "ckpt", image)
    assert labels.shape == (37, 45) and labels.min() >= 0 and labels.max() < model.num_classes
  elif family.task == "refinement":
    mask = np.zeros((37, 45), np.uint8)
    mask[8:30, 10:35] = 255
    # L=64: the global step works at 64 px (the default 900 would upsample this 45 px image 20x)
    refined = psp_jax.Refiner(tmp_path / "ckpt").refine(image, mask, fast=True, L=64)
    assert refined.shape == (37, 45) and refined.dtype == np.uint8
  else:
    assert family.task == "backbone" and isinstance(out, dict)


def test_predict_applies_the_checkpoint_preprocessing(tmp_path):
  """The toy family takes raw BGR: its logits on a uint8 image are the conv of the reversed
  channels, which `predict` must reproduce (a wrong normalisation changes the labels)."""
  family, model = tiny_model(TOY.name)
  variables = _perturbed(ckpt_lib.init_variables(model, KEY))
  ckpt_lib.save_checkpoint(tmp_path / "ckpt", variables, _meta(model, family))
  image = RNG.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
  expected = np.asarray(model.apply(variables, image[None, ..., ::-1].astype(np.float32))).argmax(-1)[0]
  np.testing.assert_array_equal(psp_jax.predict(tmp_path / "ckpt", image), expected)


def test_registry_refuses_a_second_family_of_the_same_name():
  with pytest.raises(ValueError, match="already registered"):
    build.register(dataclasses.replace(TOY, lr_modules=()))
  with pytest.raises(ValueError, match="not a known model family"):
    build.get_family("no_such_family")


def test_a_family_without_bn_field_is_refused():
  class NoBN(nn.Module):
    num_classes: int = 2

  with pytest.raises(ValueError, match="bn: BNConfig"):
    ModelFamily(name="nobn", module=NoBN, task="segmentation", example_inputs=image_inputs())
