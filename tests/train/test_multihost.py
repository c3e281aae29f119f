"""The train step spans hosts unchanged: 2 processes x 2 CPU devices == 1 process x 4 devices."""
import json
import pathlib
import socket
import subprocess
import sys

import pytest

WORKER = pathlib.Path(__file__).with_name("multihost_worker.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _result(proc: subprocess.Popen) -> dict:
  out, err = proc.communicate(timeout=600)
  assert proc.returncode == 0, f"worker failed:\n{err[-3000:]}"
  return json.loads(out.strip().splitlines()[-1])


def test_two_processes_match_one_process_with_the_same_devices():
  reference = _result(subprocess.Popen([sys.executable, str(WORKER), "4"], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True))
  coordinator = f"127.0.0.1:{_free_port()}"
  procs = [subprocess.Popen([sys.executable, str(WORKER), "2", coordinator, "2", str(i)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  results = [_result(p) for p in procs]
  assert reference["devices"] == 4 and all(r["devices"] == 4 for r in results)
  for r in results:
    assert r["losses"] == pytest.approx(reference["losses"], rel=1e-5)
  assert reference["losses"][-1] != reference["losses"][0]
