"""configs/segnet.py holds the SegNet tutorial's CamVid recipes (specs/deeplab_segnet.md, the
tutorial's solver and train prototxts), and its mini variants build and check."""
import jax
import jax.numpy as jnp
import pytest

from configs import segnet as segnet_configs
from psp_jax import config_checks
from psp_jax.models import build
from psp_jax.preprocessing import Preprocessing
from psp_jax.train.optim import make_optimizer

SPEC_WEIGHTS = (0.2595, 0.1826, 4.5640, 0.1417, 0.9051, 0.3826, 9.6446, 1.8418, 0.6823, 6.2478, 7.3614)


@pytest.mark.parametrize("variant, name, lr, steps", [
    ("segnet_camvid", "segnet", 0.001, 40_000), ("segnet_basic_camvid", "segnet_basic", 0.1, 10_000)])
def test_published_recipes(variant, name, lr, steps):
  cfg = segnet_configs.get_config(variant)
  assert (cfg.task, cfg.model.name, cfg.model.width, cfg.model.num_classes) == ("segmentation", name, 64, 11)
  assert (cfg.optim.name, cfg.optim.base_lr, cfg.optim.schedule) == ("sgd", lr, "constant")
  assert (cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.nesterov) == (0.9, 5e-4, False)
  assert cfg.train.steps == steps and cfg.train.batch_size == 4 and cfg.data.shuffle
  assert tuple(cfg.train.class_weights) == SPEC_WEIGHTS and cfg.train.aux_weight == 0.0
  assert tuple(cfg.data.crop_size) == (360, 480) and not cfg.data.augmentation.enabled
  assert (cfg.data.name, cfg.data.num_classes) == ("camvid", 11)
  assert tuple(cfg.eval.crop_size) == (360, 480) and cfg.eval.base_size == 480  # one whole-image window
  pre = Preprocessing.from_meta(cfg.data)
  assert pre == build.family_of(name).preprocessing == Preprocessing((0, 0, 0), (1, 1, 1), 1.0, "BGR")
  rules = [dict(r) for r in cfg.optim.param_rules]
  assert rules[-1] == {"pattern": "*/bias", "lr": 2.0, "decay": 0}  # conv biases: 2x lr, no decay
  bn_rule = {"segnet": {"pattern": "*_bn/bias", "lr": 1.0, "decay": 0},
             "segnet_basic": {"pattern": "*_bn/*", "lr": 1.0, "decay": 1}}[name]
  assert rules[0] == bn_rule
  config_checks.check_config(cfg)


@pytest.mark.parametrize("variant", [f.__name__ for f in segnet_configs.VARIANTS])
def test_every_variant_builds_and_its_optimizer_rules_match(variant):
  cfg = segnet_configs.get_config(variant)
  config_checks.check_config(cfg)
  model = build.build_model(cfg.model)
  hw = tuple(cfg.data.crop_size)
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *hw, 3)))["params"]
  opt = make_optimizer(cfg.optim, params, cfg.train.steps)
  assert set(opt.multipliers) == {"base", "base|*/bias"} and opt.multipliers["base|*/bias"] == 2.0


def test_mini_variants_are_a_third_of_the_size():
  for variant, width in (("segnet_mini", 8), ("segnet_basic_mini", 16)):
    cfg = segnet_configs.get_config(variant)
    assert tuple(cfg.data.crop_size) == (120, 160) and tuple(cfg.eval.crop_size) == (120, 160)
    aug = cfg.data.augmentation
    assert aug.enabled and aug.scale_min == aug.scale_max == pytest.approx(1 / 3)
    assert aug.flip_prob == aug.rotate_prob == aug.blur_prob == 0.0
    assert cfg.model.width == width and cfg.train.steps == 300
    assert tuple(cfg.train.class_weights) == SPEC_WEIGHTS
  with pytest.raises(ValueError, match="no variant 'nope'"):
    segnet_configs.get_config("nope")


def test_synthetic_variants_take_the_synthetic_scenes_and_their_own_class_weights():
  """The SegNet recipes on the look-alike scenes (experiments/families_context.py): whole 193 px
  images without augmentation, the other synthetic minis' budget, SegNet's input
  normalisation, and the scenes' own median-frequency weights (their derivation, the command in
  configs/segnet.py, prepares all 2048 scenes: 50 s, left out of CI)."""
  for variant, width in (("segnet_synthetic_mini", 8), ("segnet_basic_synthetic_mini", 16)):
    cfg = segnet_configs.get_config(variant)
    assert (cfg.data.name, cfg.data.num_classes, cfg.model.num_classes) == ("synthetic", 11, 11)
    assert tuple(cfg.data.crop_size) == (193, 193) == tuple(cfg.eval.crop_size)
    assert not cfg.data.augmentation.enabled and cfg.data.lookalike_groups
    assert (cfg.model.width, cfg.train.steps, cfg.train.batch_size) == (width, 150, 8)
    assert Preprocessing.from_meta(cfg.data) == Preprocessing((0, 0, 0), (1, 1, 1), 1.0, "BGR")
    assert tuple(cfg.train.class_weights) == segnet_configs.SYNTHETIC_CLASS_WEIGHTS
    assert len(cfg.train.class_weights) == 11 and min(cfg.train.class_weights) > 0


def test_ade20k_variant_is_the_tutorial_optimiser_on_pspnets_ade20k_data():
  """PSPNet Table 4's SegNet row (experiments/pspnet_table4.py, paper scale)."""
  cfg = segnet_configs.get_config("segnet_ade20k")
  assert (cfg.model.name, cfg.model.num_classes, cfg.data.num_classes, cfg.data.name) == ("segnet", 150, 150, "ade20k")
  assert (cfg.optim.base_lr, cfg.optim.schedule, cfg.train.batch_size, cfg.train.steps) == (0.001, "constant", 4, 150_000)
  assert tuple(cfg.data.crop_size) == (473, 473) and cfg.train.class_weights is None
  aug = cfg.data.augmentation
  assert aug.enabled and (aug.scale_min, aug.scale_max, aug.flip_prob) == (0.5, 2.0, 0.5)
  assert Preprocessing.from_meta(cfg.data) == Preprocessing((0, 0, 0), (1, 1, 1), 1.0, "BGR")
