"""One writer per workdir: an exclusive lock held for a whole `psp-jax train` (and for the
`psp-jax evaluate` that writes the run's reports).

  with WorkdirLock(workdir, "train"):    # WorkdirLockedError naming the holder when taken
    ...

The lock is a `fcntl.flock` on WORKDIR/.psp_jax.lock, which also records the holder (pid,
host, start time, command) as JSON. The kernel drops a flock when its process ends in any way
(SIGKILL included), so a lock file whose flock is free was left by a process that is gone: it
is taken over with a note naming that process. On a filesystem without locks the run goes on
unlocked, with a warning. Multi-host runs: only process 0 locks (`primary=True`); the others
learn its outcome through `agree` and stop with the same verdict when it was refused.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import fcntl
import json
import os
import pathlib
import socket
import sys
from typing import Callable, Iterator

LOCK_NAME = ".psp_jax.lock"


class WorkdirLockedError(RuntimeError):
  """Another live process holds the workdir."""


@dataclasses.dataclass(frozen=True)
class Holder:
  pid: int
  host: str
  started: str
  purpose: str
  command: str

  @classmethod
  def me(cls, purpose: str) -> "Holder":
    return cls(pid=os.getpid(), host=socket.gethostname(),
               started=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
               purpose=purpose, command=_shorten(" ".join(["psp-jax", *sys.argv[1:]])))

  def describe(self) -> str:
    return f"`{self.purpose}` (pid {self.pid} on host {self.host}, started {self.started})"


def _shorten(text: str, limit: int = 240) -> str:
  return text if len(text) <= limit else text[:limit - 4] + " ..."


def read_holder(path: pathlib.Path) -> Holder | None:
  """The holder recorded in a lock file (None when empty or unreadable)."""
  try:
    data = json.loads(path.read_text())
    return Holder(**{f.name: data[f.name] for f in dataclasses.fields(Holder)})
  except (OSError, ValueError, KeyError, TypeError):
    return None


class WorkdirLock:
  """Context manager holding the lock of `workdir` (created if missing) for `purpose` (the
  command, e.g. 'psp-jax train': it prefixes the notes printed to stderr)."""

  def __init__(self, workdir: str | os.PathLike, purpose: str, *,
               say: Callable[[str], None] | None = None):
    self.workdir = pathlib.Path(workdir).expanduser().absolute()
    self.path = self.workdir / LOCK_NAME
    self.purpose = purpose
    self.say = say or (lambda msg: print(f"{purpose}: {msg}", file=sys.stderr, flush=True))
    self._fd: int | None = None

  def acquire(self) -> None:
    self.workdir.mkdir(parents=True, exist_ok=True)
    for _ in range(10):  # retried only when a releasing holder removed the file under us
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
          raise self._locked_error() from None
        self.say(f"warning: cannot lock {self.path} ({e.strerror}: the filesystem has no "
                 "file locks); running without a lock, so start no second run in this workdir")
        return
      try:
        same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
      except FileNotFoundError:
        same = False
      if not same:
        os.close(fd)
        continue
      self._fd = fd
      previous = read_holder(self.path)
      if previous is None and os.fstat(fd).st_size:
        self.say(f"note: replaced an unreadable lock file {self.path}")
      elif previous is not None:
        self.say(f"note: {self.workdir} was locked by {previous.describe()}, which is no longer "
                 "running (killed?); took the lock over")
      os.ftruncate(fd, 0)
      os.pwrite(fd, (json.dumps(dataclasses.asdict(Holder.me(self.purpose))) + "\n").encode(), 0)
      os.fsync(fd)
      return
    raise WorkdirLockedError(f"could not lock {self.workdir}: its lock file keeps being replaced")

  def _locked_error(self) -> WorkdirLockedError:
    holder = read_holder(self.path)
    who = holder.describe() if holder else "another process (it has not written its details yet)"
    extra = f"\n  its command: {holder.command}" if holder and holder.command else ""
    return WorkdirLockedError(
        f"workdir {self.workdir} is in use by {who}; one run writes a workdir at a time: wait for "
        f"it to finish, or use another --workdir{extra}")

  def release(self) -> None:
    if self._fd is None:
      return
    try:
      self.path.unlink()
    except OSError:
      pass
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    self._fd = None

  def __enter__(self) -> "WorkdirLock":
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()


@contextlib.contextmanager
def hold(workdir: str | os.PathLike, purpose: str, *, primary: bool = True,
         agree: Callable[[bool], bool] | None = None) -> Iterator[WorkdirLock]:
  """The lock of a run of one or several processes: the primary process takes it; `agree(ok)`
  (for multi-host runs: the primary's `ok` broadcast to all) tells every process whether it
  did, so all stop when it was refused."""
  lock = WorkdirLock(workdir, purpose)
  error = None
  if primary:
    try:
      lock.acquire()
    except WorkdirLockedError as e:
      error = e
  try:
    if agree is not None and not agree(error is None):
      raise error or WorkdirLockedError(f"process 0 could not lock workdir {workdir} (see its error)")
    if error is not None:
      raise error
    yield lock
  finally:
    lock.release()
