"""TFDS builders of the psp_jax datasets, and preparing/opening them from a `data` config.

  builder = make_builder(data_cfg)        # the TFDS builder (nothing prepared yet)
  info = prepare(data_cfg)               # prepare once (prints counts + class histogram)
  ds = open_dataset(data_cfg)            # prepare if needed; random-access sources per split

Datasets (`data.name`): ade20k, voc, cityscapes, camvid, folder, synthetic, binary_masks, and
"tfds:<catalog name>" for any TFDS catalog dataset with an image and a segmentation mask
(this last path needs TensorFlow to prepare the catalog dataset; the others never do).
"""
from __future__ import annotations

import logging
import os
import pathlib
import shutil
import time
from typing import Any, Mapping

import numpy as np
import tensorflow_datasets as tfds

from psp_jax.data import fingerprint, input_checks
from psp_jax.data import labels as L
from psp_jax.data.builders.ade20k import PspAde20k
from psp_jax.data.builders.base import SegConfig, SegmentationBuilder, config_name
from psp_jax.data.builders.binary_masks import PspBinaryMasks
from psp_jax.data.builders.camvid import PspCamvid
from psp_jax.data.builders.cityscapes import PspCityscapes
from psp_jax.data.builders.folder import PspFolder
from psp_jax.data.builders.synthetic import PspSynthetic
from psp_jax.data.builders.voc import PspVoc
from psp_jax.data.prepared import DEFAULT_DATA_DIR, PreparedDataset, get as _get  # noqa: F401


BUILDERS: dict[str, type[SegmentationBuilder]] = {
    "ade20k": PspAde20k, "voc": PspVoc, "cityscapes": PspCityscapes, "camvid": PspCamvid,
    "folder": PspFolder, "synthetic": PspSynthetic, "binary_masks": PspBinaryMasks,
}
NO_MANUAL_DIR = ("synthetic", "binary_masks")  # generated, or the config names its folders


class _QuietTfds(logging.Filter):
  """Drop TFDS's notes that are expected here (every config is a custom one; a version folder
  without dataset_info.json is simply not prepared yet)."""

  def filter(self, record: logging.LogRecord) -> bool:
    msg = str(record.msg)
    return not (msg.startswith("Using custom data configuration") or "has no dataset_info.json" in msg)


logging.getLogger("absl").addFilter(_QuietTfds())


