"""PSPNet training configs, one function per named variant (plain data, no logic).

  psp-jax train --config configs/pspnet.py:ade20k_r50 --workdir runs/ade20k_r50 \
      --config.data.manual_dir=/data/ADEChallengeData2016_parent --config.train.batch_size=16

Every field can be overridden on the command line (`--config.optim.base_lr=0.005`); an
unknown key or a value of the wrong type is an error naming the key. `model.num_classes` and
`data.num_classes` are one shared field.

Fields (the shared ones are described in configs/common.py):
  seed                  initialisation, dropout and data order
  task                  'segmentation' (psp_jax/tasks/segmentation.py)
  model.*               the constructor fields of psp_jax.models.PSPNet (dtype as a string)
  data.*                see configs/data.py
  train.steps           iterations (the poly schedule runs over them)
  train.batch_size      GLOBAL batch, split over all devices of all hosts
  train.aux_weight      weight of the auxiliary loss (0.4 in the paper)
  train.sync_bn         BatchNorm statistics over the global batch (True) or per device
  train.bn_group_size   sync within groups of this many devices (None: all)
  train.frozen_bn       running statistics and BN affine parameters fixed (small-batch fine-tune)
  train.init_checkpoint a converted checkpoint (psp-jax convert) to start from; '' = random init
  train.checkpoint_every / keep_checkpoints / log_every
  train.num_devices     use the first N devices (None: all)
  train.debug_nan_at_step  testing aid: feed NaN images at this step (0: never) to exercise the
                        non-finite-loss guard
  optim.*               see psp_jax.train.optim.make_optimizer
  eval.every            evaluate every N steps (and at the end)
  eval.split / crop_size / base_size / scales / flip / stride_rate / window_batch: the
                        sliding-window protocol of psp_jax.evaluate.inference
  eval.max_images       evaluate only the first N images (0: all); reports label this a subset
  eval.log_images       predicted masks written to TensorBoard at each evaluation
  distributed.*         jax.distributed.initialize arguments for multi-host runs ('' = one host)
"""
from __future__ import annotations

import ml_collections

from configs import common, data

PAPER_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def _base(num_classes: int, data_cfg: ml_collections.ConfigDict, depth: int = 50,
          steps: int = 150_000, crop: int = 473, base_size: int = 512) -> ml_collections.ConfigDict:
  classes = ml_collections.FieldReference(num_classes)
  model = dict(
      name="pspnet", num_classes=classes, in_channels=3, depth=depth, stem="deep", output_stride=8,
      dilation_pattern="semseg", width=64, context="ppm", context_rates=(), image_pooling=True,
      bins=(1, 2, 3, 6), pool="avg",
      reduction=True, aux=True, head_features=512, aux_features=256, dropout=0.1,
      align_corners=True, dtype="float32")
  cfg = common.base("segmentation", model, data_cfg,
                    common.train(steps, batch_size=16, aux_weight=0.4),
                    common.sgd_poly(0.01, {"ppm": 10.0, "head": 10.0, "aux_head": 10.0}),
                    common.segmentation_eval((crop, crop), base_size))
  cfg.data.num_classes = classes
  cfg.data.crop_size = (crop, crop)
  return cfg


def ade20k_r50() -> ml_collections.ConfigDict:
  """The paper's ADE20K recipe: PSPNet-50, 473 crops, batch 16, 150K iterations, aux 0.4."""
  return _base(150, data.ade20k(), depth=50, steps=150_000)


def ade20k_r101() -> ml_collections.ConfigDict:
  """ADE20K with ResNet-101 (Table 3)."""
  return _base(150, data.ade20k(), depth=101, steps=150_000)


def voc_r101() -> ml_collections.ConfigDict:
  """PASCAL VOC 2012 train_aug: PSPNet-101, 473 crops, 30K iterations."""
  return _base(21, data.voc(), depth=101, steps=30_000)


def cityscapes_r50() -> ml_collections.ConfigDict:
  """Cityscapes fine: PSPNet-50, 713 crops, base size 2048, 90K iterations."""
  return _base(19, data.cityscapes(), depth=50, steps=90_000, crop=713, base_size=2048)


def cityscapes_r101() -> ml_collections.ConfigDict:
  """Cityscapes fine: PSPNet-101, 713 crops, base size 2048, 90K iterations."""
  return _base(19, data.cityscapes(), depth=101, steps=90_000, crop=713, base_size=2048)


