"""`data` config sections, one function per dataset (plain data, no logic).

Use from a training config:  `config.data = data.camvid()`, then override fields
(`--config.data.manual_dir=/path/to/CamVid`). Every field:

  name              dataset: 'ade20k' | 'voc' | 'cityscapes' | 'camvid' | 'folder' | 'synthetic'
                    | 'binary_masks' (refinement data, see below)
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
  mean / std        normalisation (ImageNet statistics of 0-1 RGB by default); padding uses the
                    mean pixel
  input_scale       images are divided by it before mean/std (255: 0-1 values; 1: raw 0-255)
  channel_order     'RGB' or 'BGR': the channel order the model takes (mean/std in that order);
                    see psp_jax/preprocessing.py. SegNet: 1, mean 0, std 1, BGR.
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
  lookalike_groups  groups of class names that look alike and differ only by their context; when
                    set, evaluations also report lookalike_mIoU, twin_rate and twins
                    (psp_jax/evaluate/metrics.py:lookalike_metrics); the synthetic scenes' groups
  label_map         folder: {raw mask value: class index or 255}; None = identity + ignore_values
  ignore_values     folder: raw values meaning ignore when label_map is None
  ignore_colors     folder: RGB colours meaning ignore
  splits            folder: {split: sub-folder of images/ and masks/}; None = the sub-folders found
  dataset_name      folder: a name for the prepared dataset (part of its TFDS config name)
  synthetic.*       synthetic: num_train, num_val, size (H, W), seed, options (generate_scene kwargs)
  tfds.image_key / tfds.label_key / tfds.label_map   'tfds:' catalog datasets: feature names and
                    an optional raw -> class map applied when loading (its only mapping)

Refinement (CascadePSP) data, read by psp_jax.data.refine_pipeline (binary_masks, synthetic_objects):
  sources / val_sources  binary_masks: [{'layout': L, 'dir': PATH}, ...] merged into the train /
                    validation split; layouts msra10k, dut_omron, ecssd, fss1000, duts, pairs, flat
                    (psp_jax/data/builders/binary_masks.py); relative dirs are under `root`
  root              binary_masks: the folder relative source dirs live in
  mask_threshold    binary_masks: mask grey level above which a pixel is foreground (127)
  foreground_classes class indices or names that are the object; others and ignore are background
                    (None: [1] for 2-class datasets)
  objects           None, or class-agnostic objects of a segmentation dataset instead of
                    foreground_classes (psp_jax/data/objects.py): classes (indices or names, None =
                    all), min_pixels, merge_per_class, eval_per_image, crop_on_object,
                    crop_to_box
  mix               None, or {'data': another refinement data config, 'fraction': f}: a share f
                    of the training examples comes from that config's train split (its images and
                    objects; this config's crop, augmentation, normalisation); see mixed()
  refine_augment.crop / flip_prob          random crop (pad-if-needed) / horizontal flip probability
  refine_augment.brightness / contrast / saturation   colour jitter strengths (0.2, 0.05, 0.05)
  refine_augment.grayscale_prob            random grayscale probability (0.1)
  refine_augment.perturb.*                 the coarse-mask perturbation (psp_jax/data/perturb.py):
                    iou_min, iou_max (target range 0.8, 1.0), tolerance (0.05: an operation
                    overshooting the target by more is undone), contour_prob, drop_run, keep_fraction,
                    jitter, min_vertices (contour stage), max_rounds, ops_per_round, kernel_min,
                    kernel_max, flip_prob, margin (dilate/erode stage), lowres_min, lowres_max
                    (0, 0: off, the paper's; else a low-resolution stage: the mask seen at 1/f of
                    its size, f ~ U[min, max], as a segmentation network's upsampled output)
"""
from __future__ import annotations

import copy

import ml_collections

from psp_jax.constants import IGNORE_LABEL, IMAGENET_MEAN, IMAGENET_STD  # noqa: F401
from psp_jax.data.synthetic import LOOKALIKE_GROUPS


def _base(name: str, num_classes: int, crop: int) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      name=name,
      manual_dir="",
      data_dir="~/tensorflow_datasets",
      num_classes=num_classes,
      ignore_label=IGNORE_LABEL,
      class_names=ml_collections.FieldReference(None, field_type=list),
      train_split="train",
      eval_split="validation",
      crop_size=(crop, crop),
      augmentation=dict(enabled=True, scale_min=0.5, scale_max=2.0, rotate_deg=10.0, rotate_prob=0.5,
                        blur_prob=0.5, blur_kernel=5, flip_prob=0.5, crop=True),
      mean=IMAGENET_MEAN,
      std=IMAGENET_STD,
      input_scale=255.0,
      channel_order="RGB",
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
      lookalike_groups=(),
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
  cfg.lookalike_groups = LOOKALIKE_GROUPS
  cfg.augmentation.enabled = False
  cfg.worker_count = 0
  cfg.eval_pad_size = (193, 193)
  return cfg


