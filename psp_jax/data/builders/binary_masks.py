"""Binary (object / salient) mask datasets merged into one 2-class dataset: CascadePSP's training data.

Classes: 0 background, 1 foreground. Masks (JPEG or PNG, usually 0/255, any mode: grey,
palette, RGB) are converted to grey levels and thresholded when preparing: > data.mask_threshold
(default 127) is foreground. Images are stored as their original files.

Options (the data config; they change the prepared content, so a change prepares anew):
  sources       [{'layout': LAYOUT, 'dir': PATH}, ...] merged into the 'train' split;
  val_sources   the same for an optional 'validation' split (none: no validation split);
  root          relative 'dir's are relative to it (default: the working directory);
  mask_threshold grey level above which a mask pixel is foreground (127).
Layouts, as the datasets are distributed ('dir' may be the folder named first or its parent):
  msra10k    MSRA10K_Imgs_GT/Imgs/*.jpg with the mask <stem>.png in the same folder
  dut_omron  DUT-OMRON-image/*.jpg + pixelwiseGT-new-PNG/<stem>.png
  ecssd      images/*.jpg + ground_truth_mask/<stem>.png           (ECSSD/)
  fss1000    fewshot_data/<class>/<k>.jpg + <class>/<k>.png
  duts       DUTS-TR-Image/*.jpg + DUTS-TR-Mask/<stem>.png          (DUTS-TR/; or DUTS-TE-*)
  pairs      images/* + masks/<stem>.{png,jpg,bmp}                   (any binary-mask data)
  flat       *.jpg + <stem>.png in one folder (the folders CascadePSP's
             scripts/download_training_dataset.py writes: DUTS-TR/, ecssd/, MSRA_10K/)
An image whose mask is missing is a bad example (the prepare stops naming it, or skips it
with data.skip_bad_examples); masks without an image are ignored.
"""
from __future__ import annotations

import io
import pathlib
from typing import Callable

import numpy as np
from PIL import Image

from psp_jax.data import labels as L
from psp_jax.data.builders.base import Item, SegmentationBuilder, list_files

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
MASK_EXTS = (".png", ".jpg", ".jpeg", ".bmp")


class LayoutError(FileNotFoundError):
  """A source folder does not hold its layout's files; the message names both."""


def _pair_by_stem(img_dir: pathlib.Path, mask_dir: pathlib.Path, img_exts=(".jpg", ".jpeg"),
                  mask_exts=(".png",)) -> list[tuple[pathlib.Path, pathlib.Path]]:
  """(image, mask) by stem; a missing mask keeps its expected path (reported when loading)."""
  masks = {p.stem: p for p in list_files(mask_dir, mask_exts)} if mask_dir.is_dir() else {}
  return [(p, masks.get(p.stem, mask_dir / f"{p.stem}{mask_exts[0]}")) for p in list_files(img_dir, img_exts)]


def _first_dir(base: pathlib.Path, candidates: list[str], test: Callable[[pathlib.Path], bool]) -> pathlib.Path | None:
  for c in candidates:
    d = base / c if c else base
    if d.is_dir() and test(d):
      return d
  return None


def _has(*names: str) -> Callable[[pathlib.Path], bool]:
  return lambda d: all((d / n).is_dir() for n in names)


def _msra10k(d):
  root = _first_dir(d, ["", "Imgs", "MSRA10K_Imgs_GT/Imgs"], lambda x: x.name == "Imgs")
  return _pair_by_stem(root, root) if root else None


def _dut_omron(d):
  root = _first_dir(d, ["", "DUT-OMRON"], _has("DUT-OMRON-image", "pixelwiseGT-new-PNG"))
  return _pair_by_stem(root / "DUT-OMRON-image", root / "pixelwiseGT-new-PNG") if root else None


def _ecssd(d):
  root = _first_dir(d, ["", "ECSSD"], _has("images", "ground_truth_mask"))
  return _pair_by_stem(root / "images", root / "ground_truth_mask") if root else None


def _fss1000(d):
  def has_classes(x):
    return any(c.is_dir() and any(c.glob("*.jpg")) for c in x.iterdir())
  root = _first_dir(d, ["fewshot_data", "fewshot_data/fewshot_data", ""], has_classes)
  if not root:
    return None
  return [pair for c in sorted(p for p in root.iterdir() if p.is_dir()) for pair in _pair_by_stem(c, c)]


def _duts(d):
  found = []
  for sub in ("", "DUTS-TR", "DUTS-TE"):
    for part in ("TR", "TE"):
      base = d / sub if sub else d
      if _has(f"DUTS-{part}-Image", f"DUTS-{part}-Mask")(base) and base.is_dir():
        found.append((base / f"DUTS-{part}-Image", base / f"DUTS-{part}-Mask"))
  if len(found) > 1:
    raise LayoutError(f"duts source {d}: holds several DUTS parts {[str(f[0]) for f in found]}; point 'dir' "
                      f"at one of them (e.g. {d / 'DUTS-TR'} for training, DUTS-TE for validation)")
  return _pair_by_stem(*found[0]) if found else None


