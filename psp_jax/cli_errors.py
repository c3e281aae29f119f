"""One error style for every `psp-jax` command, and quiet library logging.

An expected failure (bad input, a damaged or foreign checkpoint, a locked workdir, a failed
training health check ...) prints one line

  psp-jax <command>: error: <message>

and exits non-zero: 2 for a usage error (a bad flag or config value: `UsageError`, which
config errors subclass), 1 for everything else. The traceback is printed only with
`--verbose` (anywhere on the command line) or PSP_JAX_VERBOSE=1. Unexpected exceptions (a
TypeError, an AssertionError: bugs) keep their traceback.

Library logging (absl, Orbax, TFDS, Grain INFO lines) stays at WARNING unless verbose, and
what a command leaves behind (Grain worker processes, shared memory) is released before exit.
"""
from __future__ import annotations

import gc
import logging
import os
import sys
import traceback
from typing import Callable, Sequence

VERBOSE_ENV = "PSP_JAX_VERBOSE"
VERBOSE_FLAG = "--verbose"
USAGE_EXIT = 2
ERROR_EXIT = 1
# Exception types whose message is meant for the user (the project raises these for bad input).
EXPECTED = (ValueError, OSError, ImportError)
# Loggers of libraries that log INFO lines during normal runs.
LIBRARY_LOGGERS = ("absl", "orbax", "jax", "grain", "tensorflow_datasets", "tensorstore")


class UsageError(ValueError):
  """A command-line argument or config value is not accepted (exit status 2)."""


def verbose() -> bool:
  return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def take_verbose(argv: Sequence[str]) -> list[str]:
  """`argv` without `--verbose`; when it was there, PSP_JAX_VERBOSE=1 is set for this process
  and the ones it starts."""
  rest = [a for a in argv if a != VERBOSE_FLAG]
  if len(rest) != len(argv):
    os.environ[VERBOSE_ENV] = "1"
  return rest


def configure_logging(is_verbose: bool | None = None) -> None:
  """INFO and up when verbose, else WARNING and up, for Python logging and absl."""
  is_verbose = verbose() if is_verbose is None else is_verbose
  level = logging.INFO if is_verbose else logging.WARNING
  logging.getLogger().setLevel(level)
  for name in LIBRARY_LOGGERS:
    logging.getLogger(name).setLevel(level)
  try:
    from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
  except ImportError:
    return
  absl_logging.set_verbosity(absl_logging.INFO if is_verbose else absl_logging.WARNING)
  absl_logging.set_stderrthreshold("info" if is_verbose else "warning")


def is_expected(exc: BaseException) -> bool:
  """Errors that describe a problem of the input, not of the code."""
  return isinstance(exc, EXPECTED) or type(exc).__module__.startswith("psp_jax")


def describe(exc: BaseException) -> str:
  """A readable one-message form: the text, or the type with its value when the text alone
  would be cryptic (KeyError(101) -> 'KeyError: 101', EOFError() -> 'EOFError')."""
  text = str(exc).strip()
  if isinstance(exc, UsageError) or type(exc).__module__.startswith("psp_jax"):
    return text or type(exc).__name__
  name = type(exc).__name__
  if not text:
    return name
  if isinstance(exc, (KeyError, EOFError)) or len(text) < 12 and " " not in text:
    return f"{name}: {text}"
  return text


def report(prog: str, exc: BaseException, *, is_verbose: bool | None = None) -> int | None:
  """Print `exc` in the command's error style and return the exit status, or None when it is
  not an expected error (the caller re-raises it, traceback and all)."""
  if not is_expected(exc):
    return None
  if verbose() if is_verbose is None else is_verbose:
    traceback.print_exception(exc, file=sys.stderr)
  print(f"{prog}: error: {describe(exc)}", file=sys.stderr, flush=True)
  return USAGE_EXIT if isinstance(exc, UsageError) else ERROR_EXIT


def run_command(prog: str, main: Callable[[list[str]], int | None], argv: Sequence[str]) -> int:
  """`main(argv)` with expected errors reported as `prog: error: ...` (see the module
  docstring). SystemExit (argparse's usage errors, a preempted run's 143) passes through.
  Afterwards a garbage collection finalises what the command left in reference cycles (Grain
  iterators: their worker processes stop and their shared memory is released) while the
  interpreter is whole, instead of leaking at shutdown."""
  try:
    return int(main(list(argv)) or 0)
  except KeyboardInterrupt:
    print(f"{prog}: interrupted", file=sys.stderr)
    return 130
  except Exception as e:  # pylint: disable=broad-except
    status = report(prog, e)
    if status is None:
      raise
    return status
  finally:
    release_worker_resources()


def release_worker_resources() -> None:
  """Finalise what a command left in reference cycles (Grain iterators stop their worker
  processes), then wait for Grain's asynchronous shared-memory deletions: an array's segment is
  unlinked by a thread pool, which the interpreter does not wait for, so without this the
  resource tracker reports them as leaked at exit."""
  gc.collect()
  shm = sys.modules.get("grain._src.python.ipc.shared_memory_array")
  cls = getattr(shm, "SharedMemoryArray", None)
  pool = getattr(cls, "_del_thread_pool", None)
  if pool is not None:
    cls._del_thread_pool = None  # later deletions run synchronously
    cls._outstanding_del_requests = None
    pool.close()
    pool.join()