def _refinement(cfg: ml_collections.ConfigDict, foreground) -> ml_collections.ConfigDict:
  """The refinement sections on top of `_base` (PSPNet's `augmentation` does not apply)."""
  del cfg.augmentation
  cfg.foreground_classes = foreground
  cfg.objects = ml_collections.FieldReference(None, field_type=dict)
  cfg.mix = ml_collections.FieldReference(None, field_type=dict)
  cfg.refine_augment = dict(
      crop=True, flip_prob=0.5, brightness=0.2, contrast=0.05, saturation=0.05, grayscale_prob=0.1,
      perturb=dict(iou_min=0.8, iou_max=1.0, tolerance=0.05, contour_prob=1.0, drop_run=0.1,
                   keep_fraction=0.1, jitter=1.0, min_vertices=10, max_rounds=250, ops_per_round=4,
                   kernel_min=3, kernel_max=9, flip_prob=0.25, margin=9, lowres_min=0.0, lowres_max=0.0))
  return cfg


PAPER_REFINE_SOURCES = (
    {"layout": "msra10k", "dir": "MSRA10K_Imgs_GT"},  # MSRA10K_Imgs_GT/Imgs/*.{jpg,png}
    {"layout": "dut_omron", "dir": "DUT-OMRON"},      # DUT-OMRON/{DUT-OMRON-image,pixelwiseGT-new-PNG}/
    {"layout": "ecssd", "dir": "ECSSD"},              # ECSSD/{images,ground_truth_mask}/
    {"layout": "fss1000", "dir": "fewshot_data"},     # fewshot_data/<class>/<k>.{jpg,png}
)


def binary_masks(root: str = "", sources=PAPER_REFINE_SOURCES, val_sources=()) -> ml_collections.ConfigDict:
  """Binary object masks for CascadePSP training: by default the paper's MSRA-10K, DUT-OMRON,
  ECSSD and FSS-1000 as distributed, in these folders under `root` (--config.data.root=...).
  The folders CascadePSP's download script writes are sources too:
  [{'layout': 'flat', 'dir': 'DUTS-TR'}, {'layout': 'flat', 'dir': 'ecssd'},
   {'layout': 'flat', 'dir': 'MSRA_10K'}, {'layout': 'fss1000', 'dir': 'fss'}].
  No validation split unless val_sources is set (e.g. [{'layout': 'flat', 'dir': 'DUTS-TE'}])."""
  cfg = _refinement(_base("binary_masks", 2, 224), [1])
  cfg.root = root
  cfg.sources = [dict(s) for s in sources]
  cfg.val_sources = [dict(s) for s in val_sources]
  cfg.mask_threshold = 127
  cfg.eval_split = "validation"
  return cfg


def synthetic_objects() -> ml_collections.ConfigDict:
  """Refinement data without downloads: the objects (look-alikes, trees, signs, on their plates)
  of the synthetic scenes (psp_jax.data.synthetic) are the foreground. 256 px scenes, 384 for
  training, 32 held out; prepared in about 10 s on one CPU core."""
  cfg = _refinement(_base("synthetic", 11, 224), ["boat", "car", "bird", "cow", "tree", "sign"])
  cfg.synthetic = dict(num_train=384, num_val=32, size=(256, 256), seed=0, options={})
  cfg.worker_count = 0
  return cfg


def objects_of(segmentation: ml_collections.ConfigDict, classes=None, min_pixels: int = 400,
               merge_per_class: bool = False, eval_per_image: int = 1,
               crop_on_object: bool = True, crop_to_box: float = 0.0) -> ml_collections.ConfigDict:
  """Refinement data from any segmentation data config (ade20k(), voc(), camvid(), folder()):
  class-agnostic objects, each connected component of `classes` (None: all) with at least
  `min_pixels` pixels (psp_jax/data/objects.py)."""
  cfg = _refinement(segmentation, ml_collections.FieldReference(None, field_type=list))
  del cfg.objects  # a section instead of the None placeholder, so its fields can be overridden
  cfg.objects = dict(classes=None if classes is None else list(classes), min_pixels=min_pixels,
                     merge_per_class=merge_per_class, eval_per_image=eval_per_image,
                     crop_on_object=crop_on_object, crop_to_box=crop_to_box)
  return cfg


def mixed(main: ml_collections.ConfigDict, other: ml_collections.ConfigDict,
          fraction: float = 0.5) -> ml_collections.ConfigDict:
  """Refinement data whose training examples come from two sources: `main`'s, with `fraction`
  of them drawn from `other`'s train split instead (its images and its objects or foreground
  classes; crop, augmentation and normalisation stay `main`'s). Evaluation is on `main`'s."""
  cfg, other = copy.deepcopy(main), copy.deepcopy(other)
  del cfg.mix  # a section instead of the None placeholder, so its fields can be overridden
  del other.mix
  cfg.mix = dict(data=other, fraction=fraction)
  return cfg


CAMVID_OBJECT_CLASSES = ("Building", "Pole", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
                         "Bicyclist")  # CamVid without Sky, Road, Pavement: the frame-wide stuff


def camvid_objects(crop_to_box: float = 0.0) -> ml_collections.ConfigDict:
  """Refinement data from real photographs: CamVid's road scenes (../shared/data/camvid, 367
  train + 101 val), each connected component of the object-like classes with at least 400
  pixels an object; training crops are placed on the object (crop_to_box > 0: framed by the
  object's box with that context, resized to the crop)."""
  cfg = objects_of(camvid(), CAMVID_OBJECT_CLASSES, min_pixels=400, crop_to_box=crop_to_box)
  cfg.worker_count = 2
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
