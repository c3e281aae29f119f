"""Writers of tiny datasets in the real on-disk layouts, and config helpers, for the data tests."""
from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]


def data_configs():
  spec = importlib.util.spec_from_file_location("psp_data_configs", ROOT / "configs" / "data.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def config(name: str, manual_dir, data_dir, **overrides):
  cfg = getattr(data_configs(), name)()
  cfg.manual_dir = str(manual_dir)
  cfg.data_dir = str(data_dir)
  cfg.prepare_threads = 2
  cfg.worker_count = 0
  for k, v in overrides.items():
    setattr(cfg, k, v)
  return cfg


def rgb(h: int, w: int, seed: int) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save_image(path: pathlib.Path, array: np.ndarray, fmt: str | None = None):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path, format=fmt, **({"quality": 95} if str(path).endswith(".jpg") else {}))


def save_palette_png(path: pathlib.Path, indices: np.ndarray, palette: list[tuple[int, int, int]]):
  path.parent.mkdir(parents=True, exist_ok=True)
  im = Image.fromarray(indices.astype(np.uint8), mode="P")
  flat = [c for col in palette for c in col]
  im.putpalette(flat + [0] * (768 - len(flat)))
  im.save(path)


def save_gray_png(path: pathlib.Path, values: np.ndarray):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(values.astype(np.uint8), mode="L").save(path)


def ramp_label(h: int, w: int, values) -> np.ndarray:
  """A label whose rows cycle through `values` (so each value occurs)."""
  values = np.asarray(values)
  return np.broadcast_to(values[np.arange(h) % len(values)][:, None], (h, w)).copy()


def write_ade(root: pathlib.Path, n_train=3, n_val=2, h=20, w=24) -> dict:
  """ADEChallengeData2016 with raw values 0..150; returns {name: raw label}."""
  base = root / "ADEChallengeData2016"
  raw = {}
  for split, folder, n in (("train", "training", n_train), ("validation", "validation", n_val)):
    for i in range(n):
      stem = f"ADE_{'train' if split == 'train' else 'val'}_{i + 1:08d}"
      save_image(base / "images" / folder / f"{stem}.jpg", rgb(h, w, i))
      lab = ramp_label(h, w, [0, 1, 2, 150, 75][i % 2:] + [i + 3])
      save_gray_png(base / "annotations" / folder / f"{stem}.png", lab)
      raw[f"images/{folder}/{stem}.jpg"] = lab
  return raw


def write_camvid(root: pathlib.Path, n=(3, 2, 2), h=18, w=24, rgb_annotations=False) -> dict:
  """SegNet CamVid layout with list files using the /SegNet/CamVid/ prefix."""
  from psp_jax.data.classes import CAMVID_COLORS
  raw = {}
  for (split, folder), count in zip((("train", "train"), ("validation", "val"), ("test", "test")), n):
    if not count:
      continue
    lines = []
    for i in range(count):
      name = f"0001TP_{split}{i:03d}.png"
      save_image(root / folder / name, rgb(h, w, 10 + i))
      lab = ramp_label(h, w, [i % 11, 3, 11, 8])
      if rgb_annotations:
        colours = np.array(list(CAMVID_COLORS) + [(0, 0, 0)], np.uint8)
        save_image(root / f"{folder}annot" / name, colours[lab])
      else:
        save_gray_png(root / f"{folder}annot" / name, lab)
      lines.append(f"/SegNet/CamVid/{folder}/{name} /SegNet/CamVid/{folder}annot/{name}")
      raw[f"{folder}/{name}"] = lab
    (root / f"{folder}.txt").write_text("\n".join(lines) + "\n")
  return raw


def write_cityscapes(root: pathlib.Path, h=16, w=32) -> dict:
  raw = {}
  for folder, n in (("train", 2), ("val", 1)):
    for i in range(n):
      stem = f"aachen_{i:06d}_000019"
      save_image(root / "leftImg8bit" / folder / "aachen" / f"{stem}_leftImg8bit.png", rgb(h, w, i))
      lab = ramp_label(h, w, [7, 26, 0, 33, 1, 24])
      save_gray_png(root / "gtFine" / folder / "aachen" / f"{stem}_gtFine_labelIds.png", lab)
      raw[f"leftImg8bit/{folder}/aachen/{stem}_leftImg8bit.png"] = lab
  return raw


def voc_palette():
  from psp_jax.data.classes import VOC_COLORS
  pal = [tuple(c) for c in VOC_COLORS] + [(0, 0, 0)] * (256 - 21)
  pal[255] = (224, 224, 192)
  return pal


def write_voc(root: pathlib.Path, h=16, w=20, sbd=True) -> dict:
  """VOCdevkit/VOC2012 (palette PNGs) + benchmark_RELEASE (SBD .mat)."""
  import scipy.io
  voc = root / "VOCdevkit" / "VOC2012"
  ids = {"train": ["2007_000001", "2007_000002"], "val": ["2007_000003"]}
  raw = {}
  for split, names in ids.items():
    for k, i in enumerate(names):
      save_image(voc / "JPEGImages" / f"{i}.jpg", rgb(h, w, k))
      lab = ramp_label(h, w, [0, 15, 255, 20, k + 1])
      save_palette_png(voc / "SegmentationClass" / f"{i}.png", lab, voc_palette())
      raw[i] = lab
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    (voc / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
  if sbd:
    ds = root / "benchmark_RELEASE" / "dataset"
    (ds / "cls").mkdir(parents=True, exist_ok=True)
    sbd_ids = ["2008_000010", "2008_000011", "2007_000003"]  # the last is VOC val: excluded
    for k, i in enumerate(sbd_ids):
      save_image(voc / "JPEGImages" / f"{i}.jpg", rgb(h, w, 50 + k))
      lab = ramp_label(h, w, [0, 7, 12 + k])
      if i not in raw:
        raw[i] = lab
      seg = np.array([[(lab.astype(np.uint8),)]], dtype=[("Segmentation", "O")])
      scipy.io.savemat(ds / "cls" / f"{i}.mat", {"GTcls": seg})
    (ds / "train.txt").write_text("2008_000010\n2007_000003\n")
    (ds / "val.txt").write_text("2008_000011\n")
  return raw


def write_folder(root: pathlib.Path, splits=("train", "val"), n=3, h=12, w=16, values=(0, 1, 2),
                 mode="L") -> dict:
  raw = {}
  for split in splits:
    for i in range(n):
      save_image(root / "images" / split / f"img{i}.jpg", rgb(h, w, i))
      lab = ramp_label(h, w, values)
      if mode == "P":
        save_palette_png(root / "masks" / split / f"img{i}.png", lab, [(255, 0, 0), (0, 255, 0), (0, 0, 255)])
      else:
        save_gray_png(root / "masks" / split / f"img{i}.png", lab)
      raw[f"images/{split}/img{i}.jpg"] = lab
  return raw


def loaded_labels(dataset, split: str) -> dict:
  """{record name: decoded stored label} of a prepared split."""
  from psp_jax.data import labels as L
  src = dataset.sources[split]
  out = {}
  for i in range(len(src)):
    r = src[i]
    out[r["name"].decode()] = L.decode_label(r["label"])
  return out
