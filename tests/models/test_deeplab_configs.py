"""configs/deeplab.py: the DeepLab recipes of specs/deeplab_segnet.md, number by number, and
every variant builds, passes the config checks and gets its lr multipliers."""
import jax
import jax.numpy as jnp
import pytest
from flax import traverse_util

from configs import deeplab as dl_configs
from psp_jax import config_checks
from psp_jax.models import build
from psp_jax.preprocessing import Preprocessing
from psp_jax.train.optim import make_optimizer

CAFFE = Preprocessing((104.008, 116.669, 122.675), (1.0, 1.0, 1.0), 1.0, "BGR")


def _optimizer(cfg):
  model = build.build_model(cfg.model)
  hw = tuple(cfg.data.crop_size)
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *hw, 3)))["params"]
  return model, params, make_optimizer(cfg.optim, params, cfg.train.steps)


def _aug(cfg):
  a = cfg.data.augmentation
  return a.scale_min, a.scale_max, a.flip_prob, a.rotate_prob, a.blur_prob


def test_v1_largefov_voc_recipe():
  cfg = dl_configs.get_config("deeplabv1_largefov_voc")
  m = cfg.model
  assert (m.name, m.num_classes, m.rate, m.fc_features, m.dropout, m.align_corners) == (
      "deeplabv1", 21, 12, 1024, 0.5, True)
  assert tuple(cfg.data.crop_size) == (321, 321) and _aug(cfg) == (1.0, 1.0, 0.5, 0.0, 0.0)
  assert Preprocessing.from_meta(cfg.data) == CAFFE == build.get_family("deeplabv1").preprocessing
  o = cfg.optim
  assert (o.name, o.momentum, o.weight_decay, o.base_lr) == ("sgd", 0.9, 5e-4, 1e-3)
  assert cfg.train.batch_size == 20 and cfg.train.steps == 6000 and cfg.train.aux_weight == 0.0
  _, params, opt = _optimizer(cfg)
  assert [float(opt.schedule(s)) for s in (0, 1999, 2000, 3999, 4000, 5999)] == pytest.approx(
      [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])
  labels = traverse_util.flatten_dict(opt.labels, sep="/")
  assert opt.multipliers[labels["head/fc8/kernel"]] == 10.0
  assert opt.multipliers[labels["head/fc8/bias"]] == 20.0
  assert opt.multipliers[labels["head/fc7/kernel"]] == 1.0
  assert tuple(cfg.eval.crop_size) == (513, 513) and cfg.eval.base_size is None
  poly = dl_configs.get_config("deeplabv1_largefov_voc_poly")
  assert (poly.optim.schedule, poly.optim.power, poly.train.batch_size, poly.train.steps) == (
      "poly", 0.9, 10, 20_000)


def test_v2_resnet101_voc_recipe():
  cfg = dl_configs.get_config("deeplabv2_resnet101_voc")
  m = cfg.model
  assert (m.name, m.backbone_type, m.depth, tuple(m.rates), tuple(m.scales)) == (
      "deeplabv2", "resnet", 101, (6, 12, 18, 24), (1.0, 0.75, 0.5))
  assert cfg.train.frozen_bn and cfg.train.batch_size == 10 and cfg.train.steps == 20_000
  o = cfg.optim
  assert (o.base_lr, o.momentum, o.weight_decay, o.schedule, o.power) == (2.5e-4, 0.9, 5e-4, "poly", 0.9)
  assert tuple(cfg.data.crop_size) == (321, 321) and _aug(cfg) == (0.5, 1.5, 0.5, 0.0, 0.0)
  assert Preprocessing.from_meta(cfg.data) == CAFFE == build.get_family("deeplabv2").preprocessing
  _, _, opt = _optimizer(cfg)
  labels = traverse_util.flatten_dict(opt.labels, sep="/")
  for k in range(4):
    assert opt.multipliers[labels[f"aspp/c{k}/kernel"]] == 10.0
    assert opt.multipliers[labels[f"aspp/c{k}/bias"]] == 20.0
  assert opt.multipliers[labels["backbone/conv1/kernel"]] == 1.0


