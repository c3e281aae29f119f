"""Many input files, one command: every readable file is processed, the failures listed at the end.

  failures = for_each(files, process, prog="psp-jax predict")
  return finish("psp-jax predict", failures, len(files))    # 0, or 1 after listing them

`psp-jax predict` and `psp-jax refine` run their folders through this: a file that fails with
an expected error (unreadable, wrong size, ...: see psp_jax.cli_errors.is_expected) is reported
as it happens (`prog: warning: skipped NAME: reason`), the others are still processed, and
the run ends with the list of failed files and their reasons and exit status 1. Unexpected
errors (bugs) stop the run.
"""
from __future__ import annotations

import dataclasses
import pathlib
import sys
from typing import Any, Callable, Iterable

from psp_jax import cli_errors


@dataclasses.dataclass(frozen=True)
class Failure:
  name: str
  reason: str


def _name(item: Any) -> str:
  if isinstance(item, pathlib.Path):
    return str(item)
  if isinstance(item, tuple) and item and isinstance(item[-1], pathlib.Path):
    return str(item[-1])
  return str(item)


def _stderr(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


def for_each(items: Iterable[Any], process: Callable[[Any], None], *, prog: str,
             name: Callable[[Any], str] = _name,
             say: Callable[[str], None] = _stderr) -> list[Failure]:
  """process(item) for every item; expected errors are collected (and reported through `say`,
  e.g. tqdm.write beside a progress bar), not raised."""
  failures = []
  for item in items:
    try:
      process(item)
    except Exception as e:  # pylint: disable=broad-except
      if not cli_errors.is_expected(e):
        raise
      failures.append(Failure(name(item), cli_errors.describe(e)))
      say(f"{prog}: warning: skipped {failures[-1].name}: {failures[-1].reason}")
  return failures


def finish(prog: str, failures: list[Failure], total: int, what: str = "input") -> int:
  """Exit status of the run: 0 when nothing failed, else 1 after listing every failure."""
  if not failures:
    return 0
  lines = "\n  ".join(f"{f.name}: {f.reason}" for f in failures)
  print(f"{prog}: error: {len(failures)} of {total} {what}s failed (the others were written):\n"
        f"  {lines}", file=sys.stderr, flush=True)
  return 1
