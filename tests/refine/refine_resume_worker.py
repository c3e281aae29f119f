"""Refinement training runs of test_refine_resume.py, all in one process.

  python refine_resume_worker.py DATA_DIR RUN [RUN ...]      RUN = WORKDIR[:crash=N|:sigterm=N]

Each RUN is one `psp_jax.train.loop.train_and_evaluate` call of `tiny_config(DATA_DIR)` on
WORKDIR with 2 simulated CPU devices. The evaluator is a stub (these runs are about
checkpoints, not metrics); it runs at the evaluation steps (every EVAL_EVERY) and interrupts:
  crash=N    the evaluation at step N raises (a crash between checkpoints: what survives is
             what a SIGKILL leaves, the checkpoints up to the last `checkpoint_every` step)
  sigterm=N  the evaluation at step N sends SIGTERM to this process (a preemption notice: the
             loop must save step N and raise Preempted)
One line per run: `RUN {"workdir": ..., "outcome": "done" | "crashed" | "preempted", "steps":
[saved checkpoint steps]}`; a finished run writes WORKDIR/final_variables.npz (params and
batch_stats of its latest checkpoint). Set JAX_COMPILATION_CACHE_DIR so that only the first
run compiles (the later runs trace the same programs).
"""
import os
import sys

if __name__ == "__main__":  # before jax is imported; importing tiny_config changes nothing
  # Unoptimised CPU code compiles in half the time; every run of the process uses the same flags.
  os.environ["XLA_FLAGS"] = ("--xla_force_host_platform_device_count=2 "
                             "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true")
  os.environ["JAX_PLATFORMS"] = "cpu"

import json  # noqa: E402
import pathlib  # noqa: E402
import signal  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from flax import traverse_util  # noqa: E402

from configs import cascadepsp  # noqa: E402
from psp_jax import checkpoint as ckpt_lib  # noqa: E402
from psp_jax.train import loop  # noqa: E402
from psp_jax.train.preemption import Preempted  # noqa: E402

STEPS = 6
EVAL_EVERY = 3
STUB_METRICS = {"IoU": 0.5, "mBA": 0.5, "IoU_input": 0.4, "mBA_input": 0.4, "IoU_gain": 0.1,
                "mBA_gain": 0.1}


def tiny_config(data_dir: str):
  """configs/cascadepsp.py:demo shrunk: width 8, one pass (a third of the program to trace and
  compile; the checkpointed state is the same kind), 32 px crops of 64 px synthetic scenes."""
  cfg = cascadepsp.demo()
  cfg.model.width = 8
  cfg.model.passes = 1
  cfg.data.data_dir = data_dir
  cfg.data.synthetic = dict(num_train=8, num_val=3, size=(64, 64), seed=0, options={})
  cfg.data.crop_size = (32, 32)
  cfg.train.steps = STEPS
  cfg.train.batch_size = 4
  cfg.train.num_devices = 2
  cfg.train.checkpoint_every = 2
  cfg.train.keep_checkpoints = 10
  cfg.train.log_every = 2
  cfg.eval.every = EVAL_EVERY
  return cfg


def _stub_evaluator(crash_at: int, sigterm_at: int):
  def evaluate(model, variables, config, mesh, workdir, step):
    del model, variables, config, mesh, workdir
    if step == crash_at:
      raise RuntimeError(f"crash requested at step {step}")
    if step == sigterm_at:
      os.kill(os.getpid(), signal.SIGTERM)
    return dict(STUB_METRICS)
  return evaluate


def _steps(workdir: pathlib.Path) -> list[int]:
  d = workdir / "checkpoints"
  return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def _line(workdir: pathlib.Path, outcome: str) -> str:
  return "RUN " + json.dumps({"workdir": str(workdir), "outcome": outcome, "steps": _steps(workdir)})


def run(data_dir: str, spec: str) -> str:
  workdir, _, interrupt = spec.partition(":")
  kind, _, at = interrupt.partition("=")
  at = int(at or 0)
  evaluate = _stub_evaluator(at if kind == "crash" else 0, at if kind == "sigterm" else 0)
  workdir = pathlib.Path(workdir)
  try:
    loop.train_and_evaluate(tiny_config(data_dir), workdir, evaluate_fn=evaluate)
  except Preempted:
    return _line(workdir, "preempted")
  except RuntimeError as e:
    if "crash requested" not in str(e):
      raise
    return _line(workdir, "crashed")
  variables, _ = ckpt_lib.load_variables(workdir)
  flat = traverse_util.flatten_dict(jax.device_get(variables), sep="/")
  np.savez(workdir / "final_variables.npz", **flat)
  return _line(workdir, "done")


def main() -> int:
  data_dir = sys.argv[1]
  for spec in sys.argv[2:]:
    print(run(data_dir, spec), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
