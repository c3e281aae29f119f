"""DeepLab v1 / v2 / v3 training configs, one function per named variant (plain data, no logic).

  psp-jax train --config configs/deeplab.py:deeplabv3_resnet101_voc --workdir runs/v3 \
      --config.data.manual_dir=/data/VOC_parent --config.train.init_checkpoint=ckpt/resnet101

Recipes (shared/specs/deeplab_segnet.md; every number is tested in tests/configs):
  deeplabv1_largefov_voc   VGG-16 LargeFOV, crop 321 + mirror, batch 20, SGD 0.9, wd 5e-4, lr 1e-3
                           (fc8 x10, its bias x20), x0.1 every 2000 of 6000 iterations; test on
                           513-padded images, also after DenseCRF v1_largefov (eval.crf; the
                           report has both). `_poly`: poly 0.9, batch 10, 20k iterations.
  deeplabv2_resnet101_voc  MSRA ResNet-101 + ASPP-L, MSC (1, 0.75, 0.5), BN frozen, batch 10,
                           lr 2.5e-4 (ASPP x10, biases x20), poly 0.9, 20k, crop 321, scale
                           0.5-1.5 + flip; init from COCO-pretrained weights (init_checkpoint);
                           evaluated without and with DenseCRF v2_resnet (eval.crf).
  deeplabv3_resnet101_voc  ResNet-101 OS16 multi-grid (1, 2, 4), ASPP (6, 12, 18) + image pooling,
                           BN momentum 0.9997, crop 513, batch 16, scale 0.5-2.0 + flip, lr 0.007,
                           wd 1e-4, poly 0.9, 30k. `_os8_frozen_bn`: stage 2 at OS8, BN frozen,
                           lr 0.001, 30k (init_checkpoint = stage 1). Evaluate at OS8 with
                           --config.model.output_stride=8 (same parameters, rates doubled).
  deeplabv3_resnet101_cityscapes[_os8]  the v3 recipe on Cityscapes (the spec gives no Cityscapes
                           recipe of its own: crop 713 and base size 2048 as our PSPNet's).
  deeplabv3_resnet50_tv    torchvision's deeplabv3_resnet50: OS8, rates 12/24/36, extra 3x3 conv,
                           dropout 0.5, align_corners=False, aux FCN head at weight 0.5; the v3
                           optimiser recipe.
  *_synthetic_mini, *_camvid_mini  narrow versions for the embedded synthetic scenes and CamVid
                           that train in minutes on a CPU (rates reduced where the feature map is
                           small; see each docstring).

Losses: the v1 and v2 recipes set train.native_loss=True, so `psp-jax train` minimises the
families' own losses (psp_jax/train/deeplab_losses.py on `native=True` outputs): v1's CE of
the 41x41 logits against label_shrink(label, 8) (crops must be 8k + 1), v2's sum of the MSC
outputs' CE against nearest-resized labels. v3 trains on the CE at the crop (its recipe).
The data pipeline draws scales from a continuous range (v3's 0.25 step is not modelled).
The fields are those of configs/pspnet.py; `model.*` are the DeepLabV1/V2/V3 constructor fields.
"""
from __future__ import annotations

import ml_collections

from configs import common, data

DEEPLAB_BGR_MEAN = (104.008, 116.669, 122.675)


