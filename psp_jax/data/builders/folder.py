"""A generic folder dataset: images and masks matched by file stem.

Where to get it: your own data. Point `data.manual_dir` at a folder laid out as
  images/<split>/*.{jpg,jpeg,png,bmp,tif,tiff}    masks/<split>/<same stem>.{png,bmp,tif,tiff}
(split folders: train, val or validation, test; names are configurable with data.splits), or
  images/*  masks/*                               (a single split, "train").
Label options (all in the data config; they are hashed into the prepared dataset's name, so
changing one prepares anew):
  class_names   one name per class (defines num_classes);
  label_map     {raw mask value: class index or 255}; raw values not listed are an error.
                Without it, raw values 0..C-1 are the classes and `ignore_values` -> 255;
  ignore_values raw values meaning "ignore" (default [255]);
  colors        one "R G B" per class for RGB colour-coded masks (unknown colours are errors);
                `ignore_colors` lists colours meaning ignore;
  splits        {split name: sub-folder name} (default: the sub-folders found).
Masks holding only 0 and 255 are ambiguous (is 255 an object or "ignore"?): they require an
explicit label_map (e.g. {0: 0, 255: 1}) and the prepare fails otherwise.
Palette PNG masks are read as their palette indices.
"""
from __future__ import annotations

import pathlib

import numpy as np

from psp_jax.data import labels as L
from psp_jax.data.builders.base import Item, SegmentationBuilder, list_files, missing_dir_error

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MASK_EXTS = (".png", ".bmp", ".tif", ".tiff")
SPLIT_ALIASES = {"val": "validation", "valid": "validation", "training": "train"}


class PspFolder(SegmentationBuilder, skip_registration=True):
  __doc__ = __doc__
  name = "psp_folder"
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

  def class_names(self) -> tuple[str, ...]:
    names = self.params.get("class_names")
    if not names:
      raise ValueError("folder dataset: data.class_names (one name per class) is required")
    return tuple(names)

  def label_map(self) -> L.LabelMap:
    nc = self.num_classes
    lm = self.params.get("label_map")
    size = 65536
    if lm:
      return L.LabelMap.from_pairs({int(k): int(v) for k, v in dict(lm).items()}, nc, size,
                                   description=f"data.label_map {dict(lm)}")
    return L.LabelMap.identity(nc, [int(v) for v in self.params.get("ignore_values", [L.IGNORE_LABEL])], size)

  def raw_colours(self):
    colors = self.params.get("colors")
    if not colors:
      return None
    table = {tuple(int(c) for c in col): i for i, col in enumerate(colors)}
    for col in self.params.get("ignore_colors") or []:
      table[tuple(int(c) for c in col)] = L.IGNORE_LABEL
    return table

  def end_of_split(self, split: str, raw_values_seen: np.ndarray) -> None:
    if self.params.get("label_map") or self.params.get("colors"):
      return
    values = set(np.nonzero(raw_values_seen)[0].tolist())
    if 255 in values and values <= {0, 255}:
      raise ValueError(f"{self.name} split {split!r}: every mask holds only the values 0 and 255. That is "
                       "ambiguous (foreground or ignore?): set data.label_map explicitly, e.g. "
                       "{0: 0, 255: 1} for a binary foreground class, or {0: 0, 255: 255} if 255 means ignore.")

  def items(self, root: pathlib.Path) -> dict[str, list[Item]]:
    img_root, mask_root = root / self.params.get("image_dir", "images"), root / self.params.get("mask_dir", "masks")
    if not img_root.is_dir():
      raise missing_dir_error(img_root, "the images folder (images/<split>/ or images/*)", self.name)
    if not mask_root.is_dir():
      raise missing_dir_error(mask_root, "the masks folder (masks/<split>/ or masks/*)", self.name)
    splits = self.params.get("splits")
    if not splits:
      subdirs = sorted(p.name for p in img_root.iterdir() if p.is_dir())
      splits = {SPLIT_ALIASES.get(d, d): d for d in subdirs} if subdirs else {"train": "."}
    out = {}
    for split, sub in dict(splits).items():
      img_dir, mask_dir = img_root / sub, mask_root / sub
      if not img_dir.is_dir() or not list_files(img_dir, IMAGE_EXTS):
        raise missing_dir_error(img_dir, f"{split} images", self.name)
      if not mask_dir.is_dir():
        raise missing_dir_error(mask_dir, f"{split} masks", self.name)
      masks = {p.stem: p for p in list_files(mask_dir, MASK_EXTS)}
      items = []
      for p in list_files(img_dir, IMAGE_EXTS):
        mask = masks.get(p.stem, mask_dir / f"{p.stem}.png")  # a missing mask is reported as bad
        items.append(Item(key=f"{split}/{p.stem}", image=p, label=mask, name=str(p.relative_to(root))))
      out[split] = items
    return out
