"""Does a checkpoint belong to a config? What `psp-jax evaluate` compares before it runs.

  found = differences(meta, config, run_config)   # ['data.name: checkpoint camvid, config folder', ...]

Compared, where both sides have the key:
  * the model: every field of meta['model'] (family, classes, depth, widths, ...) except the
    compute dtype and the family's inference_fields (psp_jax/models/contract.py: v3's
    output_stride, which evaluation may change), against config.model;
  * the dataset: name, class count, class names, label mapping and normalisation (mean/std) of
    the config the checkpoint was trained with (meta['source']['config']['data']), else of the
    checkpoint's 'classes' and 'preprocessing' entries (converted checkpoints);
  * the same dataset keys of the run's own WORKDIR/config.json (written by `psp-jax train`).
An empty list means they belong together. `psp-jax evaluate` stops on differences, or with
--allow_mismatch evaluates anyway and states them in its reports (`annotate_reports`).
"""
from __future__ import annotations

import json
import math
import pathlib
import time
from typing import Any, Mapping

DATA_KEYS = ("name", "num_classes", "class_names", "dataset_name", "label_map", "mean", "std")
IGNORED_MODEL_KEYS = ("dtype",)


class CheckpointConfigMismatchError(ValueError):
  """The checkpoint was trained for another model or dataset than the config describes."""


def _plain(value: Any) -> Any:
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if isinstance(value, Mapping):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  return value


def _same(a: Any, b: Any) -> bool:
  a, b = _plain(a), _plain(b)
  if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
  if isinstance(a, list) and isinstance(b, list):
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
  if isinstance(a, dict) and isinstance(b, dict):
    return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
  return a == b


def _short(value: Any, limit: int = 80) -> str:
  text = json.dumps(_plain(value), default=str)
  return text if len(text) <= limit else text[:limit - 3] + "..."


def _get(mapping: Any, key: str) -> Any:
  try:
    return mapping.get(key)
  except AttributeError:
    return None


def _data_view(meta: Mapping[str, Any]) -> dict[str, Any]:
  """The dataset keys a checkpoint was made for."""
  source = ((meta.get("source") or {}).get("config") or {}).get("data")
  if isinstance(source, Mapping):
    return {k: source[k] for k in DATA_KEYS if source.get(k) is not None}
  view = {}
  classes = meta.get("classes") or {}
  if classes.get("dataset"):
    view["name"] = classes["dataset"]
  if classes.get("names"):
    view["num_classes"] = len(classes["names"])
  pre = meta.get("preprocessing") or {}
  for k in ("mean", "std"):
    if isinstance(pre.get(k), (list, tuple)):
      view[k] = pre[k]
  return view


def _inference_fields(name: Any) -> tuple[str, ...]:
  from psp_jax.models.build import FAMILIES  # pylint: disable=import-outside-toplevel
  family = FAMILIES.get(name) if isinstance(name, str) else None
  return family.inference_fields if family is not None else ()


def differences(meta: Mapping[str, Any], config, run_config: Mapping[str, Any] | None = None,
                where: str = "checkpoint") -> list[str]:
  """'key: <where> A, config B' for every compared key that differs (see the module docstring)."""
  found = []
  model = config.get("model") if hasattr(config, "get") else None
  ignored = set(IGNORED_MODEL_KEYS) | set(_inference_fields((meta.get("model") or {}).get("name")))
  for key, value in (meta.get("model") or {}).items():
    if key in ignored or model is None or key not in model:
      continue
    if not _same(value, model[key]):
      found.append(f"model.{key}: {where} {_short(value)}, config {_short(model[key])}")
  data = config.get("data") if hasattr(config, "get") else None
  sides = [(where, _data_view(meta))]
  if run_config and isinstance(run_config.get("data"), Mapping):
    sides.append(("the run's config.json", {k: run_config["data"][k] for k in DATA_KEYS
                                            if run_config["data"].get(k) is not None}))
  reported = set()
  for label, view in sides:
    for key, value in view.items():
      mine = _get(data, key)
      if mine is None or key in reported or _same(value, mine):
        continue
      reported.add(key)
      found.append(f"data.{key}: {label} {_short(value)}, config {_short(mine)}")
  return found


def read_run_config(workdir: str | pathlib.Path) -> dict | None:
  """WORKDIR/config.json of a training run (None when absent or unreadable)."""
  path = pathlib.Path(workdir) / "config.json"
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def mismatch_error(path: str | pathlib.Path, found: list[str]) -> CheckpointConfigMismatchError:
  return CheckpointConfigMismatchError(
      f"checkpoint {path} does not belong to this config ({len(found)} differences):\n  "
      + "\n  ".join(found) + "\nuse the config it was trained with, or pass --allow_mismatch to "
      "evaluate anyway (the reports then list these differences)")


def annotate_reports(folder: str | pathlib.Path, since: float, found: list[str]) -> list[pathlib.Path]:
  """Add the differences to the JSON ('config_mismatch') and Markdown reports written in
  `folder` since the time `since` (an evaluation run with --allow_mismatch)."""
  folder = pathlib.Path(folder)
  done = []
  if not folder.is_dir():
    return done
  note = ("**Evaluated with --allow_mismatch: the checkpoint does not belong to this config:** "
          + "; ".join(found))
  for path in sorted(folder.iterdir()):
    if not path.is_file() or path.stat().st_mtime < since:
      continue
    if path.suffix == ".json":
      data = json.loads(path.read_text())
      if isinstance(data, dict):
        data["config_mismatch"] = found
        path.write_text(json.dumps(data, indent=1) + "\n")
        done.append(path)
    elif path.suffix == ".md":
      path.write_text(note + "\n\n" + path.read_text())
      done.append(path)
  return done


def now() -> float:
  """A time stamp to pass to `annotate_reports` (a second of slack for coarse file clocks)."""
  return time.time() - 1.0