def _caffe_input(data_cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """v1/v2 inputs: raw 0-255 BGR minus the BGR mean (crops are padded with the mean)."""
  data_cfg.mean = DEEPLAB_BGR_MEAN
  data_cfg.std = (1.0, 1.0, 1.0)
  data_cfg.input_scale = 1.0
  data_cfg.channel_order = "BGR"
  return data_cfg


def _augment(data_cfg, scale_min: float, scale_max: float) -> ml_collections.ConfigDict:
  """Random scale in [scale_min, scale_max] and mirror; no rotation, no blur (DeepLab's)."""
  aug = data_cfg.augmentation
  aug.scale_min, aug.scale_max = scale_min, scale_max
  aug.rotate_prob, aug.blur_prob, aug.flip_prob = 0.0, 0.0, 0.5
  return data_cfg


def _step_schedule(optim: ml_collections.ConfigDict, fractions: tuple, factor: float = 0.1):
  optim.schedule = "step"
  optim.boundaries = ml_collections.FieldReference((), field_type=tuple)
  optim.boundary_fractions = fractions
  optim.decay_factor = factor
  return optim


def _config(model: dict, data_cfg, *, steps: int, batch: int, crop, lr: float, wd: float,
            multipliers: dict, eval_crop, base_size=None, aux_weight: float = 0.0,
            frozen_bn: bool = False, native_loss: bool = False) -> ml_collections.ConfigDict:
  classes = ml_collections.FieldReference(model["num_classes"])
  model = dict(model, num_classes=classes, dtype="float32")
  crop = tuple(crop) if isinstance(crop, (tuple, list)) else (crop, crop)
  eval_crop = tuple(eval_crop) if isinstance(eval_crop, (tuple, list)) else (eval_crop, eval_crop)
  cfg = common.base("segmentation", model, data_cfg,
                    common.train(steps, batch_size=batch, aux_weight=aux_weight),
                    common.sgd_poly(lr, multipliers, weight_decay=wd),
                    common.segmentation_eval(eval_crop, base_size))
  cfg.train.frozen_bn = frozen_bn
  cfg.train.native_loss = native_loss
  cfg.data.num_classes = classes
  cfg.data.crop_size = crop
  return cfg


# ---- DeepLab v1 ---------------------------------------------------------------------------

def _v1_model(num_classes: int, **kw) -> dict:
  model = dict(name="deeplabv1", num_classes=num_classes, width=64, rate=12, fc_features=1024,
               dropout=0.5, align_corners=True)
  model.update(kw)
  return model


V1_MULTIPLIERS = {"head/fc8": 10.0, "head/fc8/bias": 20.0}


def deeplabv1_largefov_voc() -> ml_collections.ConfigDict:
  """LargeFOV on VOC train_aug: crop 321 + mirror, batch 20, lr 1e-3 (fc8 x10, bias x20),
  step x0.1 at 2000 and 4000 of 6000; evaluation pads to 513 (one window per image)."""
  cfg = _config(_v1_model(21), _augment(_caffe_input(data.voc()), 1.0, 1.0), steps=6000, batch=20,
                crop=321, lr=1e-3, wd=5e-4, multipliers=dict(V1_MULTIPLIERS), eval_crop=513,
                native_loss=True)
  _step_schedule(cfg.optim, (1 / 3, 2 / 3))
  cfg.train.checkpoint_every = 2000
  cfg.eval.every = 2000
  cfg.eval.crf = "v1_largefov"
  return cfg


def deeplabv1_largefov_voc_poly() -> ml_collections.ConfigDict:
  """The recipe's option: poly 0.9, batch 10, 20k iterations."""
  cfg = _config(_v1_model(21), _augment(_caffe_input(data.voc()), 1.0, 1.0), steps=20_000, batch=10,
                crop=321, lr=1e-3, wd=5e-4, multipliers=dict(V1_MULTIPLIERS), eval_crop=513,
                native_loss=True)
  cfg.eval.crf = "v1_largefov"
  return cfg


# ---- DeepLab v2 ---------------------------------------------------------------------------

def _v2_model(num_classes: int, rates=(6, 12, 18, 24), **kw) -> dict:
  model = dict(name="deeplabv2", num_classes=num_classes, backbone_type="resnet", depth=101,
               width=64, rates=rates, fc_features=1024, dropout=0.5, scales=(1.0, 0.75, 0.5),
               align_corners=True)
  model.update(kw)
  return model


def _v2_multipliers(n_rates: int) -> dict:
  return {"aspp": 10.0, **{f"aspp/c{k}/bias": 20.0 for k in range(n_rates)}}


def deeplabv2_resnet101_voc() -> ml_collections.ConfigDict:
  """ResNet-101 ASPP-L with MSC on VOC: batch 10, lr 2.5e-4 (ASPP x10, biases x20), poly 0.9,
  20k, crop 321, scale 0.5-1.5 + flip, BN frozen; set train.init_checkpoint to the
  COCO-pretrained weights (psp-jax convert --model deeplabv2-resnet101)."""
  cfg = _config(_v2_model(21), _augment(_caffe_input(data.voc()), 0.5, 1.5), steps=20_000, batch=10,
                crop=321, lr=2.5e-4, wd=5e-4, multipliers=_v2_multipliers(4), eval_crop=513,
                frozen_bn=True, native_loss=True)
  cfg.eval.crf = "v2_resnet"
  return cfg


# ---- DeepLab v3 ---------------------------------------------------------------------------

def _v3_model(num_classes: int, **kw) -> dict:
  model = dict(name="deeplabv3", num_classes=num_classes, depth=101, width=64, output_stride=16,
               multi_grid=(1, 2, 4), flavour="paper", rates=(6, 12, 18), aspp_features=256,
               image_pooling=True, dropout=0.1, aux=False, align_corners=True, bn_momentum=0.9997)
  model.update(kw)
  return model


def _v3(model: dict, data_cfg, crop=513, base_size=None, aux_weight=0.0) -> ml_collections.ConfigDict:
  return _config(model, _augment(data_cfg, 0.5, 2.0), steps=30_000, batch=16, crop=crop, lr=0.007,
                 wd=1e-4, multipliers={}, eval_crop=crop, base_size=base_size, aux_weight=aux_weight)


def _stage2(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """v3's optional second stage: output stride 8, BN frozen, lr 0.001, 30k iterations."""
  cfg.model.output_stride = 8
  cfg.train.frozen_bn = True
  cfg.optim.base_lr = 0.001
  cfg.train.steps = 30_000
  return cfg


def deeplabv3_resnet101_voc() -> ml_collections.ConfigDict:
  """v3 stage 1 on VOC train_aug: OS16, crop 513, batch 16, lr 0.007, poly 0.9, 30k."""
  return _v3(_v3_model(21), data.voc())


def deeplabv3_resnet101_voc_os8_frozen_bn() -> ml_collections.ConfigDict:
  """v3 stage 2: OS8, BN frozen, lr 0.001, 30k; train.init_checkpoint = the stage-1 workdir."""
  return _stage2(deeplabv3_resnet101_voc())


def deeplabv3_resnet101_cityscapes() -> ml_collections.ConfigDict:
  """The v3 recipe on Cityscapes fine (crop 713, base size 2048: our Cityscapes defaults)."""
  return _v3(_v3_model(19), data.cityscapes(), crop=713, base_size=2048)


def deeplabv3_resnet101_cityscapes_os8() -> ml_collections.ConfigDict:
  """Cityscapes stage 2 at OS8 with BN frozen."""
  return _stage2(deeplabv3_resnet101_cityscapes())


def _tv_model(num_classes: int, depth: int = 50, **kw) -> dict:
  return _v3_model(num_classes, **dict(dict(
      depth=depth, output_stride=8, multi_grid=(), flavour="torchvision", rates=(12, 24, 36),
      dropout=0.5, aux=True, align_corners=False, bn_momentum=None), **kw))


def deeplabv3_resnet50_tv() -> ml_collections.ConfigDict:
  """torchvision's deeplabv3_resnet50 on VOC: aux FCN head at loss weight 0.5."""
  return _v3(_tv_model(21), data.voc(), aux_weight=0.5)


# ---- mini variants (CPU, minutes) ----------------------------------------------------------

def _mini(cfg: ml_collections.ConfigDict, steps: int, batch: int = 8) -> ml_collections.ConfigDict:
  cfg.train.steps = steps
  cfg.train.batch_size = batch
  cfg.train.checkpoint_every = 100
  cfg.train.log_every = 25
  cfg.train.frozen_bn = False
  cfg.eval.every = 0
  cfg.eval.window_batch = 4
  cfg.eval.log_images = 0
  cfg.data.worker_count = 0
  return cfg


def _synthetic(model: dict, caffe: bool, lr: float, multipliers: dict,
               native_loss: bool) -> ml_collections.ConfigDict:
  data_cfg = _caffe_input(data.synthetic()) if caffe else data.synthetic()
  cfg = _config(model, data_cfg, steps=150, batch=8, crop=193, lr=lr, wd=1e-4,
                multipliers=multipliers, eval_crop=193, base_size=193, native_loss=native_loss)
  return _mini(cfg, 150)


def _camvid(model: dict, caffe: bool, lr: float, multipliers: dict,
            native_loss: bool) -> ml_collections.ConfigDict:
  """CamVid at a third of its size, as configs/pspnet.py:camvid_mini (121x161 crops)."""
  data_cfg = _caffe_input(data.camvid()) if caffe else data.camvid()
  data_cfg.augmentation.scale_min = 1.0 / 6.0
  data_cfg.augmentation.scale_max = 2.0 / 3.0
  cfg = _config(model, data_cfg, steps=300, batch=8, crop=(121, 161), lr=lr, wd=1e-4,
                multipliers=multipliers, eval_crop=(121, 161), base_size=160, native_loss=native_loss)
  return _mini(cfg, 300)


MINI_V1 = dict(width=8, fc_features=64)
MINI_V2 = dict(depth=50, width=4)
MINI_V3 = dict(depth=18, width=8, multi_grid=(1, 2), rates=(3, 6, 9), aspp_features=32,
               bn_momentum=None)


def _v1_mini(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """From scratch on raw 0-255 inputs without BN, lr 0.01 diverged (NaN loss at step 5,
  measured); the recipe's 1e-3 with gradients clipped at norm 10 trains."""
  cfg.optim.grad_clip_norm = 10.0
  return cfg


def deeplabv1_synthetic_mini() -> ml_collections.ConfigDict:
  """v1 on the synthetic scenes, 193 px (25x25 pool5: rate 12 fits), width 8."""
  return _v1_mini(_synthetic(_v1_model(11, **MINI_V1), True, 1e-3, dict(V1_MULTIPLIERS), True))


def deeplabv2_synthetic_mini() -> ml_collections.ConfigDict:
  """v2 (MSRA ResNet-50 of width 4, MSC, rates 6-24 on a 25x25 map) on the synthetic scenes."""
  return _synthetic(_v2_model(11, **MINI_V2), True, 0.01, _v2_multipliers(4), True)


def deeplabv3_synthetic_mini() -> ml_collections.ConfigDict:
  """v3 (ResNet-18 of width 8, OS16: a 13x13 map, so rates 3/6/9) on the synthetic scenes."""
  return _synthetic(_v3_model(11, **MINI_V3), False, 0.02, {}, False)


def deeplabv1_camvid_mini() -> ml_collections.ConfigDict:
  """v1 on CamVid at 121x161 (16x21 pool5: rate 12 fits)."""
  return _v1_mini(_camvid(_v1_model(11, **MINI_V1), True, 1e-3, dict(V1_MULTIPLIERS), True))


def deeplabv2_camvid_mini() -> ml_collections.ConfigDict:
  """v2 on CamVid at 121x161 (a 16x21 map: rates 3/6/9/12)."""
  return _camvid(_v2_model(11, rates=(3, 6, 9, 12), **MINI_V2), True, 0.01, _v2_multipliers(4), True)


def deeplabv3_camvid_mini() -> ml_collections.ConfigDict:
  """v3 on CamVid at 121x161 (OS16: an 8x11 map, rates 3/6/9)."""
  return _camvid(_v3_model(11, **MINI_V3), False, 0.02, {}, False)


VARIANTS = (deeplabv1_largefov_voc, deeplabv1_largefov_voc_poly, deeplabv2_resnet101_voc,
            deeplabv3_resnet101_voc, deeplabv3_resnet101_voc_os8_frozen_bn,
            deeplabv3_resnet101_cityscapes, deeplabv3_resnet101_cityscapes_os8,
            deeplabv3_resnet50_tv, deeplabv1_synthetic_mini, deeplabv2_synthetic_mini,
            deeplabv3_synthetic_mini, deeplabv1_camvid_mini, deeplabv2_camvid_mini,
            deeplabv3_camvid_mini)


def get_config(name: str = "deeplabv3_synthetic_mini") -> ml_collections.ConfigDict:
  """Entry point of `--config configs/deeplab.py:NAME` (ml_collections config_flags)."""
  variants = {f.__name__: f for f in VARIANTS}
  if name not in variants:
    raise ValueError(f"unknown config {name!r}; choose one of {sorted(variants)}")
  return variants[name]()
