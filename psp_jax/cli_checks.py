"""Up-front checks of command-line paths and numbers: what a path is, and what was expected.

  check_dir(path, "--workdir")          a folder to write in (may not exist yet)
  check_output_file(path, "--output")   a file to write (may not exist yet)
  check_output(path, "--output")        a file or a folder to write
  check_existing(path, "--input", kind="file"|"dir"|"any")
  parse_args(parser, argv)              argparse, with "did you mean" for a mistyped --flag
  positive_int, non_negative_int, unit_interval    argparse `type=` functions

A path that is, or runs through, a regular file, a missing input, or a folder that cannot be
written is a UsageError (exit 2) before any work starts, e.g.
  --workdir runs/a.txt/b: runs/a.txt is a file, so no folder can be made inside it
"""
from __future__ import annotations

import argparse
import difflib
import os
import pathlib

from psp_jax.cli_errors import UsageError

PathLike = str | os.PathLike


def kind(path: pathlib.Path) -> str:
  if path.is_symlink() and not path.exists():
    return "a broken link"
  if path.is_dir():
    return "a folder"
  if path.is_file():
    return "a file"
  if path.exists():
    return "neither a file nor a folder"
  return "missing"


def _check_parents(path: pathlib.Path, flag: str, shown: PathLike) -> None:
  """No ancestor of `path` may be a file; the nearest existing one must be writable."""
  for parent in path.parents:
    if parent.exists() or parent.is_symlink():
      if not parent.is_dir():
        raise UsageError(f"{flag} {shown}: {parent} is {kind(parent)}, so nothing can be created "
                         "inside it; expected a path under a folder")
      if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {shown}: cannot create it, folder {parent} is not writable")
      return


def check_dir(path: PathLike, flag: str) -> pathlib.Path:
  """A folder to write into: absent (it will be created) or a writable folder."""
  p = pathlib.Path(path).expanduser()
  if p.exists() or p.is_symlink():
    if not p.is_dir():
      raise UsageError(f"{flag} {path}: is {kind(p)}; expected a folder (created if missing)")
    if not os.access(p, os.W_OK | os.X_OK):
      raise UsageError(f"{flag} {path}: folder is not writable")
    return p
  _check_parents(p, flag, path)
  return p


def check_output_file(path: PathLike, flag: str) -> pathlib.Path:
  """A file to write: absent or a writable file, not a folder, under no file."""
  p = pathlib.Path(path).expanduser()
  if p.is_dir():
    raise UsageError(f"{flag} {path}: is a folder; expected a file name to write")
  if p.exists() and not os.access(p, os.W_OK):
    raise UsageError(f"{flag} {path}: the file is not writable")
  if not p.exists():
    _check_parents(p, flag, path)
  return p


def check_output(path: PathLike, flag: str) -> pathlib.Path:
  """A file or a folder to write (whichever it turns out to be), under no file."""
  p = pathlib.Path(path).expanduser()
  if p.is_dir():
    return check_dir(p, flag)
  return check_output_file(path, flag)


def check_existing(path: PathLike, flag: str, kind_: str = "any") -> pathlib.Path:
  """An input that must exist: kind_ 'file', 'dir' or 'any' (file or folder)."""
  p = pathlib.Path(path).expanduser()
  expected = {"file": "a file", "dir": "a folder", "any": "a file or a folder"}[kind_]
  found = kind(p)
  ok = {"file": p.is_file(), "dir": p.is_dir(), "any": p.is_file() or p.is_dir()}[kind_]
  if not ok:
    detail = "does not exist" if found == "missing" else f"is {found}"
    for parent in p.parents:  # name the first missing component's parent state
      if parent.exists() and not parent.is_dir():
        detail = f"{parent} is a file, not a folder"
        break
    raise UsageError(f"{flag} {path}: {detail}; expected {expected}")
  return p


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
  """parser.parse_args(argv), after refusing an unknown --flag with the closest known ones
  (argparse alone would first complain about a required flag the typo was meant to be)."""
  known = [o for action in parser._actions for o in action.option_strings]  # pylint: disable=protected-access
  for arg in argv:
    name = arg.split("=", 1)[0]
    if name.startswith("--") and name not in known and not any(
        k.startswith(name) for k in known):  # argparse accepts unique prefixes
      close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
      parser.error(f"unrecognized argument {name}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
  return parser.parse_args(argv)


def _int_at_least(low: int):
  """argparse type: an integer >= low (the message names the bound and the text)."""
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
    if value < low:
      raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
    return value
  return parse


positive_int = _int_at_least(1)  # argparse type: an integer >= 1
non_negative_int = _int_at_least(0)  # argparse type: an integer >= 0


def unit_interval(text: str) -> float:
  """argparse type: a number in [0, 1]."""
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
  if not 0.0 <= value <= 1.0:
    raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
  return value
