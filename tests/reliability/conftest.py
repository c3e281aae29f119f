"""Fixtures of the reliability tests: real `psp-jax` commands on a tiny config, as a user runs them.

`cli(...)` runs `python -m psp_jax ...` with one CPU device and a shared compilation cache;
`concurrent_trainings` starts two trainings in one workdir (run A holds it, run B must be
refused) once per session, and `trained_workdir` is a fresh copy of run A's workdir for tests
that damage or evaluate it.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from cli_fixtures import CONFIG, STEPS_A, ROOT, tiny  # noqa: E402,F401


@pytest.fixture(scope="session")
def session_root(tmp_path_factory) -> pathlib.Path:
  return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="session")
def env(session_root) -> dict:
  e = dict(os.environ)
  e.pop("XLA_FLAGS", None)  # one CPU device: faster subprocesses
  e.pop("PSP_JAX_VERBOSE", None)
  e.update(JAX_PLATFORMS="cpu", PSP_JAX_COMPILATION_CACHE=str(session_root / "xla_cache"),
           PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
  return e


@pytest.fixture(scope="session")
def cli(env):
  def run(*args, timeout=300, extra_env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "psp_jax", *map(str, args)], cwd=ROOT,
                          env=dict(env, **(extra_env or {})), capture_output=True, text=True,
                          timeout=timeout, **kwargs)
  return run


@pytest.fixture(scope="session")
def data_dir(session_root) -> pathlib.Path:
  return session_root / "tfds"


@pytest.fixture(scope="session")
def concurrent_trainings(session_root, env, data_dir) -> dict:
  """Run A (seed 1, 2 steps) and, while A holds the workdir, run B (seed 2, 3 steps)."""
  workdir = session_root / "shared_workdir"
  cmd = [sys.executable, "-m", "psp_jax", "train", "--config", CONFIG, "--workdir", str(workdir),
         *tiny(data_dir)]
  a = subprocess.Popen([*cmd, "--config.seed=1", f"--config.train.steps={STEPS_A}"], cwd=ROOT,
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  lock = workdir / ".psp_jax.lock"
  deadline = time.time() + 120
  while not lock.exists() and a.poll() is None and time.time() < deadline:
    time.sleep(0.1)
  assert lock.exists(), "run A never took the workdir lock"
  b = subprocess.run([*cmd, "--config.seed=2", "--config.train.steps=3"], cwd=ROOT, env=env,
                     capture_output=True, text=True, timeout=120)
  a_running_when_b_ended = a.poll() is None
  a_out, a_err = a.communicate(timeout=600)
  return {"workdir": workdir, "a_pid": a.pid, "a_code": a.returncode, "a_out": a_out,
          "a_err": a_err, "b": b, "a_running_when_b_ended": a_running_when_b_ended}


@pytest.fixture
def trained_workdir(concurrent_trainings, tmp_path) -> pathlib.Path:
  """A copy of run A's finished workdir (checkpoints 1 and 2, best, eval reports)."""
  assert concurrent_trainings["a_code"] == 0, concurrent_trainings["a_err"][-3000:]
  copy = tmp_path / "run"
  shutil.copytree(concurrent_trainings["workdir"], copy)
  return copy
