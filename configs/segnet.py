"""SegNet and SegNet-Basic training configs on CamVid, one function per named variant.

  psp-jax train --config configs/segnet.py:segnet_basic_camvid --workdir runs/segnet_basic
  psp-jax recompute-bn --config configs/segnet.py:segnet_basic_camvid --workdir runs/segnet_basic
  psp-jax evaluate --config configs/segnet.py:segnet_basic_camvid --workdir runs/segnet_basic

The recipes of the SegNet tutorial (Models/segnet[_basic]_solver.prototxt and _train.prototxt):
SGD momentum 0.9, weight decay 5e-4, a constant learning rate (lr_policy "step" with gamma 1)
of 0.1 for 10k iterations (SegNet-Basic) or 0.001 for 40k (SegNet), batch 4 with shuffling,
whole 360x480 images without cropping or augmentation, the median-frequency class weights of
the prototxts' loss layer, void (label 11 on disk, 255 after preparation) ignored. Per
parameter as the prototxts: conv biases at 2x lr without weight decay; SegNet's BN shift at
1x lr without decay, its BN scale decayed; SegNet-Basic's BN at Caffe's defaults (1x, decayed)
(`optim.param_rules`, psp_jax/train/param_rules.py). After training the tutorial recomputes
the BN statistics over the training set (`psp-jax recompute-bn`), then tests.
The `*_mini` variants are the same recipes at a third of the resolution (120x160) with a
narrow width and a few hundred iterations, for CPU runs here; `*_synthetic_mini` the same narrow
networks on the embedded synthetic look-alike scenes (193 px, 150 iterations). `segnet_ade20k`:
SegNet on ADE20K for PSPNet's Table 4 comparison row (see its docstring).

Fields beyond configs/common.py's: model.* are the SegNet / SegNetBasic constructor fields
(psp_jax/models/segnet.py); train.class_weights is None or one loss weight per class
(Caffe-normalised, psp_jax/train/losses.py; recompute them for your data with
`python -m psp_jax.data.class_weights --config ...`); train.aux_weight is 0 (no aux head).
"""
from __future__ import annotations

import ml_collections

from configs import common, data

# The class_weighting of the tutorial's SoftmaxWithLoss layers (Sky, Building, Pole, Road,
# Pavement, Tree, SignSymbol, Fence, Car, Pedestrian, Bicyclist).
SEGNET_CAMVID_CLASS_WEIGHTS = (0.2595, 0.1826, 4.5640, 0.1417, 0.9051, 0.3826, 9.6446, 1.8418,
                               0.6823, 6.2478, 7.3614)
# Caffe's lr_mult / decay_mult of the prototxts, first match wins.
SEGNET_PARAM_RULES = ({"pattern": "*_bn/bias", "lr": 1.0, "decay": 0},
                      {"pattern": "*/bias", "lr": 2.0, "decay": 0})
SEGNET_BASIC_PARAM_RULES = ({"pattern": "*_bn/*", "lr": 1.0, "decay": 1},
                            {"pattern": "*/bias", "lr": 2.0, "decay": 0})
# SegNet's inputs: raw 0-255 BGR, no mean subtraction (the family's preprocessing).
SEGNET_INPUT = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_scale=1.0, channel_order="BGR")
# The same median-frequency balancing for the synthetic look-alike scenes' 11 classes (sky,
# water, road, grass, sand, boat, car, bird, cow, tree, sign), from their 2048 training scenes:
#   python -m psp_jax.data.class_weights --config configs/segnet.py:segnet_synthetic_mini
SYNTHETIC_CLASS_WEIGHTS = (0.8001, 0.8418, 0.7831, 0.8557, 0.4413, 1.0331, 1.0000, 1.0102, 1.0123,
                           1.6199, 1.4874)
CAMVID_HW = (360, 480)
MINI_HW = (120, 160)


def _base(name: str, base_lr: float, steps: int, param_rules: tuple,
          hw: tuple[int, int] = CAMVID_HW, width: int = 64,
          data_cfg: ml_collections.ConfigDict | None = None) -> ml_collections.ConfigDict:
  data_cfg = data_cfg or data.camvid()
  classes = ml_collections.FieldReference(int(data_cfg.num_classes))
  model = dict(name=name, num_classes=classes, in_channels=3, width=width, dtype="float32")
  data_cfg.update(SEGNET_INPUT)
  data_cfg.num_classes = classes
  data_cfg.crop_size = tuple(hw)
  data_cfg.augmentation.enabled = False  # whole images, no augmentation (the tutorial)
  optim = common.sgd_poly(base_lr, {}, weight_decay=5e-4, momentum=0.9)
  optim.schedule = "constant"
  optim.param_rules = [dict(r) for r in param_rules]
  cfg = common.base("segmentation", model, data_cfg,
                    common.train(steps, batch_size=4, aux_weight=0.0,
                                 class_weights=SEGNET_CAMVID_CLASS_WEIGHTS),
                    optim, common.segmentation_eval(tuple(hw), max(hw), every=1000))
  cfg.train.checkpoint_every = 1000
  cfg.train.log_every = 20
  return cfg


