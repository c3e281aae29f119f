"""Where a prepared dataset came from: a cheap fingerprint of its source files and label mapping.

  fp = source_fingerprint(root, files, mapping)   # stored in the prepared dataset's metadata
  found = differences(stored, fp)                 # [] when the source is the same

Stat-based, no file content is read (stat-ing ~50K files takes well under a second): the
resolved source folder, the number of files, their total size, the newest modification time,
a SHA-1 over every file's path relative to the folder, size and mtime (ns), and a SHA-1 of the
label mapping (class names, the raw value -> class table, raw colours). A dataset prepared from
one `data.manual_dir` is then never reused for another copy, or for the same folder after
its files changed (DataSourceMismatchError, which says both sources and how to re-prepare).
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
from typing import Any, Iterable, Mapping

FIELDS = ("root", "files", "bytes", "newest", "files_sha1", "labels_sha1")


class DataSourceMismatchError(ValueError):
  """A prepared dataset was made from other source files or another label mapping."""


def mapping_digest(class_names: Iterable[str], table: Any, raw_colours: Mapping | None) -> str:
  """SHA-1 (16 hex digits) of a label mapping: names, the lookup table's bytes, raw colours."""
  h = hashlib.sha1()
  h.update(json.dumps(list(class_names)).encode())
  h.update(memoryview(table).tobytes() if table is not None else b"")
  colours = sorted((list(map(int, k)), int(v)) for k, v in (raw_colours or {}).items())
  h.update(json.dumps(colours).encode())
  return h.hexdigest()[:16]


def source_fingerprint(root: str | os.PathLike, files: Iterable[str | os.PathLike],
                       labels_sha1: str) -> dict[str, Any]:
  """The fingerprint of the source files `files` under `root` (see the module docstring)."""
  root = pathlib.Path(root).expanduser()
  rows = []
  for f in files:
    try:
      st = os.stat(f)
      rows.append((os.path.relpath(f, root), st.st_size, st.st_mtime_ns))
    except FileNotFoundError:  # listed but absent: preparing reports it; here it only counts
      rows.append((os.path.relpath(f, root), -1, 0))
  rows.sort()
  h = hashlib.sha1()
  for rel, size, mtime in rows:
    h.update(f"{rel}\0{size}\0{mtime}\n".encode())
  newest = max((m for _, _, m in rows), default=0)
  return {"root": str(root.resolve()), "files": len(rows), "bytes": int(sum(max(s, 0) for _, s, _ in rows)),
          "newest": datetime.datetime.fromtimestamp(newest / 1e9).isoformat(timespec="seconds")
          if rows else None,
          "files_sha1": h.hexdigest()[:16], "labels_sha1": labels_sha1}


def describe(fp: Mapping[str, Any]) -> str:
  return (f"{fp.get('root')} ({fp.get('files')} files, {int(fp.get('bytes') or 0) / 1e6:.1f} MB, "
          f"newest {fp.get('newest')})")


def differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
  """What differs between two fingerprints: 'folder', 'files', 'label mapping'."""
  found = []
  if stored.get("root") != current.get("root"):
    found.append("folder")
  if stored.get("files_sha1") != current.get("files_sha1"):
    found.append("files (names, sizes or modification times)")
  if stored.get("labels_sha1") != current.get("labels_sha1"):
    found.append("label mapping")
  return found


def mismatch_error(dataset: str, data_path: str, stored: Mapping[str, Any],
                   current: Mapping[str, Any], found: list[str]) -> DataSourceMismatchError:
  return DataSourceMismatchError(
      f"dataset {dataset} at {data_path} was prepared from another source than the config gives "
      f"now (differs: {', '.join(found)}):\n"
      f"  prepared from: {describe(stored)}\n"
      f"  config now:    {describe(current)}\n"
      "Re-prepare it from the config's source with `psp-jax prepare --config <your config and "
      "overrides> --force`, or give data.data_dir another folder to prepare it there")
