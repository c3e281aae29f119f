"""The mini-scale base configs of the ablation tables (configs/pspnet.py)."""
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["synthetic_mini", "camvid_mini"])
def test_mini_configs_build_and_evaluate_whole_images_once(name):
  sys.path.insert(0, str(ROOT))
  from configs import pspnet
  from psp_jax.models.build import build_model
  cfg = pspnet.get_config(name)
  model = build_model(cfg.model)
  assert model.context == "ppm" and model.aux and cfg.train.aux_weight == 0.4
  assert cfg.model.num_classes == cfg.data.num_classes == 11
  assert cfg.eval.every == 0 and cfg.train.checkpoint_every < cfg.train.steps  # resumable, one eval
  assert tuple(cfg.eval.crop_size) == tuple(cfg.data.crop_size)
  if name == "synthetic_mini":  # whole 193 px scenes: one window, the context gap's size
    assert tuple(cfg.data.crop_size) == tuple(cfg.data.synthetic.size) == (193, 193)
    assert cfg.eval.base_size == 193
  else:  # CamVid 360x480 at 1/3 = 120x160 fits one 121x161 window
    aug = cfg.data.augmentation
    assert aug.enabled and aug.scale_min == pytest.approx(1 / 6) and aug.scale_max == pytest.approx(2 / 3)
    assert cfg.eval.base_size == 160 and tuple(cfg.data.crop_size) == (121, 161)
