"""One training run of the resume tests, in its own process (the test may kill it).

  python resume_worker.py DEVICES WORKDIR DATA_DIR STEPS [--hang-at=N] [--sigterm-at=N]
                          [KEY=VALUE ...]

Runs `psp_jax.train.loop.train_and_evaluate` on the tiny config of loop_fixtures with DEVICES
simulated CPU devices and the config overrides KEY=VALUE (Python literals), then writes the
final params and batch_stats to WORKDIR/final_variables.npz. The evaluator is a stub (these
tests are about checkpoints, not metrics).
  --hang-at=N     before computing step N, print HANGING and sleep (the test SIGKILLs it)
  --sigterm-at=N  right after computing step N, send SIGTERM to this process (a deterministic
                  preemption notice: the loop must save step N and exit with status 143)
Exit status: that of the run (143 after SIGTERM, 1 on an error).
"""
import os
import sys

os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={int(sys.argv[1])}"
os.environ["JAX_PLATFORMS"] = "cpu"

import ast  # noqa: E402
import pathlib  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import traverse_util  # noqa: E402

from loop_fixtures import tiny_config  # noqa: E402
from psp_jax import checkpoint as ckpt_lib  # noqa: E402
from psp_jax.train import loop  # noqa: E402


def step_hooks(hang_at: int, sigterm_at: int):
  """A step_fn for train_and_evaluate: the real step, hanging before or signalling after one."""

  def wrap(step_fn):
    def step(state, images, labels):
      n = int(jax.device_get(state.step)) + 1  # the step this call computes
      if n == hang_at:
        print(f"HANGING before step {n}", flush=True)
        time.sleep(3600)
      out = step_fn(state, images, labels)
      if n == sigterm_at:
        os.kill(os.getpid(), signal.SIGTERM)
      return out
    return step
  return wrap


def main() -> int:
  workdir, data_dir, steps = sys.argv[2], sys.argv[3], int(sys.argv[4])
  cfg = tiny_config(data_dir, steps=steps)
  cfg.eval.log_images = 0
  hang_at = sigterm_at = 0
  for arg in sys.argv[5:]:
    if arg.startswith("--hang-at="):
      hang_at = int(arg.split("=", 1)[1])
      continue
    if arg.startswith("--sigterm-at="):
      sigterm_at = int(arg.split("=", 1)[1])
      continue
    key, value = arg.split("=", 1)
    *parents, leaf = key.split(".")
    node = cfg
    for p in parents:
      node = node[p]
    node[leaf] = ast.literal_eval(value)
  result = loop.train_and_evaluate(
      cfg, workdir, evaluate_fn=lambda *a: {"mIoU": 0.5, "mAcc": 0.5, "aAcc": 0.5},
      step_fn=step_hooks(hang_at, sigterm_at))
  variables, _ = ckpt_lib.load_variables(workdir)
  flat = traverse_util.flatten_dict(jax.device_get(variables), sep="/")
  np.savez(pathlib.Path(workdir) / "final_variables.npz", **flat)
  print(f"RESUME_WORKER_DONE step {result['step']}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