def camvid_r18() -> ml_collections.ConfigDict:
  """CamVid (SegNet split, 11 classes) with a ResNet-18 PSPNet: 353 crops, base size 480."""
  cfg = _base(11, data.camvid(), depth=18, steps=10_000, crop=353, base_size=480)
  cfg.model.head_features = 256
  cfg.model.aux_features = 128
  cfg.train.batch_size = 8
  cfg.train.checkpoint_every = 1000
  cfg.eval.every = 1000
  return cfg


def demo() -> ml_collections.ConfigDict:
  """A CPU demo on the embedded synthetic scenes: a narrow ResNet-18 PSPNet, a few minutes."""
  cfg = _base(11, data.synthetic(), depth=18, steps=600, crop=97, base_size=193)
  cfg.model.stem = "classic"
  cfg.model.width = 16
  cfg.model.head_features = 64
  cfg.model.aux_features = 32
  cfg.optim.base_lr = 0.02
  cfg.train.batch_size = 16
  cfg.train.checkpoint_every = 200
  cfg.train.log_every = 20
  cfg.eval.every = 200
  cfg.eval.window_batch = 4
  return cfg


def synthetic_mini() -> ml_collections.ConfigDict:
  """Ablation tables at `mini` scale (psp-jax ablate): about a minute per run on 2 CPU cores.

  The embedded synthetic look-alike scenes at 193 px (the size at which context matters, see
  experiments/synthetic_context_gap.py), trained and evaluated on whole images (193 crops, one
  evaluation window), a ResNet-18 PSPNet of width 8, the paper's optimiser (SGD, poly 0.9,
  10x head lr) with aux 0.4; evaluation only at the end, no TensorBoard images.
  """
  cfg = _base(11, data.synthetic(), depth=18, steps=150, crop=193, base_size=193)
  cfg.model.stem = "classic"
  cfg.model.width = 8
  cfg.model.head_features = 32
  cfg.model.aux_features = 16
  cfg.optim.base_lr = 0.02
  cfg.train.batch_size = 8
  cfg.train.checkpoint_every = 100
  cfg.train.log_every = 25
  cfg.eval.every = 0
  cfg.eval.window_batch = 4
  cfg.eval.log_images = 0
  return cfg


def camvid_mini() -> ml_collections.ConfigDict:
  """Table 4 at `mini` scale: CamVid at a third of its size, about a minute per run on 2 cores.

  Images are 360x480 on disk; training scales them by 1/3 (the paper's 0.5-2 scale range
  becomes 1/6-2/3) and crops 121x161 (the whole 120x160 image at scale 1/3), evaluation
  resizes the long side to 160 and runs one 121x161 window. With data augmentation off the
  scale must stay 1/3: set scale_min = scale_max = 1/3 and the rotate/blur/flip
  probabilities to 0 (experiments/pspnet_table4.py does), not `augmentation.enabled=False`,
  which would train on full-size crops. A ResNet-18 PSPNet of width 8 from scratch.
  """
  cfg = _base(11, data.camvid(), depth=18, steps=300, crop=121, base_size=160)
  cfg.data.crop_size = (121, 161)
  cfg.data.augmentation.scale_min = 1.0 / 6.0
  cfg.data.augmentation.scale_max = 2.0 / 3.0
  cfg.data.worker_count = 0
  cfg.model.stem = "classic"
  cfg.model.width = 8
  cfg.model.head_features = 32
  cfg.model.aux_features = 16
  cfg.optim.base_lr = 0.02
  cfg.train.batch_size = 8
  cfg.train.checkpoint_every = 100
  cfg.train.log_every = 25
  cfg.eval.crop_size = (121, 161)
  cfg.eval.every = 0
  cfg.eval.window_batch = 4
  cfg.eval.log_images = 0
  return cfg


def get_config(name: str = "demo") -> ml_collections.ConfigDict:
  """Entry point of `--config configs/pspnet.py:NAME` (ml_collections config_flags)."""
  variants = {f.__name__: f for f in (ade20k_r50, ade20k_r101, voc_r101, cityscapes_r50,
                                      cityscapes_r101, camvid_r18, demo, synthetic_mini,
                                      camvid_mini)}
  if name not in variants:
    raise ValueError(f"unknown config {name!r}; choose one of {sorted(variants)}")
  return variants[name]()
