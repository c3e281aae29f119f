"""Report files: JSON written atomically (NaN/Inf as null), with a Markdown twin.

One writer for every report of the project (evaluation, refinement, train results), so every
report file exists only whole and reads the same way.
"""
from __future__ import annotations

import json
import math
import pathlib
from typing import Any


def clean(value: Any) -> Any:
  """JSON-ready: NaN/Inf as None, NumPy scalars and arrays as Python numbers and lists."""
  if isinstance(value, dict):
    return {str(k): clean(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [clean(v) for v in value]
  if hasattr(value, "tolist"):
    return clean(value.tolist())
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def write_text(path: pathlib.Path, text: str) -> pathlib.Path:
  """Write `text` atomically (a temporary sibling renamed), creating the folder."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(text)
  tmp.replace(path)
  return path


def write_json(path: pathlib.Path, data: Any) -> pathlib.Path:
  """Write `data` as indented JSON atomically (see `clean`)."""
  return write_text(path, json.dumps(clean(data), indent=1) + "\n")


def write_reports(metrics: dict, directory: pathlib.Path, stem: str,
                  markdown: str) -> tuple[pathlib.Path, pathlib.Path]:
  """`<directory>/<stem>.json` (the metrics) and `<stem>.md` (the given Markdown)."""
  directory = pathlib.Path(directory)
  return (write_json(directory / f"{stem}.json", metrics),
          write_text(directory / f"{stem}.md", markdown))