def segnet_camvid() -> ml_collections.ConfigDict:
  """The tutorial's SegNet (VGG-16 encoder, from He init): lr 0.001, 40k iterations, batch 4."""
  return _base("segnet", 0.001, 40_000, SEGNET_PARAM_RULES)


def segnet_basic_camvid() -> ml_collections.ConfigDict:
  """The tutorial's SegNet-Basic: lr 0.1, 10k iterations, batch 4."""
  return _base("segnet_basic", 0.1, 10_000, SEGNET_BASIC_PARAM_RULES)


def segnet_ade20k() -> ml_collections.ConfigDict:
  """SegNet (VGG-16 encoder) on ADE20K for PSPNet's Table 4 comparison row (its 21.64 mIoU is
  the ADE20K paper's, whose SegNet recipe the spec does not give): the tutorial's optimiser
  (SGD 0.9, lr 0.001 constant, wd 5e-4, Caffe's bias rules, batch 4) on PSPNet's ADE20K data
  (473 crops, scale 0.5-2, rotation, blur, flip), 150K iterations (PSPNet's budget), no class
  weights (the tutorial's are CamVid's), BN statistics recomputed before testing."""
  cfg = _base("segnet", 0.001, 150_000, SEGNET_PARAM_RULES, hw=(473, 473), data_cfg=data.ade20k())
  cfg.data.augmentation = data.ade20k().augmentation  # PSPNet's, not the tutorial's none
  cfg.train.class_weights = None
  cfg.eval.base_size = 512
  cfg.eval.every = 10_000
  cfg.train.checkpoint_every = 10_000
  return cfg


def _mini(cfg: ml_collections.ConfigDict, width: int, steps: int) -> ml_collections.ConfigDict:
  """A recipe at a third of CamVid's resolution: images scaled by exactly 1/3 (the only
  augmentation, no flip/rotation/blur), trained and evaluated whole at 120x160."""
  cfg.model.width = width
  cfg.data.crop_size = MINI_HW
  cfg.data.augmentation = dict(enabled=True, scale_min=1.0 / 3.0, scale_max=1.0 / 3.0, rotate_deg=0.0,
                               rotate_prob=0.0, blur_prob=0.0, blur_kernel=5, flip_prob=0.0, crop=True)
  cfg.data.worker_count = 0
  cfg.train.steps = steps
  cfg.train.checkpoint_every = 100
  cfg.train.log_every = 25
  cfg.eval.crop_size = MINI_HW
  cfg.eval.base_size = max(MINI_HW)
  cfg.eval.every = 0
  cfg.eval.window_batch = 4
  cfg.eval.log_images = 0
  return cfg


def segnet_mini() -> ml_collections.ConfigDict:
  """SegNet's recipe at 120x160, width 8 (stages 8..64 channels), 300 iterations."""
  return _mini(segnet_camvid(), width=8, steps=300)


def segnet_basic_mini() -> ml_collections.ConfigDict:
  """SegNet-Basic's recipe at 120x160, width 16, 300 iterations."""
  return _mini(segnet_basic_camvid(), width=16, steps=300)


def _synthetic_mini(cfg: ml_collections.ConfigDict, width: int) -> ml_collections.ConfigDict:
  """A recipe on the embedded synthetic look-alike scenes (configs/data.py:synthetic): whole
  193 px images, no augmentation, 150 iterations of batch 8 as the other families' synthetic
  minis, the recipe's median-frequency class weights recomputed for these scenes
  (SYNTHETIC_CLASS_WEIGHTS)."""
  classes = cfg.model.num_classes
  synthetic = data.synthetic()
  synthetic.update(SEGNET_INPUT)
  synthetic.num_classes = classes
  cfg.data = synthetic
  cfg.model.width = width
  cfg.train.steps = 150
  cfg.train.batch_size = 8
  cfg.train.class_weights = SYNTHETIC_CLASS_WEIGHTS
  cfg.train.checkpoint_every = 100
  cfg.train.log_every = 25
  cfg.eval.crop_size = (193, 193)
  cfg.eval.base_size = 193
  cfg.eval.every = 0
  cfg.eval.window_batch = 4
  cfg.eval.log_images = 0
  return cfg


def segnet_synthetic_mini() -> ml_collections.ConfigDict:
  """SegNet's recipe (width 8) on the synthetic look-alike scenes, 193 px, 150 iterations."""
  return _synthetic_mini(segnet_camvid(), width=8)


def segnet_basic_synthetic_mini() -> ml_collections.ConfigDict:
  """SegNet-Basic's recipe (width 16) on the synthetic look-alike scenes, 193 px, 150 iterations."""
  return _synthetic_mini(segnet_basic_camvid(), width=16)


VARIANTS = (segnet_camvid, segnet_basic_camvid, segnet_ade20k, segnet_mini, segnet_basic_mini, segnet_synthetic_mini,
            segnet_basic_synthetic_mini)


def get_config(name: str = "segnet_basic_mini") -> ml_collections.ConfigDict:
  """Entry point of `--config configs/segnet.py:NAME`."""
  variants = {f.__name__: f for f in VARIANTS}
  if name not in variants:
    raise ValueError(f"configs/segnet.py has no variant {name!r}; choose one of {sorted(variants)}")
  return variants[name]()
