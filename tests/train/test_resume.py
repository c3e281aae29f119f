"""Resuming real training processes: SIGKILL, SIGTERM (preemption) and the NaN guard.

Every run is a separate `python resume_worker.py` process with 2 simulated CPU devices on the
tiny synthetic config (6 steps, a checkpoint every 2). The processes share a persistent
compilation cache, so only the first one pays for compiling.
"""
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from loop_fixtures import tiny_config

WORKER = pathlib.Path(__file__).resolve().parent / "resume_worker.py"
DEVICES = 2
STEPS = 6


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  root = tmp_path_factory.mktemp("resume")
  e = dict(os.environ)
  e.pop("XLA_FLAGS", None)
  e.update(JAX_COMPILATION_CACHE_DIR=str(root / "jax_cache"),
           JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
           JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
           PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
  data_dir = root / "tfds"
  from psp_jax import data as data_lib  # prepare once, in this process
  data_lib.prepare(tiny_config(str(data_dir)).data, verbose=False)
  return {"env": e, "root": root, "data_dir": str(data_dir)}


def _cmd(env, workdir, *extra):
  return [sys.executable, str(WORKER), str(DEVICES), str(workdir), env["data_dir"], str(STEPS),
          *extra]


def _run(env, workdir, *extra, timeout=240):
  proc = subprocess.run(_cmd(env, workdir, *extra), env=env["env"], capture_output=True, text=True,
                        timeout=timeout)
  return proc.returncode, proc.stdout + proc.stderr


def _steps(workdir) -> list[int]:
  d = pathlib.Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def _final(workdir) -> dict:
  with np.load(pathlib.Path(workdir) / "final_variables.npz") as f:
    return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def reference(env):
  """The uninterrupted run."""
  workdir = env["root"] / "uninterrupted"
  code, out = _run(env, workdir)
  assert code == 0, out[-3000:]
  assert _steps(workdir) == [2, 4, 6]
  return _final(workdir)


def test_sigkill_then_sigterm_then_resume_is_bit_identical(env, reference):
  workdir = env["root"] / "interrupted"
  # 1. SIGKILL while computing step 4, once checkpoint 2 is complete (step 3 is lost).
  proc = subprocess.Popen(_cmd(env, workdir, "--hang-at=4"), env=env["env"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 240
  lines = []
  try:
    for line in proc.stdout:
      lines.append(line)
      if "HANGING" in line:
        break
    while not (workdir / "checkpoints" / "2" / "_CHECKPOINT_METADATA").exists():
      assert proc.poll() is None and time.time() < deadline, (
          "checkpoint 2 never appeared:\n" + "".join(lines)[-3000:])
      time.sleep(0.05)
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL, "".join(lines)[-3000:]
  assert _steps(workdir) == [2]

  # 2. Restart; a preemption notice (SIGTERM) arrives during step 5: it saves step 5, exits 143.
  code, out = _run(env, workdir, "--sigterm-at=5")
  assert code == 143, out[-3000:]
  assert "resumed from" in out and "checkpoints/2" in out
  assert "preempted (SIGTERM): saved a checkpoint at step 5" in out
  assert _steps(workdir) == [2, 4, 5]

  # 3. Restart to the end: parameters and BN statistics bit-identical to the uninterrupted run.
  code, out = _run(env, workdir)
  assert code == 0, out[-3000:]
  assert "checkpoints/5" in out
  final = _final(workdir)
  assert sorted(final) == sorted(reference)
  different = [k for k in reference if not np.array_equal(final[k], reference[k])]
  assert not different, f"{len(different)} arrays differ after resuming, e.g. {different[:5]}"
  log = (workdir / "train.log").read_text()
  assert log.count("resumed from") == 2


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(env, reference):
  del reference  # only to reuse the compilation cache it filled
  workdir = env["root"] / "nan"
  code, out = _run(env, workdir, "train.debug_nan_at_step=3")
  assert code != 0
  assert "NonFiniteLossError" in out and "at step 3" in out, out[-3000:]
  assert _steps(workdir) == [2]  # step 4 (a checkpoint step) was not saved
  assert not (workdir / "checkpoints_best").exists() or not any(
      p.name.isdigit() for p in (workdir / "checkpoints_best").iterdir())
