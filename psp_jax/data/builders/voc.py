"""PASCAL VOC 2012 segmentation (21 classes), with the SBD "train_aug" split (10,582 images).

Where to get it:
- VOC 2012: http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ ("VOCtrainval_11-May-2012.tar").
- SBD (Hariharan et al. 2011, for train_aug): http://home.bharathh.info/pubs/codes/SBD/download.html
  ("benchmark.tgz", unpacks to benchmark_RELEASE/), or instead a "SegmentationClassAug/"
  folder of single-channel PNGs (the DeepLab community conversion of SBD).
Unpack into one folder and point `data.manual_dir` at it. Recognised layout:
  VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, ImageSets/Segmentation/{train,val}.txt}
      (or VOC2012/... or the VOC2012 folder itself)
  benchmark_RELEASE/dataset/{cls/*.mat, img/*.jpg, train.txt, val.txt}        optional
  SegmentationClassAug/*.png (beside VOC2012/ or inside it)                    optional
  ImageSets/Segmentation/train_aug.txt                                         optional list
Splits: train (1,464), validation (1,449), and train_aug when SBD or SegmentationClassAug is
present: (SBD train + SBD val + VOC train) minus VOC val, or train_aug.txt when given.
For a train_aug image the VOC annotation is used when it exists, else SegmentationClassAug,
else the SBD .mat file (read with scipy, an extra dependency only for this case).
Labels: palette PNG INDICES 0..20 (0 = background), 255 = object boundary -> ignore; other
values are an error. (Palette PNGs are read as indices, never converted to RGB.)
"""
from __future__ import annotations

import io
import pathlib

import numpy as np

from psp_jax.data import labels as L
from psp_jax.data.builders.base import Item, SegmentationBuilder, missing_dir_error, read_list
from psp_jax.data.classes import VOC_CLASSES, VOC_COLORS


def read_sbd_mat(data: bytes, where: str) -> np.ndarray:
  try:
    import scipy.io  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("reading SBD .mat annotations needs scipy (pip install scipy), or use a "
                      "SegmentationClassAug/ folder of PNGs instead") from e
  try:
    mat = scipy.io.loadmat(io.BytesIO(data))
    return np.asarray(mat["GTcls"]["Segmentation"][0][0]).astype(np.uint8)
  except Exception as e:
    raise L.BadExampleError(f"{where}: corrupt SBD annotation ({type(e).__name__}: {e})") from e


class PspVoc(SegmentationBuilder, skip_registration=True):
  __doc__ = __doc__
  name = "psp_voc"
  CLASS_NAMES = VOC_CLASSES
  COLORS = VOC_COLORS
  HOMEPAGE = "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/"
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__

  def label_map(self) -> L.LabelMap:
    return L.LabelMap.identity(21, (L.IGNORE_LABEL,))

  def read_raw_label(self, item: Item) -> np.ndarray:
    if str(item.label).endswith(".mat"):
      return read_sbd_mat(L.read_bytes(item.label), str(item.label))
    return super().read_raw_label(item)

  def find_root(self, manual_dir: pathlib.Path) -> pathlib.Path:
    for c in (manual_dir / "VOCdevkit" / "VOC2012", manual_dir / "VOC2012", manual_dir):
      if (c / "JPEGImages").is_dir():
        return c
    raise missing_dir_error(manual_dir / "VOCdevkit" / "VOC2012" / "JPEGImages", "VOC 2012 images", self.name)

  def items(self, root: pathlib.Path) -> dict[str, list[Item]]:
    manual = getattr(self, "manual_path", root)
    seg_dir = root / "SegmentationClass"
    lists = root / "ImageSets" / "Segmentation"
    if not seg_dir.is_dir():
      raise missing_dir_error(seg_dir, "VOC annotations", self.name)
    out: dict[str, list[Item]] = {}
    ids: dict[str, list[str]] = {}
    for split, fname in (("train", "train.txt"), ("validation", "val.txt")):
      if not (lists / fname).is_file():
        raise missing_dir_error(lists / fname, f"the {split} image list", self.name)
      ids[split] = read_list(lists / fname)

    candidates = [root.parent.parent, root.parent, root, manual]
    sbd = next((c / "benchmark_RELEASE" / "dataset" for c in candidates
                if (c / "benchmark_RELEASE" / "dataset" / "cls").is_dir()), None)
    aug = next((c / "SegmentationClassAug" for c in [root] + candidates
                if (c / "SegmentationClassAug").is_dir()), None)
    if (lists / "train_aug.txt").is_file():
      ids["train_aug"] = read_list(lists / "train_aug.txt")
    elif sbd is not None:
      sbd_ids = set()
      for f in ("train.txt", "val.txt"):
        if (sbd / f).is_file():
          sbd_ids |= set(read_list(sbd / f))
      ids["train_aug"] = sorted((sbd_ids | set(ids["train"])) - set(ids["validation"]))
    elif aug is not None:
      ids["train_aug"] = sorted({p.stem for p in aug.glob("*.png")} - set(ids["validation"]))

    for split, names in ids.items():
      items = []
      for i in names:
        label = seg_dir / f"{i}.png"
        if split == "train_aug" and not label.is_file():
          if aug is not None and (aug / f"{i}.png").is_file():
            label = aug / f"{i}.png"
          elif sbd is not None:
            label = sbd / "cls" / f"{i}.mat"
        image = root / "JPEGImages" / f"{i}.jpg"
        if not image.is_file() and sbd is not None and (sbd / "img" / f"{i}.jpg").is_file():
          image = sbd / "img" / f"{i}.jpg"
        items.append(Item(key=i, image=image, label=label, name=f"{i}.jpg"))
      out[split] = items
    return out