def _pairs(d):
  if not _has("images", "masks")(d):
    return None
  return _pair_by_stem(d / "images", d / "masks", IMAGE_EXTS, MASK_EXTS)


def _flat(d):
  return _pair_by_stem(d, d) if d.is_dir() else None


LAYOUTS: dict[str, tuple[Callable, str]] = {
    "msra10k": (_msra10k, "MSRA10K_Imgs_GT/Imgs/*.jpg with <stem>.png masks in the same folder"),
    "dut_omron": (_dut_omron, "DUT-OMRON-image/*.jpg and pixelwiseGT-new-PNG/<stem>.png"),
    "ecssd": (_ecssd, "images/*.jpg and ground_truth_mask/<stem>.png (in ECSSD/)"),
    "fss1000": (_fss1000, "fewshot_data/<class>/<k>.jpg with <k>.png masks beside them"),
    "duts": (_duts, "DUTS-TR-Image/*.jpg and DUTS-TR-Mask/<stem>.png (in DUTS-TR/; or the DUTS-TE-* pair)"),
    "pairs": (_pairs, "images/* and masks/<stem>.png (or .jpg/.bmp)"),
    "flat": (_flat, "*.jpg with <stem>.png masks in the same folder"),
}


def source_pairs(layout: str, directory: str | pathlib.Path) -> list[tuple[pathlib.Path, pathlib.Path]]:
  """(image path, mask path) of one source; LayoutError naming the folder and layout when absent."""
  if layout not in LAYOUTS:
    raise ValueError(f"binary_masks source layout {layout!r} is not one of {sorted(LAYOUTS)}")
  find, expected = LAYOUTS[layout]
  d = pathlib.Path(directory).expanduser()
  if not d.is_dir():
    raise LayoutError(f"binary_masks source {layout!r}: folder {d} does not exist (expected {expected})")
  pairs = find(d)
  if not pairs:
    raise LayoutError(f"binary_masks source {layout!r}: no images found under {d}; expected the "
                      f"{layout} layout: {expected}")
  return pairs


def threshold_mask(data: bytes, where: str, threshold: int = 127) -> np.ndarray:
  """Mask file bytes (any mode) -> uint8 {0, 1}: grey level > threshold is foreground."""
  try:
    with Image.open(io.BytesIO(data)) as im:
      im.load()
      grey = np.asarray(im.convert("L"))
  except Exception as e:  # PIL raises many types for corrupt data
    raise L.BadExampleError(f"{where}: corrupt or unsupported mask ({type(e).__name__}: {e})") from e
  return (grey > threshold).astype(np.uint8)


class PspBinaryMasks(SegmentationBuilder, skip_registration=True):
  __doc__ = __doc__
  name = "psp_binary_masks"
  MANUAL_DOWNLOAD_INSTRUCTIONS = __doc__
  CLASS_NAMES = ("background", "foreground")
  COLORS = ((0, 0, 0), (255, 255, 255))

  def label_map(self) -> L.LabelMap:
    return L.LabelMap.identity(2, ())

  def read_raw_label(self, item: Item) -> np.ndarray:
    data = L.read_bytes(item.label)
    return threshold_mask(data, str(item.label), int(self.params.get("mask_threshold", 127)))

  def _split_generators(self, dl_manager):
    del dl_manager  # the sources name their folders; no data.manual_dir
    self.info.metadata["class_names"] = list(self.class_names())
    self.info.metadata["ignore_label"] = L.IGNORE_LABEL
    self.info.metadata["sources"] = {k: self.params.get(k) or [] for k in ("sources", "val_sources")}
    self.info.metadata.setdefault("splits", {})
    return {split: self._generate_examples(split, items) for split, items in self.items(None).items()}

  def items(self, root) -> dict[str, list[Item]]:
    del root
    out = {}
    for split, key in (("train", "sources"), ("validation", "val_sources")):
      sources = self.params.get(key) or []
      if split == "train" and not sources:
        raise ValueError("binary_masks: data.sources is empty; list [{'layout': ..., 'dir': ...}, ...] "
                         f"with layouts {sorted(LAYOUTS)}")
      items = []
      for k, src in enumerate(sources):
        d = pathlib.Path(src["dir"])
        for img, mask in source_pairs(src["layout"], d):
          rel = img.relative_to(d).as_posix()
          items.append(Item(key=f"{split}/{k}/{rel}", image=img, label=mask, name=f"{src['layout']}:{rel}"))
      if items:
        out[split] = items
    return out
