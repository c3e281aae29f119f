"""`data` config sections, one function per dataset (plain data, no logic).

Use from a training config:  `config.data = data.camvid()`, then override fields
(`--config.data.manual_dir=/path/to/CamVid`). Every field:

  name              dataset: 'ade20k' | 'voc' | 'cityscapes' | 'camvid' | 'folder' | 'synthetic'
                    | 'tfds:<catalog name>' (any TFDS catalog dataset with image + mask; needs TF)
  manual_dir        folder holding the files the user downloaded (see the builder docstrings in
                    psp_jax/data/builders/); not needed for 'synthetic'
  data_dir          where TFDS writes the prepared dataset (ArrayRecord); default ~/tensorflow_datasets
  num_classes       number of classes (labels 0..num_classes-1; must match the builder)
  ignore_label      label value that counts nowhere (always 255 in stored data)
  class_names       None: the builder's built-in names (psp_jax/data/classes.py); a list for 'folder'
  train_split / eval_split   TFDS split names ('train', 'validation', 'test', 'train_aug' for VOC)
  crop_size         training crop (H, W); 8k+1 suits align_corners (473, 713)
  augmentation.enabled       False = the paper's baseline (crop only); True = "+DA"
  augmentation.scale_min/max random scale range (1.0, 1.0 switches scaling off)
  augmentation.rotate_deg    rotation range +-deg; rotate_prob its probability (0 = off)
  augmentation.blur_prob     Gaussian blur probability (0 = off); blur_kernel its odd size
  augmentation.flip_prob     horizontal flip probability (0 = off)
  augmentation.crop          True random crop, False centre crop (debugging)
  mean / std        normalisation of 0-1 RGB (ImageNet statistics); padding uses the mean pixel
  seed              data seed: shuffling and per-example augmentation (seed, epoch, record index)
  shuffle           shuffle training records (a new global permutation every epoch)
  worker_count      Grain worker processes decoding/augmenting (0 = threads of the main process)
  read_threads      threads per worker (or of the main process when worker_count = 0)
  prefetch          batches buffered per worker (and by the reading threads)
  eval_batch_size   evaluation batch per process (images padded to one bucket, see eval_pad_size)
  eval_pad_size     (H, W) bucket evaluation images are padded to; None = the split's largest image
  skip_bad_examples False: a bad file stops the prepare with its name and problem; True: skip
                    it, report how many and which (printed and in the dataset metadata)
  prepare_threads   threads decoding/validating files while preparing
  colors            CamVid/folder: RGB colour per class for colour-coded masks (None = grey-level)
  label_map         folder: {raw mask value: class index or 255}; None = identity + ignore_values
  ignore_values     folder: raw values meaning ignore when label_map is None
  ignore_colors     folder: RGB colours meaning ignore
  splits            folder: {split: sub-folder of images/ and masks/}; None = the sub-folders found
  dataset_name      folder: a name for the prepared dataset (part of its TFDS config name)
  synthetic.*       synthetic: num_train, num_val, size (H, W), seed, options (generate_scene kwargs)
  tfds.image_key / tfds.label_key / tfds.label_map   'tfds:' catalog datasets: feature names and
                    an optional raw -> class map applied when loading (its only mapping)
"""
from __future__ import annotations

import ml_collections

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _base(name: str, num_classes: int, crop: int) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name,
      manual_dir="",
      data_dir="~/tensorflow_datasets",
      num_classes=num_classes,
      ignore_label=255,
      class_names=ml_collections.FieldReference(None, field_type=list),
      train_split="train",
      eval_split="validation",
      crop_size=(crop, crop),
      augmentation=dict(enabled=True, scale_min=0.5, scale_max=2.0, rotate_deg=10.0, rotate_prob=0.5,
                        blur_prob=0.5, blur_kernel=5, flip_prob=0.5, crop=True),
      mean=IMAGENET_MEAN,
      std=IMAGENET_STD,
      seed=0,
      shuffle=True,
      worker_count=4,
      read_threads=2,
      prefetch=2,
      eval_batch_size=1,
      eval_pad_size=ml_collections.FieldReference(None, field_type=tuple),
      skip_bad_examples=False,
      prepare_threads=4,
      colors=ml_collections.FieldReference(None, field_type=list),
  ))


def ade20k() -> ml_collections.ConfigDict:
  """ADE20K SceneParsing, 150 classes, 473 crops (manual_dir: holds ADEChallengeData2016/)."""
  return _base("ade20k", 150, 473)


def voc() -> ml_collections.ConfigDict:
  """PASCAL VOC 2012 + SBD train_aug, 21 classes, 473 crops (manual_dir: holds VOCdevkit/)."""
  cfg = _base("voc", 21, 473)
  cfg.train_split = "train_aug"
  return cfg


def cityscapes() -> ml_collections.ConfigDict:
  """Cityscapes fine, 19 trainIds, 713 crops (manual_dir: holds leftImg8bit/ and gtFine/)."""
  return _base("cityscapes", 19, 713)


def camvid() -> ml_collections.ConfigDict:
  """CamVid SegNet split, 11 classes, 360x480 images (manual_dir: the SegNet CamVid/ folder)."""
  cfg = _base("camvid", 11, 353)
  cfg.manual_dir = "../shared/data/camvid"
  cfg.eval_pad_size = (360, 480)
  return cfg


def folder() -> ml_collections.ConfigDict:
  """Your own images/ + masks/ folders (set class_names, num_classes and the label options)."""
  cfg = _base("folder", 2, 473)
  cfg.dataset_name = "folder"
  cfg.label_map = ml_collections.FieldReference(None, field_type=dict)
  cfg.ignore_values = [255]
  cfg.ignore_colors = ml_collections.FieldReference(None, field_type=list)
  cfg.splits = ml_collections.FieldReference(None, field_type=dict)
  return cfg


def synthetic() -> ml_collections.ConfigDict:
  """Synthetic look-alike scenes (psp_jax.data.synthetic), generated while preparing.

  193 px: at 65-129 px a dilated ResNet-18 FCN sees the whole image and there is no context gap.
  """
  cfg = _base("synthetic", 11, 193)
  cfg.synthetic = dict(num_train=2048, num_val=256, size=(193, 193), seed=0, options={})
  cfg.augmentation.enabled = False
  cfg.worker_count = 0
  cfg.eval_pad_size = (193, 193)
  return cfg


def tfds_catalog(catalog_name: str = "", num_classes: int = 0) -> ml_collections.ConfigDict:
  """Any TFDS catalog dataset with an image and a segmentation mask (needs TensorFlow)."""
  cfg = _base(f"tfds:{catalog_name}", num_classes, 473)
  cfg.tfds = dict(image_key="image", label_key="segmentation_mask",
                  label_map=ml_collections.FieldReference(None, field_type=dict))
  return cfg


def get_config(name: str = "camvid") -> ml_collections.ConfigDict:
  """`--config configs/data.py:camvid` style access for tools that load this file directly."""
  return globals()[name]()
