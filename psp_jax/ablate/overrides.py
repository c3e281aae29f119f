"""Config overrides of a table row: checked against the base config, written as CLI flags.

Checking before anything runs turns a typo in a table (`model.binz`) or a wrong type into an
error naming the table file, the row and the key, instead of a failed run an hour later.
"""
from __future__ import annotations

import copy
import pathlib
from typing import Any, Mapping

import ml_collections

from psp_jax import config_checks, config_loading
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


def load_base_config(spec: str) -> ml_collections.ConfigDict:
  """The config named by 'FILE.py:NAME', built by the loader `psp-jax train --config` uses."""
  try:
    return config_loading.load_config(resolve_config_spec(spec), flag="base config").config
  except config_loading.ConfigError as e:
    raise TableError(str(e)) from e


def check_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any], where: str) -> None:
  """Apply `overrides` to a copy of `config`, then check the values (psp_jax.config_checks):
  TableError naming `where`, the key and what it accepts for an unknown key (with the closest
  existing ones), a value the field does not take, or a value out of range."""
  cfg = copy.deepcopy(config)
  try:
    config_loading.set_values(cfg, dict(overrides), where=where)
    config_checks.check_config(cfg, where=where)
  except config_loading.ConfigError as e:
    raise TableError(str(e)) from e


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