def _plain(v):
  """ConfigDict/FrozenConfigDict/tuples -> plain JSON-able python values."""
  if hasattr(v, "to_dict"):
    v = v.to_dict()
  if isinstance(v, Mapping):
    return {str(k): _plain(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [_plain(x) for x in v]
  return v


def content_params(data_cfg) -> dict:
  """The dataset-specific options that change the prepared content (hashed into its name)."""
  name = _get(data_cfg, "name")
  if name == "camvid":
    return {"colors": _plain(_get(data_cfg, "colors"))} if _get(data_cfg, "colors") else {}
  if name == "folder":
    manual = _get(data_cfg, "manual_dir")
    return {"class_names": _plain(_get(data_cfg, "class_names")),
            "label_map": _plain(_get(data_cfg, "label_map")),
            "ignore_values": _plain(_get(data_cfg, "ignore_values", [L.IGNORE_LABEL])),
            "colors": _plain(_get(data_cfg, "colors")),
            "ignore_colors": _plain(_get(data_cfg, "ignore_colors")),
            "splits": _plain(_get(data_cfg, "splits")),
            "manual_dir": str(pathlib.Path(manual).expanduser().resolve()) if manual else None}
  if name == "synthetic":
    syn = _plain(_get(data_cfg, "synthetic", {}))
    return {"num_train": syn.get("num_train", 512), "num_val": syn.get("num_val", 128),
            "size": list(syn.get("size", (64, 64))), "seed": syn.get("seed", 0),
            "options": syn.get("options") or {}}
  if name == "binary_masks":
    root = pathlib.Path(str(_get(data_cfg, "root", "") or ".")).expanduser()

    def resolve(sources, key):
      out = []
      for k, src in enumerate(_plain(sources) or []):
        if not isinstance(src, Mapping) or set(src) != {"layout", "dir"}:
          raise ValueError(f"data.{key}[{k}] must be {{'layout': ..., 'dir': ...}}, got {src!r}")
        d = pathlib.Path(str(src["dir"])).expanduser()
        out.append({"layout": str(src["layout"]), "dir": str((d if d.is_absolute() else root / d).resolve())})
      return out
    return {"sources": resolve(_get(data_cfg, "sources"), "sources"),
            "val_sources": resolve(_get(data_cfg, "val_sources"), "val_sources"),
            "mask_threshold": int(_get(data_cfg, "mask_threshold", 127))}
  return {}


def make_builder(data_cfg) -> SegmentationBuilder:
  """The builder for `data_cfg` (config name 'default', or a hash of the content options)."""
  name = _get(data_cfg, "name")
  if name not in BUILDERS:
    raise ValueError(f"data.name={name!r} is not one of {sorted(BUILDERS)} or 'tfds:<catalog name>'")
  params = content_params(data_cfg)
  skip = bool(_get(data_cfg, "skip_bad_examples", False))
  content = dict(params, skip_bad_examples=skip) if skip else params
  cname = "default" if not content else config_name(_get(data_cfg, "dataset_name", name), content)
  config = SegConfig(name=cname, params=params, skip_bad_examples=skip,
                     num_threads=int(_get(data_cfg, "prepare_threads", 4)),
                     version=SegmentationBuilder.VERSION, description=f"psp_jax {name}")
  data_dir = os.path.expanduser(_get(data_cfg, "data_dir", DEFAULT_DATA_DIR))
  return BUILDERS[name](config=config, data_dir=data_dir, file_format="array_record")


def print_report(name: str, metadata: Mapping[str, Any]) -> list[str]:
  """Print per-split counts and the per-class pixel histogram; returns the warnings."""
  names = list(metadata.get("class_names", []))
  warnings = []
  lines = [f"[psp_jax.data] {name}:"]
  for split, s in metadata.get("splits", {}).items():
    px = np.asarray(s.get("class_pixels", []), np.int64)
    total = max(int(px.sum()) + int(s.get("ignore_pixels", 0)), 1)
    lines.append(f"  {split}: {s['num_examples']} examples (max {s['max_height']}x{s['max_width']}), "
                 f"ignore {100 * s.get('ignore_pixels', 0) / total:.1f}% of pixels"
                 + (f", {len(s['skipped'])} bad examples skipped" if s.get("skipped") else ""))
    hist = ", ".join(f"{n} {100 * p / total:.2f}%" for n, p in zip(names, px))
    lines.append(f"    class pixels: {hist}")
    absent = [n for n, p in zip(names, px) if p == 0]
    single = input_checks.class_count_warnings(px.tolist(), names)
    if single:
      warnings += [f"{name} split {split!r}: {w}" for w in single]
    elif absent:
      warnings.append(f"{name} split {split!r}: classes never occur: {absent}")
  print("\n".join(lines))
  for w in warnings:  # printed once (not also logged: that printed every warning twice)
    print(f"[psp_jax.data] WARNING: {w}")
  return warnings


SOURCE_KEY = "source"  # the prepared dataset's metadata entry holding the source fingerprint


def _current_source(builder: SegmentationBuilder, data_cfg) -> dict | None:
  """The fingerprint of the source the config names now (None: generated data, or the source
  is not there to compare, e.g. raw files removed after preparing)."""
  manual = _get(data_cfg, "manual_dir")
  if _get(data_cfg, "name") not in NO_MANUAL_DIR and not (manual and os.path.isdir(os.path.expanduser(str(manual)))):
    return None
  try:
    return builder.source_fingerprint(manual)
  except FileNotFoundError:
    return None


def check_source(builder: SegmentationBuilder, data_cfg) -> None:
  """DataSourceMismatchError when the prepared dataset came from other files or another label
  mapping than `data_cfg` names now (datasets prepared before fingerprints pass)."""
  stored = dict(builder.info.metadata or {}).get(SOURCE_KEY)
  if not stored:
    return
  current = _current_source(builder, data_cfg)
  if current is None:
    return
  found = fingerprint.differences(stored, current)
  if found:
    raise fingerprint.mismatch_error(f"{builder.name}/{builder.builder_config.name}",
                                     str(builder.data_path), stored, current, found)


def _remove_leftovers(builder: SegmentationBuilder, before: float) -> None:
  """Delete `incomplete.*` folders of interrupted prepares (older than this prepare)."""
  for stale in pathlib.Path(builder.data_path).parent.glob("incomplete.*"):
    if stale.is_dir() and stale.stat().st_mtime < before:
      shutil.rmtree(stale, ignore_errors=True)
      print(f"[psp_jax.data] removed {stale}, left by an interrupted prepare")


def _generate(builder: SegmentationBuilder, manual: str | None) -> None:
  source = builder.source_fingerprint(manual)
  if source is not None:
    builder.info.metadata[SOURCE_KEY] = source
  dl_config = tfds.download.DownloadConfig(
      manual_dir=manual, download_mode=tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS,
      compute_stats=tfds.download.ComputeStatsMode.SKIP)
  builder.download_and_prepare(download_config=dl_config, file_format="array_record")


def prepare(data_cfg, *, force: bool = False, verbose: bool = True) -> SegmentationBuilder:
  """Prepare the dataset of `data_cfg` unless already prepared; returns the builder.

  TFDS writes to `<data_dir>/<builder>/<config>/incomplete.*` and renames to the version
  folder only when everything is written, so an interrupted prepare is redone next time (and
  its leftover folder removed once a prepare succeeds). An already prepared dataset whose
  source fingerprint differs from the config's raises DataSourceMismatchError; force=True
  prepares it again (the old copy is kept until the new one is complete).
  """
  name = _get(data_cfg, "name")
  if isinstance(name, str) and name.startswith("tfds:"):
    raise ValueError("catalog datasets are prepared by psp_jax.data.open_dataset (needs TensorFlow)")
  builder = make_builder(data_cfg)
  if builder.is_prepared() and not force:
    check_source(builder, data_cfg)
    return builder
  manual = _get(data_cfg, "manual_dir")
  if name not in NO_MANUAL_DIR:
    if not manual:
      raise ValueError(f"data.manual_dir is not set; {builder.name} needs the downloaded files:\n{type(builder).__doc__}")
    manual = os.path.expanduser(str(manual))
    if not os.path.isdir(manual):
      raise FileNotFoundError(f"{builder.name}: data.manual_dir={manual} does not exist; expected the "
                              f"downloaded dataset there:\n{type(builder).__doc__}")
  started = time.time()
  replaced = None
  if builder.is_prepared():  # force: keep the old copy until the new one is complete
    replaced = pathlib.Path(builder.data_path).with_name(f"replaced.{os.getpid()}.{builder.version}")
    os.replace(builder.data_path, replaced)
    builder = make_builder(data_cfg)
  try:
    _generate(builder, manual)
  except BaseException:
    if replaced is not None and not pathlib.Path(builder.data_path).exists():
      os.replace(replaced, builder.data_path)
    raise
  if replaced is not None:
    shutil.rmtree(replaced, ignore_errors=True)
  _remove_leftovers(builder, started)
  if verbose:
    print_report(f"{builder.name}/{builder.builder_config.name}", dict(builder.info.metadata))
  return builder


def open_dataset(data_cfg, *, prepare_if_needed: bool = True) -> PreparedDataset:
  """Random-access (Grain-readable) sources of every split, preparing the dataset if needed."""
  name = _get(data_cfg, "name")
  if isinstance(name, str) and name.startswith("tfds:"):
    raise ValueError(f"data.name={name!r} is a TFDS catalog dataset: open it with "
                     "psp_jax.data.open_dataset (psp_jax.data.datasets)")
  builder = make_builder(data_cfg)
  if not builder.is_prepared():
    if not prepare_if_needed:
      raise FileNotFoundError(f"dataset {builder.name}/{builder.builder_config.name} is not prepared "
                              f"(complete) at {builder.data_path}; run prepare() (an interrupted prepare leaves "
                              f"only an incomplete.* folder, which never loads)")
    builder = prepare(data_cfg)
  else:
    check_source(builder, data_cfg)
  sources = builder.as_data_source()
  metadata = dict(builder.info.metadata or {})
  class_names = tuple(metadata.get("class_names") or builder.class_names())
  expected = _get(data_cfg, "num_classes")
  if expected and int(expected) != len(class_names):
    raise ValueError(f"data.num_classes={expected} but dataset {builder.name}/{builder.builder_config.name} "
                     f"has {len(class_names)} classes ({list(class_names)[:12]}...)")
  return PreparedDataset(sources=dict(sources), class_names=class_names, num_classes=len(class_names),
                         metadata=metadata, builder=builder)
