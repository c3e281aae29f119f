"""Cityscapes fine annotations: labelIds -> the 19 training classes (trainIds).

Where to get it: https://www.cityscapes-dataset.com/downloads/ (free registration):
"leftImg8bit_trainvaltest.zip" (11 GB) and "gtFine_trainvaltest.zip" (241 MB). Unzip both
into one folder and point `data.manual_dir` at it. Expected layout:
  leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
Splits: train (2,975), validation (500), test (1,525, only when present; its public
annotations are placeholders, so every test pixel is ignore).
Labels: the 19 evaluated labelIds map to trainIds 0..18 (road 7->0 ... bicycle 33->18); all
other labelIds 0..33 -> 255 (ignore); values above 33 are an error.
"""
from __future__ import annotations

import pathlib

from psp_jax.data import labels as L
from psp_jax.data.builders.base import Item, SegmentationBuilder, missing_dir_error
from psp_jax.data.classes import CITYSCAPES_CLASSES, CITYSCAPES_COLORS

# labelId -> trainId for the 19 evaluated classes (Cityscapes scripts' `labels.py` facts).
LABEL_TO_TRAIN = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                  24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
CITYSCAPES_SPLITS = {"train": "train", "validation": "val", "test": "test"}


class PspCityscapes(SegmentationBuilder, skip_registration=True):
  __doc__ = __doc__
  name = "psp_cityscapes"
  CLASS_NAMES = CITYSCAPES_CLASSES
  COLORS = CITYSCAPES_COLORS
  HOMEPAGE = "https://www.cityscapes-dataset.com/"
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

  def label_map(self) -> L.LabelMap:
    pairs = {v: L.IGNORE_LABEL for v in range(34)}
    pairs.update(LABEL_TO_TRAIN)
    return L.LabelMap.from_pairs(pairs, 19, description="Cityscapes labelIds 0..33 -> 19 trainIds, rest ignore")

  def items(self, root: pathlib.Path) -> dict[str, list[Item]]:
    out = {}
    for split, folder in CITYSCAPES_SPLITS.items():
      img_dir, ann_dir = root / "leftImg8bit" / folder, root / "gtFine" / folder
      if split == "test" and not img_dir.is_dir():
        continue
      if not img_dir.is_dir():
        raise missing_dir_error(img_dir, f"{split} images (leftImg8bit/{folder}/<city>/)", self.name)
      if not ann_dir.is_dir():
        raise missing_dir_error(ann_dir, f"{split} annotations (gtFine/{folder}/<city>/)", self.name)
      items = []
      for p in sorted(img_dir.glob("*/*_leftImg8bit.png")):
        stem = p.name[: -len("_leftImg8bit.png")]
        items.append(Item(key=stem, image=p, label=ann_dir / p.parent.name / f"{stem}_gtFine_labelIds.png",
                          name=str(p.relative_to(root))))
      if not items:
        raise missing_dir_error(img_dir, f"{split} images (<city>/*_leftImg8bit.png)", self.name)
      out[split] = items
    return out