def test_v3_voc_recipe_and_its_second_stage():
  cfg = dl_configs.get_config("deeplabv3_resnet101_voc")
  m = cfg.model
  assert (m.depth, m.output_stride, tuple(m.multi_grid), tuple(m.rates), m.aspp_features) == (
      101, 16, (1, 2, 4), (6, 12, 18), 256)
  assert (m.flavour, m.image_pooling, m.dropout, m.bn_momentum, m.align_corners) == (
      "paper", True, 0.1, 0.9997, True)
  assert tuple(cfg.data.crop_size) == (513, 513) and _aug(cfg) == (0.5, 2.0, 0.5, 0.0, 0.0)
  o = cfg.optim
  assert (o.base_lr, o.momentum, o.weight_decay, o.schedule, o.power) == (0.007, 0.9, 1e-4, "poly", 0.9)
  assert cfg.train.batch_size == 16 and cfg.train.steps == 30_000 and not cfg.train.frozen_bn
  assert Preprocessing.from_meta(cfg.data) == build.get_family("deeplabv3").preprocessing
  s2 = dl_configs.get_config("deeplabv3_resnet101_voc_os8_frozen_bn")
  assert (s2.model.output_stride, s2.train.frozen_bn, s2.optim.base_lr, s2.train.steps) == (
      8, True, 0.001, 30_000)
  city = dl_configs.get_config("deeplabv3_resnet101_cityscapes_os8")
  assert city.model.num_classes == 19 and city.model.output_stride == 8 and city.train.frozen_bn


def test_v3_torchvision_variant():
  cfg = dl_configs.get_config("deeplabv3_resnet50_tv")
  m = cfg.model
  assert (m.depth, m.flavour, m.output_stride, tuple(m.multi_grid), tuple(m.rates)) == (
      50, "torchvision", 8, (), (12, 24, 36))
  assert (m.dropout, m.aux, m.align_corners) == (0.5, True, False) and cfg.train.aux_weight == 0.5


@pytest.mark.parametrize("variant", [f.__name__ for f in dl_configs.VARIANTS])
def test_every_variant_checks_and_builds(variant):
  cfg = dl_configs.get_config(variant)
  config_checks.check_config(cfg)
  model, params, _ = _optimizer(cfg)
  assert build.family_of(model).name == cfg.model.name
  assert cfg.data.num_classes == cfg.model.num_classes
  assert Preprocessing.from_meta(cfg.data) == build.family_of(model).preprocessing


def test_v1_minis_clip_gradients():
  for variant in ("deeplabv1_synthetic_mini", "deeplabv1_camvid_mini"):
    cfg = dl_configs.get_config(variant)
    assert cfg.optim.base_lr == 1e-3 and cfg.optim.grad_clip_norm == 10.0


def test_unknown_variant():
  with pytest.raises(ValueError, match="unknown config 'nope'; choose one of"):
    dl_configs.get_config("nope")


def test_v1_and_v2_recipes_name_their_densecrf_preset():
  # the spec's test protocols end in the CRF; evaluations report without and with it
  assert dl_configs.deeplabv1_largefov_voc().eval.crf == "v1_largefov"
  assert dl_configs.deeplabv1_largefov_voc_poly().eval.crf == "v1_largefov"
  assert dl_configs.deeplabv2_resnet101_voc().eval.crf == "v2_resnet"
  from psp_jax.postprocess import presets
  for name in ("v1_largefov", "v2_resnet"):
    assert name in presets.PRESETS
  # v3 uses none, and the CPU minis leave it off (it would dominate their evaluation time)
  assert dl_configs.deeplabv3_resnet101_voc().eval.crf == ""
  assert all(dl_configs.get_config(f"deeplabv{v}_{d}_mini").eval.crf == ""
             for v in (1, 2, 3) for d in ("synthetic", "camvid"))
