"""ADE20K SceneParsing (MIT Scene Parsing Benchmark, 150 classes) from ADEChallengeData2016.

Where to get it: http://sceneparsing.csail.mit.edu/ ("ADEChallengeData2016.zip", 923 MB).
Unzip anywhere and point `data.manual_dir` at the folder that holds `ADEChallengeData2016/`
(or at `ADEChallengeData2016/` itself). Expected layout:
  ADEChallengeData2016/images/{training,validation}/ADE_*_XXXXXXXX.jpg
  ADEChallengeData2016/annotations/{training,validation}/ADE_*_XXXXXXXX.png   (mode 'L')
Splits: train (20,210), validation (2,000).
Labels: annotation value 0 ("other") -> 255 (ignore); 1..150 -> 0..149; any other value is an error.
"""
from __future__ import annotations

import pathlib

from psp_jax.data import labels as L
from psp_jax.data.builders.base import Item, SegmentationBuilder, list_files, missing_dir_error
from psp_jax.data.classes import ADE20K_CLASSES, ADE20K_COLORS

ADE_SPLITS = {"train": "training", "validation": "validation"}


class PspAde20k(SegmentationBuilder, skip_registration=True):
  __doc__ = __doc__
  name = "psp_ade20k"
  CLASS_NAMES = ADE20K_CLASSES
  COLORS = ADE20K_COLORS
  HOMEPAGE = "http://sceneparsing.csail.mit.edu/"
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

  def find_root(self, manual_dir: pathlib.Path) -> pathlib.Path:
    sub = manual_dir / "ADEChallengeData2016"
    return sub if sub.is_dir() else manual_dir

  def label_map(self) -> L.LabelMap:
    pairs = {0: L.IGNORE_LABEL}
    pairs.update({v: v - 1 for v in range(1, 151)})
    return L.LabelMap.from_pairs(pairs, 150, description="ADE20K: 0 -> ignore, 1..150 -> 0..149")

  def items(self, root: pathlib.Path) -> dict[str, list[Item]]:
    out = {}
    for split, folder in ADE_SPLITS.items():
      img_dir, ann_dir = root / "images" / folder, root / "annotations" / folder
      if not img_dir.is_dir() or not any(img_dir.iterdir()):
        raise missing_dir_error(img_dir, f"{split} images", self.name)
      if not ann_dir.is_dir():
        raise missing_dir_error(ann_dir, f"{split} annotations", self.name)
      out[split] = [Item(key=p.stem, image=p, label=ann_dir / (p.stem + ".png"),
                         name=str(p.relative_to(root)))
                    for p in list_files(img_dir, (".jpg", ".jpeg", ".png"))]
    return out
