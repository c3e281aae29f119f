"""Shared machinery of the psp_jax TFDS builders (prepared and read without TensorFlow).

Every builder stores the same features in ArrayRecord files:
  image   the ORIGINAL encoded image file (JPEG/PNG bytes, not re-compressed),
  label   a single-channel PNG of class indices 0..C-1 and 255 (ignore), ALREADY MAPPED,
  name    the source image path relative to the dataset root (for error messages),
  height, width  of the image (= of the label).
Raw annotations are read preserving their mode and mapped to class indices here, in
`SegmentationBuilder._load_example`, the only place a dataset's label mapping is applied.

Preparation checks every example: unreadable or corrupt image/annotation, image/label size
mismatch, annotation values that are neither a class nor the ignore value. By default the
first bad example aborts the prepare with an error naming the file and the problem; with
`skip_bad_examples=True` bad examples are left out and listed at the end (and stored in the
dataset's metadata). TFDS writes into a temporary `incomplete.*` folder and renames it only
when every split is written, so an interrupted prepare never leaves a dataset that loads.

Per-split example counts, image sizes and a per-class pixel histogram are stored in the
dataset's metadata (`metadata.json`), printed after preparing, with a warning for classes
that never occur. So is the fingerprint of the source files and label mapping
(`source_fingerprint`, psp_jax.data.fingerprint), which later uses compare with the config's.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import utils as tfds_utils

from psp_jax.data import fingerprint
from psp_jax.data import labels as L

log = logging.getLogger(__name__)

FEATURES = dict(
    image=lambda: tfds.features.Tensor(shape=(), dtype=np.object_),
    label=lambda: tfds.features.Tensor(shape=(), dtype=np.object_),
    name=lambda: tfds.features.Text(),
    height=lambda: tfds.features.Scalar(np.int32),
    width=lambda: tfds.features.Scalar(np.int32),
)


@dataclasses.dataclass(eq=False)
class SegConfig(tfds.core.BuilderConfig):
  """Builder options. `params` holds the dataset-specific options that change the stored
  content (they are hashed into the config name, so a changed option prepares anew);
  skip_bad_examples also changes the content; num_threads does not."""
  params: dict = dataclasses.field(default_factory=dict)
  skip_bad_examples: bool = False
  num_threads: int = 4


@dataclasses.dataclass(frozen=True)
class Item:
  """One example to prepare: image and annotation sources (paths, or bytes for generated data)."""
  key: str
  image: Any
  label: Any
  name: str


def _where(source: Any, item: "Item") -> str:
  """How error messages name a source: its path, or the example name for in-memory data."""
  return str(source) if isinstance(source, (str, os.PathLike)) else item.name


def config_name(base: str, content: dict) -> str:
  """'default' for default content, else `base`-<10 hex digits of the content hash>."""
  blob = json.dumps(content, sort_keys=True, default=str).encode()
  return f"{base}-{hashlib.sha1(blob).hexdigest()[:10]}"


def missing_dir_error(path: pathlib.Path, what: str, builder: str) -> FileNotFoundError:
  return FileNotFoundError(f"{builder}: expected {what} at {path} (not found or empty). "
                           f"Point data.manual_dir at the dataset folder; see the builder's docstring.")


def list_files(folder: pathlib.Path, exts: Sequence[str]) -> list[pathlib.Path]:
  exts = tuple(e.lower() for e in exts)
  return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)


class SegmentationBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base class: subclasses define CLASS_NAMES (or `class_names()`), `label_map()` and `items()`."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "psp_jax layout: encoded image bytes + mapped single-channel label PNG."}
  BUILDER_CONFIG_CLASS = SegConfig
  BUILDER_CONFIGS: list = []  # configs are built from the data config (see make_builder)
  CLASS_NAMES: tuple[str, ...] = ()
  COLORS: tuple[tuple[int, int, int], ...] | None = None
  HOMEPAGE = ""

  @tfds_utils.classproperty
  @classmethod
  def code_path(cls):  # pylint: disable=invalid-name
    """No checksums file next to our code (downloads are manual). Also avoids TFDS's module
    inspection, which needs the optional `importlib_resources` package."""
    return None

  # --- to override -----------------------------------------------------------------------
  def class_names(self) -> tuple[str, ...]:
    return tuple(self.CLASS_NAMES)

  def label_map(self) -> L.LabelMap:
    raise NotImplementedError

  def raw_colours(self) -> dict | None:
    """{(r, g, b): raw value} for RGB colour-coded annotations, or None."""
    return None

  def items(self, root: pathlib.Path) -> dict[str, list[Item]]:
    """{split: [Item]} found under the dataset root; raise `missing_dir_error` when absent."""
    raise NotImplementedError

  def find_root(self, manual_dir: pathlib.Path) -> pathlib.Path:
    return manual_dir

  def read_raw_label(self, item: Item) -> np.ndarray:
    data = item.label if isinstance(item.label, bytes) else L.read_bytes(item.label)
    return L.read_raw_label(data, _where(item.label, item), self.raw_colours())

  def end_of_split(self, split: str, raw_values_seen: np.ndarray) -> None:
    """Hook called when a split is written (raw_values_seen: bool per raw value)."""

  # --- provenance ------------------------------------------------------------------------
  def source_fingerprint(self, manual_dir: str | os.PathLike | None) -> dict | None:
    """The fingerprint (psp_jax.data.fingerprint) of the files this builder prepares from
    `manual_dir` and of its label mapping; None for generated data (no source files)."""
    root = self.find_root(pathlib.Path(manual_dir).expanduser()) if manual_dir else None
    files = sorted({str(src) for items in self.items(root).values() for item in items
                    for src in (item.image, item.label) if isinstance(src, (str, os.PathLike))})
    if not files:
      return None
    digest = fingerprint.mapping_digest(self.class_names(), self.label_map().table, self.raw_colours())
    return fingerprint.source_fingerprint(root or os.path.commonpath(files), files, digest)

  # --- machinery -------------------------------------------------------------------------
  @property
  def params(self) -> dict:
    return dict(self.builder_config.params or {})

  @property
  def num_classes(self) -> int:
    return len(self.class_names())

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(type(self).__doc__ or "").strip(),
        features=tfds.features.FeaturesDict({k: f() for k, f in FEATURES.items()}),
        homepage=self.HOMEPAGE or None,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    manual = getattr(dl_manager, "_manual_dir", None)
    if manual is None:
      raise FileNotFoundError(f"{self.name}: no manual_dir given; set data.manual_dir to the downloaded files")
    manual = pathlib.Path(os.fspath(manual))
    if not manual.is_dir():
      raise missing_dir_error(manual, "the downloaded dataset (data.manual_dir)", self.name)
    self.manual_path = manual
    root = self.find_root(manual)
    splits = self.items(root)
    for split, items in splits.items():
      if not items:
        raise missing_dir_error(root, f"examples of split {split!r}", self.name)
    self.info.metadata["class_names"] = list(self.class_names())
    self.info.metadata["ignore_label"] = L.IGNORE_LABEL
    self.info.metadata["root"] = str(root)
    self.info.metadata.setdefault("splits", {})
    return {split: self._generate_examples(split, items) for split, items in splits.items()}

  def _load_example(self, item: Item) -> tuple[dict, np.ndarray]:
    """(example, raw values seen) for one item; raises BadExampleError naming file + problem."""
    img_where = _where(item.image, item)
    img_bytes = item.image if isinstance(item.image, bytes) else L.read_bytes(item.image)
    h, w = L.image_size(img_bytes, img_where)
    raw = self.read_raw_label(item)
    lab_where = _where(item.label, item)
    if raw.shape[:2] != (h, w):
      raise L.BadExampleError(f"{lab_where}: annotation size {raw.shape[1]}x{raw.shape[0]} differs from "
                              f"image size {w}x{h} ({img_where})")
    if getattr(self, "_label_map_cache", None) is None:
      self._label_map_cache = self.label_map()
    mapped = self._label_map_cache(raw, lab_where)  # the ONE place labels are mapped
    seen = np.zeros(max(int(raw.max()) + 1 if raw.size else 1, 256), bool)
    seen[np.unique(raw)] = True
    example = dict(image=img_bytes, label=L.encode_label(mapped), name=item.name, height=h, width=w)
    return example, (seen, L.histogram(mapped))

  def _generate_examples(self, split: str, items: list[Item]) -> Iterator[tuple[str, dict]]:
    cfg = self.builder_config
    hist = np.zeros(256, np.int64)
    seen = np.zeros(65536, bool)
    bad: list[tuple[str, str]] = []
    count, max_h, max_w = 0, 0, 0

    def load(item):
      try:
        return item, self._load_example(item), None
      except L.BadExampleError as e:
        return item, None, str(e)

    with concurrent.futures.ThreadPoolExecutor(max(1, cfg.num_threads)) as pool:
      for item, result, error in _bounded_map(pool, load, items, 8 * max(1, cfg.num_threads)):
        if error is not None:
          if not cfg.skip_bad_examples:
            raise L.BadExampleError(f"{self.name} split {split!r}: {error}")
          bad.append((item.name, error))
          continue
        example, (raw_seen, h) = result
        hist += h
        seen[: len(raw_seen)] |= raw_seen
        max_h, max_w = max(max_h, example["height"]), max(max_w, example["width"])
        count += 1
        yield item.key, example
    if count == 0:
      raise L.BadExampleError(f"{self.name} split {split!r}: no usable example "
                              f"({len(bad)} bad, e.g. {bad[:1]})")
    self.end_of_split(split, seen)
    if bad:
      msg = "\n  ".join(f"{n}: {e}" for n, e in bad)
      log.warning("%s split %r: skipped %d bad examples:\n  %s", self.name, split, len(bad), msg)
      print(f"[psp_jax.data] {self.name} split {split!r}: skipped {len(bad)} bad examples:\n  {msg}")
    self.info.metadata["splits"][split] = dict(
        num_examples=count, max_height=max_h, max_width=max_w,
        class_pixels=hist[: self.num_classes].tolist(), ignore_pixels=int(hist[L.IGNORE_LABEL]),
        skipped=[list(b) for b in bad])


def _bounded_map(pool, fn, items, window: int):
  """`pool.map` in order, with at most `window` items in flight (bounded memory)."""
  pending = collections.deque()
  for item in items:
    pending.append(pool.submit(fn, item))
    if len(pending) >= window:
      yield pending.popleft().result()
  while pending:
    yield pending.popleft().result()


def read_list(path: pathlib.Path) -> list[str]:
  return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


def find_first(candidates: Sequence[pathlib.Path], test: Callable[[pathlib.Path], bool]) -> pathlib.Path | None:
  for c in candidates:
    if test(c):
      return c
  return None
