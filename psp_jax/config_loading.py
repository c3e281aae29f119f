"""Configs by path: `FILE.py[:NAME]` plus `--config.KEY=VALUE` overrides, with errors naming the key.

  loaded = load_config("configs/pspnet.py:demo")    # LoadedConfig(config, path, variant, note)
  spec, overrides, rest = split_config_args(argv)  # the CLI's --config / --config.KEY=VALUE
  apply_text_overrides(loaded.config, overrides)   # text parsed by the field's type
  set_value(config, "train.steps", 2)              # a Python value (psp-jax ablate tables)

One loader for `psp-jax train/evaluate/prepare` and `psp-jax ablate`. A config file defines
`get_config(name=DEFAULT)` and one function per variant; `FILE.py` without `:NAME` takes the
default and says which (`LoadedConfig.note`). The folder above the file's folder goes on
sys.path, so config files import their siblings as `configs.<name>`.

Override text is parsed by the type of the field it replaces, as ml_collections' config_flags
does: bool (true/false/1/0), int, float, str (verbatim), tuples and dicts (Python literals),
anything else a Python literal or else the text. Every error is a ConfigError (a UsageError:
the CLI prints `psp-jax train: error: ...` and exits 2) naming the full dotted key, the value,
what the field takes and, for a typo at any depth, the closest existing keys.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
import inspect
import pathlib
import sys
from typing import Any, Iterable, Sequence

import ml_collections

from psp_jax.cli_errors import UsageError

ConfigDict = ml_collections.ConfigDict
TRUE_TEXTS = ("true", "t", "1", "yes")
FALSE_TEXTS = ("false", "f", "0", "no")


class ConfigError(UsageError):
  """A config file, key or value is not accepted (the message names which and why)."""


@dataclasses.dataclass(frozen=True)
class LoadedConfig:
  config: ConfigDict
  path: pathlib.Path  # the resolved config file
  variant: str | None  # the variant built (get_config's default when the spec names none)
  note: str = ""  # when the spec named no variant: which one was picked


# ----------------------------------------------------------------------------- files

def split_spec(spec: str) -> tuple[str, str | None]:
  """'FILE.py:NAME' -> ('FILE.py', 'NAME'); 'FILE.py' -> ('FILE.py', None)."""
  head, sep, name = spec.rpartition(":")
  if sep and head.endswith(".py"):
    return head, name
  return spec, None


def did_you_mean(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
  return difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.6)


def _hint(word: str, candidates: Iterable[str]) -> str:
  close = did_you_mean(word, candidates)
  return f" (did you mean {' or '.join(close)}?)" if close else ""


_MODULES: dict[pathlib.Path, Any] = {}


def _import(path: pathlib.Path, where: str):
  path = path.resolve()
  if path not in _MODULES:
    root = str(path.parent.parent)  # configs import their siblings as `configs.<name>`
    if root not in sys.path:
      sys.path.insert(0, root)
    spec = importlib.util.spec_from_file_location(f"_psp_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
      spec.loader.exec_module(module)
    except Exception as e:  # a broken config file: say which and why (traceback with --verbose)
      raise ConfigError(f"{where}: {path} cannot be imported: {type(e).__name__}: {e}") from e
    _MODULES[path] = module
  return _MODULES[path]


def variants(module) -> list[str]:
  """The variant functions of a config module: its public functions taking no arguments."""
  out = []
  for name, fn in vars(module).items():
    if (name.startswith("_") or name == "get_config" or not inspect.isfunction(fn)
        or fn.__module__ != module.__name__):
      continue
    params = inspect.signature(fn).parameters.values()
    if all(p.default is not p.empty for p in params):
      out.append(name)
  return sorted(out)


def _default_variant(get_config) -> str | None:
  params = list(inspect.signature(get_config).parameters.values())
  return params[0].default if params and params[0].default is not params[0].empty else None


def load_config(spec: str, *, flag: str = "--config") -> LoadedConfig:
  """Build the config `spec` ('FILE.py:NAME' or 'FILE.py') names; ConfigError if it cannot."""
  file, name = split_spec(str(spec))
  where = f"{flag} {spec}"
  path = pathlib.Path(file).expanduser()
  if path.is_dir():
    raise ConfigError(f"{where}: {path} is a folder; expected a config file FILE.py[:NAME]")
  if not path.is_file():
    near = sorted(str(p) for p in path.parent.glob("*.py")) if path.parent.is_dir() else []
    raise ConfigError(f"{where}: config file {path} not found{_hint(str(path), near)}")
  if path.suffix != ".py":
    raise ConfigError(f"{where}: {path} is not a Python file; expected FILE.py[:NAME]")
  module = _import(path, where)
  get_config = getattr(module, "get_config", None)
  if not callable(get_config):
    raise ConfigError(f"{where}: {path} defines no get_config(name)")
  names = variants(module)
  note = ""
  try:
    if name is None:
      name = _default_variant(get_config)
      config = get_config()
      note = (f"{flag} {file} names no variant: using get_config's default"
              + (f" {name!r}" if name is not None else "")
              + (f" (variants: {', '.join(names)}; choose one with {file}:NAME)" if names else ""))
    else:
      config = get_config(name)
  except (ValueError, KeyError) as e:
    msg = str(e).strip("'\"")
    hint = _hint(name, names) if name is not None and name not in names else ""
    raise ConfigError(f"{where}: {msg}{hint}") from e
  if not isinstance(config, ConfigDict):
    raise ConfigError(f"{where}: get_config returned a {type(config).__name__}, not a ConfigDict")
  return LoadedConfig(config, path.resolve(), name, note)


# ----------------------------------------------------------------------------- keys

def dotted_keys(config: ConfigDict, prefix: str = "") -> list[str]:
  """Every key of `config` at every depth, dotted ('train', 'train.steps', ...)."""
  out = []
  for k, v in config.items():
    key = f"{prefix}{k}"
    out.append(key)
    if isinstance(v, ConfigDict):
      out += dotted_keys(v, key + ".")
  return out


def _unknown_key(config: ConfigDict, parts: Sequence[str], depth: int, key: str, where: str) -> ConfigError:
  """The error for `key` whose component `parts[depth]` does not exist: the closest names at
  that level (with the rest of the key when that exists) and, for a leaf, the same name in
  other sections (train.base_lr -> optim.base_lr)."""
  parent = ".".join(parts[:depth])
  node = get_value(config, parent) if parent else config
  missing, rest = parts[depth], parts[depth + 1:]
  siblings = list(node.keys()) if isinstance(node, ConfigDict) else []
  keys = set(dotted_keys(config))
  close = []
  for name in did_you_mean(missing, siblings):
    fixed = ".".join([*parts[:depth], name, *rest])
    close.append(fixed if fixed in keys else ".".join([*parts[:depth], name]))
  if not rest:
    close += sorted(k for k in keys if k.rsplit(".", 1)[-1] == missing and k not in close)
  what = "key" if not rest else "section"
  msg = f"{where}: unknown config key {key!r}: {parent or 'the config'} has no {what} {missing!r}"
  if close:
    msg += f"; did you mean {' or '.join(close[:3])}?"
  elif siblings:
    msg += f"; {parent or 'the config'} has {', '.join(sorted(siblings))}"
  return ConfigError(msg)


def _walk(config: ConfigDict, parts: Sequence[str], depth: int, where: str) -> Any:
  """The node at parts[:depth]; ConfigError naming the full key parts when a part is absent."""
  node = config
  for i, part in enumerate(parts[:depth]):
    if not isinstance(node, ConfigDict) or part not in node:
      raise _unknown_key(config, parts, i, ".".join(parts), where)
    node = node[part]
  return node


def get_value(config: ConfigDict, key: str, *, where: str = "") -> Any:
  """config['a']['b'] for 'a.b' (ConfigError naming the key when absent)."""
  parts = key.split(".")
  return _walk(config, parts, len(parts), where or key)


def _describe_type(ftype: type, current: Any) -> str:
  names = {bool: "True or False", int: "an integer", float: "a number", str: "text",
           tuple: "a tuple such as (1, 2)", list: "a list such as [1, 2]", dict: "a dict"}
  if isinstance(ftype, type) and issubclass(ftype, ConfigDict):
    return "a dict such as {'key': value}"
  return names.get(ftype, "a Python literal") + f" (now {current!r})"


def parse_text(ftype: type, text: str) -> Any:
  """`--config.KEY=TEXT` as a value of type `ftype` (ValueError when it is not one)."""
  if text == "None":
    return None
  if ftype is bool:
    low = text.strip().lower()
    if low in TRUE_TEXTS or low in FALSE_TEXTS:
      return low in TRUE_TEXTS
    raise ValueError(text)
  if ftype is int:
    return int(text)
  if ftype is float:
    return float(text)
  if ftype is str:
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  if ftype in (tuple, list):
    if isinstance(value, (tuple, list)):
      return ftype(value)
    return ftype((value,))
  if ftype is dict or (isinstance(ftype, type) and issubclass(ftype, ConfigDict)):
    if not isinstance(value, dict):
      raise ValueError(text)
    return value
  return value


def set_value(config: ConfigDict, key: str, value: Any = None, *, text: str | None = None,
              where: str | None = None) -> None:
  """config[key] = value (or `text` parsed by the field's type), checked: the key must exist
  and the value fit the field's type. ConfigError names `where` (default the flag), the key,
  the value and what the field takes."""
  shown = text if text is not None else repr(value)
  where = where or f"--config.{key}={shown}"
  parts = key.split(".")
  parent = _walk(config, parts, len(parts) - 1, where)
  leaf = parts[-1]
  if not isinstance(parent, ConfigDict):
    raise ConfigError(f"{where}: {'.'.join(parts[:-1])} is a value ({parent!r}), not a config section")
  if leaf not in parent:
    raise _unknown_key(config, parts, len(parts) - 1, key, where)
  ftype, current = parent.get_type(leaf), parent[leaf]
  if text is not None:
    try:
      value = parse_text(ftype, text)
    except ValueError:
      raise ConfigError(f"{where}: {key} takes {_describe_type(ftype, current)}, got {text!r}") from None
  try:
    parent[leaf] = value
  except (TypeError, ValueError, KeyError) as e:
    raise ConfigError(f"{where}: {key} takes {_describe_type(ftype, current)}, got {shown}") from e


def set_values(config: ConfigDict, values: dict[str, Any], *, where: str | None = None) -> None:
  for key, value in values.items():
    set_value(config, key, value, where=where)


# ----------------------------------------------------------------------------- command line

def split_config_args(argv: Sequence[str], flag: str = "config"
                      ) -> tuple[str | None, list[tuple[str, str | None]], list[str]]:
  """(the --config FILE value, [(key, text or None)] of --config.KEY=VALUE / --config.KEY VALUE
  / a bare --config.KEY, the other arguments in order)."""
  spec, overrides, rest = None, [], []
  argv = list(argv)
  i = 0
  while i < len(argv):
    arg = argv[i]
    nxt = argv[i + 1] if i + 1 < len(argv) else None
    takes_next = nxt is not None and not nxt.startswith("--")
    if arg == f"--{flag}" or arg.startswith(f"--{flag}="):
      if "=" in arg:
        spec = arg.split("=", 1)[1]
      elif takes_next:
        spec, i = nxt, i + 1
      else:
        raise ConfigError(f"--{flag} needs a value: FILE.py[:NAME]")
    elif arg.startswith(f"--{flag}."):
      body = arg[len(flag) + 3:]
      if "=" in body:
        key, text = body.split("=", 1)
      elif takes_next:
        key, text, i = body, nxt, i + 1
      else:
        key, text = body, None  # a bare boolean flag: --config.eval.flip
      overrides.append((key, text))
    else:
      rest.append(arg)
    i += 1
  return spec, overrides, rest


def apply_text_overrides(config: ConfigDict, overrides: Sequence[tuple[str, str | None]]) -> None:
  """Apply [(key, text)] from the command line in order (see `set_value`)."""
  for key, text in overrides:
    if text is None:
      parts = key.split(".")
      parent = _walk(config, parts, len(parts) - 1, f"--config.{key}")
      if isinstance(parent, ConfigDict) and parts[-1] in parent and parent.get_type(parts[-1]) is not bool:
        raise ConfigError(f"--config.{key}: needs a value (--config.{key}=VALUE)")
      text = "True"
    set_value(config, key, text=text, where=f"--config.{key}={text}")
