"""Class 1 (issue 13): one workdir, one writer (psp_jax.workdir_lock)."""
import json
import os
import signal
import subprocess
import sys

import pytest

from psp_jax import workdir_lock
from psp_jax.workdir_lock import LOCK_NAME, WorkdirLock, WorkdirLockedError

HOLDER = """
import sys, time
from psp_jax.workdir_lock import WorkdirLock
with WorkdirLock(sys.argv[1], "test holder"):
  print("LOCKED", flush=True)
  time.sleep(120)
"""


def _start_holder(workdir):
  proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], stdout=subprocess.PIPE,
                          text=True)
  assert proc.stdout.readline().strip() == "LOCKED"
  return proc


def test_live_holder_refused_dead_holder_taken_over_and_multihost_agreement(tmp_path):
  notes = []
  # a live holder: refused, naming its pid, host and what it runs
  holder = _start_holder(tmp_path / "w")
  try:
    with pytest.raises(WorkdirLockedError) as e:
      WorkdirLock(tmp_path / "w", "second", say=notes.append).acquire()
    assert f"pid {holder.pid} on host" in str(e.value) and "`test holder`" in str(e.value)
    # the multi-host form: every process learns process 0 was refused
    with pytest.raises(WorkdirLockedError, match=f"pid {holder.pid}"):
      with workdir_lock.hold(tmp_path / "w", "p0", agree=lambda ok: ok):
        pass
    with pytest.raises(WorkdirLockedError, match="process 0 could not lock"):
      with workdir_lock.hold(tmp_path / "w", "p1", primary=False, agree=lambda ok: False):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # the killed holder left its lock file: taken over, and said so
  assert (tmp_path / "w" / LOCK_NAME).exists()
  with WorkdirLock(tmp_path / "w", "third", say=notes.append):
    record = json.loads((tmp_path / "w" / LOCK_NAME).read_text())
    assert record["pid"] == os.getpid() and record["purpose"] == "third"
  assert len(notes) == 1 and f"pid {holder.pid}" in notes[0] and "no longer running" in notes[0]
  assert not (tmp_path / "w" / LOCK_NAME).exists()  # released cleanly: nothing left behind
  # a clean release leaves no stale lock: the next holder says nothing
  with WorkdirLock(tmp_path / "w", "fourth", say=notes.append):
    pass
  assert len(notes) == 1


def test_two_concurrent_trainings_in_one_workdir(concurrent_trainings):
  r = concurrent_trainings
  b = r["b"]
  assert r["a_running_when_b_ended"], "run A ended before run B was refused: the test proves nothing"
  assert b.returncode == 1, b.stderr[-2000:]
  assert b.stderr.startswith("psp-jax train: error: workdir ") and "Traceback" not in b.stderr
  assert f"is in use by `psp-jax train` (pid {r['a_pid']} on host" in b.stderr
  assert r["a_code"] == 0, r["a_err"][-3000:]
  workdir = r["workdir"]
  # every file is run A's: its config (seed 1, 2 steps), its result, its checkpoints only
  config = json.loads((workdir / "config.json").read_text())
  assert config["seed"] == 1 and config["train"]["steps"] == 2
  result = json.loads((workdir / "train_result.json").read_text())
  assert result["step"] == 2
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert steps == [1, 2]
  assert "seed: 1" in (workdir / "config.txt").read_text()
  assert not (workdir / LOCK_NAME).exists()
  # and B, refused before it started, wrote nothing: no second tensorboard stream
  assert len(list((workdir / "tensorboard").iterdir())) == 1
