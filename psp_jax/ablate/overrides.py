"""Config overrides of a table row: checked against the base config, written as CLI flags.

Checking before anything runs turns a typo in a table (`model.binz`) or a wrong type into an
error naming the table file, the row and the key, instead of a failed run an hour later.
"""
from __future__ import annotations

import copy
import functools
import importlib.util
import pathlib
import sys
from typing import Any, Mapping

import ml_collections

from psp_jax.ablate.table import TableError

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[2]


def resolve_config_spec(spec: str) -> str:
  """'FILE.py:NAME' with FILE as given when it exists from the current directory, else
  relative to the project root (so tables can say 'configs/pspnet.py:NAME' from anywhere)."""
  file, _, name = spec.partition(":")
  if pathlib.Path(file).expanduser().is_file():
    return spec
  candidate = PROJECT_ROOT / file
  if candidate.is_file():
    return f"{candidate}:{name}"
  raise TableError(f"base config {spec!r}: file {file!r} not found (from the current directory "
                   f"or from {PROJECT_ROOT})")


@functools.lru_cache(maxsize=None)
def _config_module(file: str):
  path = pathlib.Path(file).expanduser().resolve()
  root = str(path.parent.parent)  # configs may import siblings as `configs.<name>`
  if root not in sys.path:
    sys.path.insert(0, root)
  spec = importlib.util.spec_from_file_location(f"_psp_jax_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_base_config(spec: str) -> ml_collections.ConfigDict:
  """The config named by 'FILE.py:NAME' (as `--config FILE.py:NAME` builds it)."""
  file, _, name = resolve_config_spec(spec).partition(":")
  try:
    module = _config_module(file)
    return module.get_config(name) if name else module.get_config()
  except Exception as e:
    raise TableError(f"base config {spec!r} cannot be built: {type(e).__name__}: {e}") from e


def check_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any], where: str) -> None:
  """Apply `overrides` to a copy of `config`; TableError naming `where` and the key for an
  unknown key or a value the field does not accept."""
  cfg = copy.deepcopy(config)
  for key, value in overrides.items():
    parent, parts = cfg, key.split(".")
    for i, part in enumerate(parts[:-1]):
      if not isinstance(parent, ml_collections.ConfigDict) or part not in parent:
        raise TableError(f"{where}: key {key!r}: {'.'.join(parts[:i + 1])!r} is not a config "
                         f"section of the base config")
      parent = parent[part]
    leaf = parts[-1]
    if not isinstance(parent, ml_collections.ConfigDict) or leaf not in parent:
      known = sorted(parent.keys()) if isinstance(parent, ml_collections.ConfigDict) else []
      raise TableError(f"{where}: key {key!r} is not a field of the base config"
                       + (f"; {'.'.join(parts[:-1]) or 'the top level'} has {known}" if known else ""))
    try:
      parent[leaf] = value
    except (TypeError, ValueError) as e:
      raise TableError(f"{where}: key {key!r}: value {value!r} does not fit the field "
                       f"(currently {parent[leaf]!r}): {e}") from e


def format_value(value: Any) -> str:
  """A Python value as `--config.KEY=VALUE` text that ml_collections parses back to it."""
  if isinstance(value, bool) or value is None:
    return str(value)
  if isinstance(value, (int, float, str)):
    return value if isinstance(value, str) else repr(value)
  if isinstance(value, (tuple, list)):
    items = [format_value(v) if not isinstance(v, str) else repr(v) for v in value]
    body = ",".join(items) + ("," if len(items) == 1 else "")
    return f"({body})"
  if isinstance(value, Mapping):
    return repr(dict(value)).replace(" ", "")
  raise TypeError(f"cannot write override value {value!r} of type {type(value).__name__} on the "
                  "command line (use bool, int, float, str, None, tuples/lists or dicts of them)")


def override_flags(overrides: Mapping[str, Any]) -> list[str]:
  """['--config.KEY=VALUE', ...] in the given order."""
  return [f"--config.{key}={format_value(value)}" for key, value in overrides.items()]
