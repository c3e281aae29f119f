"""Is a checkpoint step whole? Found before it is used, reported by folder, file and problem.

  damage = inspect_step(step_dir)      # None when intact, else Damage(step_dir, file, problem)
  raise CheckpointCorruptError(damage)

A step (an Orbax step folder of psp_jax.checkpoint) is checked in two passes:
  1. every required item folder exists ('state', 'meta' by default), and every JSON file of the
     step parses: Orbax's _CHECKPOINT_METADATA, each item's _METADATA, the tree's _sharding and
     array_metadatas, the 'meta' item, the data-iterator states data/process_*.json, metrics;
  2. every value of the 'state' item's OCDBT store (array chunks and metadata) is read, raw
     and synchronously (a tenth of a second for a small model: no decoding, no devices). A
     read error names the damaged file when TensorStore does, else (a truncated OCDBT data
     file reports only its size) the file of that size, and the array being read.
A damaged step is a CheckpointCorruptError (the file and what is wrong); a step that is whole
but does not fit the configured model is a different error (CheckpointMismatchError,
psp_jax.train.checkpointing), and never a reason to fall back.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import re

import jax
import numpy as np
import orbax.checkpoint as ocp
import tensorstore as ts

JSON_NAMES = ("_CHECKPOINT_METADATA", "_METADATA", "_sharding", "metadata", "metrics")
REQUIRED_ITEMS = ("state", "meta")
_FILE_RE = re.compile(r'local file "([^"]+)"')
_SIZE_RE = re.compile(r"Requested byte range \[(\d+), (\d+)\) is not valid for value of size (\d+)")
_ARRAY_RE = re.compile(r'Error reading "([^"/]+)/')


@dataclasses.dataclass(frozen=True)
class Damage:
  step_dir: pathlib.Path
  file: pathlib.Path | None  # the damaged file or folder (None: not known)
  problem: str

  @property
  def where(self) -> str:
    if self.file is None:
      return "state/"
    try:
      return str(self.file.relative_to(self.step_dir))
    except ValueError:
      return str(self.file)

  def describe(self) -> str:
    return f"{self.step_dir}: {self.where}: {self.problem}"


class CheckpointCorruptError(ValueError):
  """A checkpoint step is damaged (a file missing, truncated or unreadable)."""

  def __init__(self, damage: Damage, advice: str = ""):
    self.damage = damage
    super().__init__(f"checkpoint {damage.step_dir} is damaged: {damage.where}: {damage.problem}"
                     + (f"; {advice}" if advice else ""))


def _is_json(path: pathlib.Path) -> bool:
  return path.name in JSON_NAMES or path.suffix == ".json" or path.parent.name == "array_metadatas"


def _json_damage(step_dir: pathlib.Path) -> Damage | None:
  for path in sorted(p for p in step_dir.rglob("*") if p.is_file() and _is_json(p)):
    text = path.read_bytes()
    if not text.strip():
      return Damage(step_dir, path, f"empty ({len(text)} bytes)")
    try:
      json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
      pos = getattr(e, "pos", None)
      return Damage(step_dir, path, f"not valid JSON ({getattr(e, 'msg', e)}"
                    + (f"; byte {pos} of {len(text)}: truncated?)" if pos is not None else ")"))
  return None


def read_error_damage(step_dir: pathlib.Path, message: str, key: str | None = None) -> Damage:
  """The Damage a TensorStore/Orbax read error of `step_dir` describes (the file when known);
  `key`: the OCDBT key being read ('params.conv.kernel/0.0.0.0'), naming the array."""
  step_dir = pathlib.Path(step_dir)
  head = message.split(" [tensorstore_spec", 1)[0].strip()
  array = key.split("/", 1)[0] if key else (m.group(1) if (m := _ARRAY_RE.search(head)) else None)
  what = f"array {array.replace('.', '/')} cannot be read" if array else "the array index cannot be read"
  files = [pathlib.Path(f) for f in _FILE_RE.findall(head)]
  files = [f for f in files if f.is_file()]
  size = _SIZE_RE.search(head)
  if size:
    start, end, have = (int(g) for g in size.groups())
    problem = f"truncated ({have} bytes, but the checkpoint reads bytes {start}..{end}); {what}"
    if not files:
      same = [p for p in step_dir.rglob("*") if p.is_file() and p.stat().st_size == have]
      files = same if len(same) == 1 else []
  else:
    detail = head.rsplit('": ', 1)[-1] if '": ' in head else head
    problem = f"{what}: {detail[:300]}"
  return Damage(step_dir, files[-1] if files else None, problem)


def _array_damage(step_dir: pathlib.Path, item: str = "state") -> Damage | None:
  """Read every value of the item's OCDBT store (chunks and array metadata), synchronously;
  a store without OCDBT index is restored through Orbax instead."""
  path = step_dir / item
  if not (path / "manifest.ocdbt").is_file():
    return _restore_damage(step_dir, path)
  key = None
  try:
    store = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{path.absolute()}/"}).result()
    for key in store.list().result():
      store.read(key).result()
  except (ValueError, OSError) as e:
    return read_error_damage(step_dir, str(e), key.decode(errors="replace") if key else None)
  return None


def _restore_damage(step_dir: pathlib.Path, path: pathlib.Path) -> Damage | None:
  handler = ocp.PyTreeCheckpointHandler()
  try:
    tree = handler.metadata(path)
    tree = getattr(tree, "tree", tree)
    restore_args = jax.tree.map(lambda m: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    with ocp.Checkpointer(handler) as ckptr:
      ckptr.restore(path, args=ocp.args.PyTreeRestore(restore_args=restore_args))
  except (ValueError, OSError, KeyError, TypeError) as e:
    return read_error_damage(step_dir, str(e))
  return None


def inspect_step(step_dir: str | pathlib.Path, items: tuple[str, ...] = REQUIRED_ITEMS, *,
                 read_arrays: bool = True) -> Damage | None:
  """None when the step at `step_dir` is whole, else the first Damage found (see the module
  docstring). read_arrays=False: the cheap checks only (folders and JSON)."""
  step_dir = pathlib.Path(step_dir)
  if not step_dir.is_dir():
    return Damage(step_dir, step_dir, "missing")
  for item in items:
    if not (step_dir / item).is_dir():
      return Damage(step_dir, step_dir / item, "missing (the item folder is not there)")
  damage = _json_damage(step_dir)
  if damage is None and read_arrays and (step_dir / "state").is_dir():
    damage = _array_damage(step_dir)
  return damage


def check_step(step_dir: str | pathlib.Path, items: tuple[str, ...] = REQUIRED_ITEMS, *,
               read_arrays: bool = True) -> None:
  """Raise CheckpointCorruptError when `inspect_step` finds damage (before a library reads it)."""
  damage = inspect_step(step_dir, items, read_arrays=read_arrays)
  if damage is not None:
    raise CheckpointCorruptError(damage)


def raise_if_damaged(step_dir: str | pathlib.Path, error: BaseException,
                     items: tuple[str, ...] = REQUIRED_ITEMS) -> None:
  """After `error` while reading `step_dir`: raise CheckpointCorruptError when the step is
  damaged (from `error`); return when it is whole (the caller re-raises `error`)."""
  damage = inspect_step(step_dir, items)
  if damage is not None:
    raise CheckpointCorruptError(damage) from error
