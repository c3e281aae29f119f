"""Grain pipelines of the CascadePSP refinement module: perturbed-mask training crops, and
full-size evaluation examples with fixed coarse masks.

  it = refine_train_iterator(data_cfg, global_batch_size)   # infinite, per-process batches
  batch = next(it)  # {'image': f32 (B, C, C, 3) normalised with data.mean/std,
                    #  'seg':   f32 (B, C, C) {0, 1}: the perturbed ground truth (the input mask),
                    #  'gt':    f32 (B, C, C) {0, 1}: the ground truth},  C = data.crop_size
  state = it.get_state(); ...; it.set_state(state)          # resume on exactly the next batch
  for name, image, gt, coarse in refine_eval_examples(data_cfg, "validation"): ...

The stream machinery is the segmentation pipeline's (`psp_jax.data.pipeline.train_records`):
per-process shards, a new shuffle each epoch, per-example RNG from (seed, epoch, record),
worker processes, get_state/set_state.

Ground truth: pixels whose class is in `data.foreground_classes` (indices, or names of
the dataset's classes) are foreground; every other class and ignore (255) is background.
Default: [1] for 2-class datasets (binary_masks); other datasets must set it.
Or, with `data.objects` set (psp_jax/data/objects.py), class-agnostic objects of any
segmentation dataset: one connected component (or one class) per example, drawn from the
record's label map; training crops are then placed on the object (`crop_on_object`), and
evaluation yields `eval_per_image` objects per image, named '<record>/<class>#<k>'.

Mixed sources (`data.mix = {'data': <another refinement data config>, 'fraction': f}`, see
configs/data.py:mixed): a share f of the training examples is drawn from the other config's
train split (its images, its foreground classes or objects), in Grain's deterministic weighted
interleave; crop, augmentation, normalisation and workers are this config's, so the module
sees one recipe. Evaluation uses this config's split only.

Per training example (CascadePSP's order; `data.refine_augment`, see `RefineAugment`):
  1. random crop C x C; a side shorter than C is padded, the image placed at a random offset
     (as RandomCrop(pad_if_needed) followed by the crop): image padding is the mean pixel
     (0 after normalisation), mask padding is background;
  2. horizontal flip (flip_prob);
  3. colour jitter on the image's real pixels, brightness / contrast / saturation factors
     drawn from [1 - x, 1 + x] and applied in a random order (torchvision ColorJitter), then
     grayscale with probability grayscale_prob;
  4. seg = `psp_jax.data.perturb` of the cropped ground truth (IoU target ~ U[0.8, 1.0)).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping, Sequence

import grain
import numpy as np

from psp_jax.data import pipeline as P
from psp_jax.data import transforms as T
from psp_jax.data.datasets import PreparedDataset, open_dataset
from psp_jax.data.objects import ObjectMasks, anchor_pixel, box_crop, resolve_classes
from psp_jax.constants import IGNORE_LABEL
from psp_jax.data.perturb import Perturbation
from psp_jax.preprocessing import Preprocessing

_get = P._get  # pylint: disable=protected-access
GREY = np.asarray([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as torchvision


@dataclasses.dataclass(frozen=True)
class RefineAugment:
  """The `data.refine_augment` config section (CascadePSP's values by default).

  crop: random crop (False: centre crop, for debugging); flip_prob: horizontal flip;
  brightness, contrast, saturation: colour jitter strengths (0 = off); grayscale_prob:
  random grayscale (torchvision's default 0.1); perturb: `Perturbation` fields.
  """
  crop: bool = True
  flip_prob: float = 0.5
  brightness: float = 0.2
  contrast: float = 0.05
  saturation: float = 0.05
  grayscale_prob: float = 0.1
  perturb: Perturbation = Perturbation()

  @classmethod
  def from_config(cls, cfg: Mapping[str, Any] | None) -> "RefineAugment":
    cfg = dict(cfg or {})
    perturb = Perturbation.from_config(cfg.pop("perturb", None))
    fields = {f.name for f in dataclasses.fields(cls)} - {"perturb"}
    unknown = set(cfg) - fields
    if unknown:
      raise ValueError(f"unknown data.refine_augment fields {sorted(unknown)}; known: {sorted(fields)} + 'perturb'")
    aug = cls(perturb=perturb, **cfg)
    for name in ("flip_prob", "grayscale_prob", "brightness", "contrast", "saturation"):
      if not 0.0 <= getattr(aug, name) <= 1.0:
        raise ValueError(f"data.refine_augment.{name} must be in [0, 1], got {getattr(aug, name)}")
    return aug


def foreground_table(data_cfg, class_names: Sequence[str]) -> np.ndarray:
  """uint8 (256,) lookup: stored label -> 1 for `data.foreground_classes`, else 0 (ignore too)."""
  classes = _get(data_cfg, "foreground_classes")
  if classes is None:
    if len(class_names) != 2:
      raise ValueError(f"data.foreground_classes is not set and the dataset has {len(class_names)} classes "
                       f"({list(class_names)[:12]}); list the object classes (indices or names)")
    classes = [1]
  table = np.zeros(256, np.uint8)
  table[list(resolve_classes(classes, class_names, "data.foreground_classes"))] = 1
  table[IGNORE_LABEL] = 0
  return table


def crop_with_padding(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, size: tuple[int, int],
                      fill: np.ndarray, random: bool = True, anchor: tuple[int, int] | None = None):
  """(image f32 (H, W, 3), mask uint8 (H, W)) -> crops of `size` and the box (y0, y1, x0, x1) of
  real pixels in the crop. Where a side is shorter than the crop, the image lands at a
  random offset inside it; padding is `fill` for the image and 0 for the mask. anchor:
  a pixel (y, x) the random crop must contain."""
  h, w = mask.shape
  ch, cw = size

  def offset(n, c, a):  # crop start in image coordinates; negative = padding before the image
    lo, hi = min(0, n - c), max(0, n - c)
    if a is not None:
      lo, hi = max(lo, a - c + 1), min(hi, a)
    return int(rng.integers(lo, hi + 1)) if random else (n - c) // 2

  ay, ax = (None, None) if anchor is None else anchor
  y, x = offset(h, ch, ay), offset(w, cw, ax)
  out_img = np.empty((ch, cw, 3), np.float32)
  out_img[...] = fill
  out_mask = np.zeros((ch, cw), np.uint8)
  sy0, sy1, sx0, sx1 = max(y, 0), min(y + ch, h), max(x, 0), min(x + cw, w)
  box = (sy0 - y, sy1 - y, sx0 - x, sx1 - x)
  out_img[box[0]:box[1], box[2]:box[3]] = image[sy0:sy1, sx0:sx1]
  out_mask[box[0]:box[1], box[2]:box[3]] = mask[sy0:sy1, sx0:sx1]
  return out_img, out_mask, box


def color_jitter(image: np.ndarray, rng: np.random.Generator, aug: RefineAugment) -> np.ndarray:
  """float32 RGB 0..255 (h, w, 3) -> jittered copy (torchvision ColorJitter semantics, hue 0)."""
  ops = []
  if aug.brightness > 0:
    ops.append(("brightness", rng.uniform(1 - aug.brightness, 1 + aug.brightness)))
  if aug.contrast > 0:
    ops.append(("contrast", rng.uniform(1 - aug.contrast, 1 + aug.contrast)))
  if aug.saturation > 0:
    ops.append(("saturation", rng.uniform(1 - aug.saturation, 1 + aug.saturation)))
  for k in rng.permutation(len(ops)) if ops else ():
    name, f = ops[k]
    f = np.float32(f)
    if name == "brightness":
      image = image * f
    elif name == "contrast":
      image = f * image + (1 - f) * np.float32((image @ GREY).mean())
    else:
      image = f * image + (1 - f) * (image @ GREY)[..., None]
    image = np.clip(image, 0, 255)
  if aug.grayscale_prob > 0 and rng.random() < aug.grayscale_prob:
    image = np.repeat((image @ GREY)[..., None], 3, axis=-1)
  return image


def refine_train_transform(image: np.ndarray, gt: np.ndarray, rng: np.random.Generator, aug: RefineAugment,
                           crop_size: tuple[int, int], pre: Preprocessing = T.DEFAULT,
                           crop_on_object: bool = False, crop_to_box: float = 0.0) -> dict[str, np.ndarray]:
  """uint8 RGB (H, W, 3) + uint8 {0, 1} gt (H, W) -> {'image', 'seg', 'gt'} crops (module doc).
  crop_on_object: the crop contains a random foreground pixel (when there is one).
  crop_to_box > 0: the crop is the object's box with that context, resized (objects.box_crop)."""
  fill = T.mean_pixel(pre)
  if crop_to_box > 0 and gt.any():
    img, mask, (y0, y1, x0, x1) = box_crop(image, gt, rng, tuple(crop_size), float(crop_to_box), fill)
  else:
    anchor = anchor_pixel(gt, rng) if crop_on_object else None
    img, mask, (y0, y1, x0, x1) = crop_with_padding(image, gt, rng, tuple(crop_size), fill, aug.crop, anchor)
  if aug.flip_prob > 0 and rng.random() < aug.flip_prob:
    img, mask = img[:, ::-1], mask[:, ::-1]
    y0, y1, x0, x1 = y0, y1, img.shape[1] - x1, img.shape[1] - x0
  img = np.ascontiguousarray(img)
  img[y0:y1, x0:x1] = color_jitter(img[y0:y1, x0:x1], rng, aug)  # padding stays the mean pixel
  mask = np.ascontiguousarray(mask)
  seg = aug.perturb(mask, rng)
  return {"image": T.normalize(img, pre), "seg": seg.astype(np.float32), "gt": mask.astype(np.float32)}


@dataclasses.dataclass(frozen=True)
class RefineTrainMap:
  """(stream position, (record index, record)) -> refinement training example; picklable.
  objects: class-agnostic objects (one drawn per example; an image without any gives an
  all-background example) instead of the `foreground` table."""
  decode: P.Decode
  foreground: np.ndarray | None
  aug: RefineAugment
  crop_size: tuple[int, int]
  preprocessing: Preprocessing
  seed: int
  records_per_epoch: int
  objects: ObjectMasks | None = None

  def __call__(self, position: int, item) -> dict:
    index, record = item
    rng = P.example_rng(self.seed, position, self.records_per_epoch, index)
    image, label = self.decode(index, record)
    if self.objects is None:
      return refine_train_transform(image, self.foreground[label], rng, self.aug, self.crop_size,
                                    self.preprocessing)
    gt = self.objects.pick(label, rng)
    gt = np.zeros(label.shape, np.uint8) if gt is None else gt
    return refine_train_transform(image, gt, rng, self.aug, self.crop_size, self.preprocessing,
                                  crop_on_object=self.objects.crop_on_object,
                                  crop_to_box=float(self.objects.crop_to_box))


def ground_truth(data_cfg, class_names: Sequence[str]) -> tuple[np.ndarray | None, ObjectMasks | None]:
  """(foreground table, None) or, with `data.objects` set, (None, ObjectMasks)."""
  objects = ObjectMasks.from_config(_get(data_cfg, "objects"), class_names)
  return (None, objects) if objects is not None else (foreground_table(data_cfg, class_names), None)


MIX_FIELDS = ("data", "fraction")
MIX_SEED_OFFSET = 7_919  # the mixed-in source's augmentation stream differs from the main one's


def mix_source(data_cfg) -> tuple[Any, float] | None:
  """(the mixed-in data config, its fraction of the training examples) from `data.mix`, or
  None when unset; a malformed section is an error naming the key."""
  mix = _get(data_cfg, "mix")
  if not mix:
    return None
  unknown = set(mix) - set(MIX_FIELDS)
  if unknown or "data" not in mix:
    raise ValueError(f"data.mix must have the fields {list(MIX_FIELDS)}, got {sorted(mix)}")
  fraction = float(_get(mix, "fraction", 0.5))
  if not 0.0 < fraction < 1.0:
    raise ValueError(f"data.mix.fraction is the share of training examples from data.mix.data and must be "
                     f"in (0, 1), got {fraction}")
  if _get(mix["data"], "mix"):
    raise ValueError("data.mix.data has a mix section of its own: a mix takes one plain source "
                     "(set data.mix.data.mix to None)")
  return mix["data"], fraction


def _train_examples(data_cfg, records: P.TrainRecords, *, aug: RefineAugment, crop_size, pre: Preprocessing,
                    seed: int) -> grain.MapDataset:
  """records -> unbatched refinement examples, the ground truth defined by `data_cfg`."""
  foreground, objects = ground_truth(data_cfg, records.dataset.class_names)
  mapper = RefineTrainMap(
      decode=P.Decode(records.dataset.num_classes, split=records.split),
      foreground=foreground, objects=objects, aug=aug, crop_size=crop_size, preprocessing=pre,
      seed=seed, records_per_epoch=records.per_shard)
  return records.ds.map_with_index(mapper)


def refine_train_dataset(data_cfg, global_batch_size: int, *, dataset: PreparedDataset | None = None,
                         mix_dataset: PreparedDataset | None = None,
                         process_index: int | None = None, process_count: int | None = None,
                         num_epochs: int | None = None) -> grain.IterDataset:
  """This process's refinement training IterDataset (iterate it for per-process batches).
  mix_dataset: the opened dataset of `data.mix.data` (opened here when None)."""
  records = P.train_records(data_cfg, global_batch_size, process_index=process_index,
                            process_count=process_count, dataset=dataset, num_epochs=num_epochs)
  recipe = dict(aug=RefineAugment.from_config(_get(data_cfg, "refine_augment")),
                crop_size=P._pair(_get(data_cfg, "crop_size", 224)),  # pylint: disable=protected-access
                pre=P.preprocessing(data_cfg))
  seed = int(_get(data_cfg, "seed", 0))
  examples = _train_examples(data_cfg, records, seed=seed, **recipe)
  mix = mix_source(data_cfg)
  if mix is not None:
    mix_cfg, fraction = mix
    mix_records = P.train_records(mix_cfg, global_batch_size, process_index=process_index,
                                  process_count=process_count, dataset=mix_dataset, num_epochs=num_epochs)
    extra = _train_examples(mix_cfg, mix_records, seed=seed + MIX_SEED_OFFSET, **recipe)
    examples = grain.MapDataset.mix([examples, extra], weights=[1.0 - fraction, fraction])
  return P.batch_examples(examples, records.batch, data_cfg)


def refine_train_iterator(data_cfg, global_batch_size: int, *, dataset: PreparedDataset | None = None,
                          mix_dataset: PreparedDataset | None = None,
                          process_index: int | None = None, process_count: int | None = None,
                          num_epochs: int | None = None) -> grain.DatasetIterator:
  """Iterator of per-process refinement batches with `get_state()` / `set_state()`."""
  return iter(refine_train_dataset(data_cfg, global_batch_size, dataset=dataset, mix_dataset=mix_dataset,
                                   process_index=process_index, process_count=process_count,
                                   num_epochs=num_epochs))


class RefineEvalExamples:
  """Iterable of (name, image uint8 (H, W, 3), gt uint8 (H, W) {0, 1}, coarse uint8 (H, W) {0, 1})
  at full size. coarse = the perturbed gt, drawn from `np.random.default_rng((seed, record
  index))`: the same inputs on every run and process. Records whose gt is empty are skipped
  (`skipped` lists their names after a pass; a line reports the count). Decoding is lazy, one
  image at a time. With `data.objects`, each record gives its drawn objects (same rng),
  named '<record>/<class name>#<k>'; max_images counts those examples."""

  def __init__(self, data_cfg, split: str, dataset: PreparedDataset, max_images: int | None, seed: int):
    if split not in dataset.sources:
      raise ValueError(f"refinement evaluation split {split!r} is not among the prepared splits "
                       f"{sorted(dataset.sources)} (eval.split; binary_masks datasets need data.val_sources)")
    self.split, self.source, self.max_images, self.seed = split, dataset.sources[split], max_images, int(seed)
    self.decode = P.Decode(dataset.num_classes, split=split)
    self.class_names = list(dataset.class_names)
    self.foreground, self.objects = ground_truth(data_cfg, dataset.class_names)
    self.perturb = RefineAugment.from_config(_get(data_cfg, "refine_augment")).perturb
    self.skipped: list[str] = []

  def __iter__(self) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    self.skipped = []
    count = 0
    for index in range(len(self.source)):
      if self.max_images and count >= self.max_images:
        break
      record = self.source[index]
      image, label = self.decode(index, record)
      name = P._name(record)  # pylint: disable=protected-access
      rng = np.random.default_rng((self.seed, index))
      if self.objects is None:
        gt = self.foreground[label]
        chosen = [(name, gt)] if gt.any() else []
      else:
        chosen = [(f"{name}/{self.class_names[c]}#{k}", gt)
                  for k, (c, gt) in enumerate(self.objects.pick_eval(label, rng))]
      if not chosen:
        self.skipped.append(name)
        continue
      for example_name, gt in chosen:
        if self.max_images and count >= self.max_images:
          break
        count += 1
        yield example_name, image, gt, self.perturb(gt, rng)
    if self.skipped:
      print(f"[psp_jax.data] refinement evaluation, split {self.split!r}: {count} images, {len(self.skipped)} "
            f"skipped (no foreground pixel or object), e.g. {self.skipped[:3]}")


def refine_eval_examples(data_cfg, split: str | None = None, *, max_images: int | None = None, seed: int = 0,
                         dataset: PreparedDataset | None = None) -> RefineEvalExamples:
  """Full-size evaluation examples of `split` (default data.eval_split): see RefineEvalExamples.
  max_images: stop after that many (non-empty) examples (None or 0: all)."""
  dataset = dataset or open_dataset(data_cfg)
  split = split or _get(data_cfg, "eval_split", "validation")
  return RefineEvalExamples(data_cfg, split, dataset, max_images, seed)
