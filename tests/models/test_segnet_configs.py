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


@pytest.mark.parametrize("variant", ["segnet_camvid", "segnet_basic_camvid", "segnet_mini", "segnet_basic_mini"])
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
