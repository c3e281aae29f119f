"""Which CPU settings change the bits of a training run, and what the portable setting costs.

  python experiments/cross_isa_identity.py --workdir runs/cross_isa \
      --output experiments/results/cross_isa_identity.md

Trains the same mini ablation run (configs/pspnet.py:synthetic_mini, seed 0: one row of the
PSPNet tables at mini scale) under several CPU settings, one `psp-jax train` subprocess each and
one after the other, then compares every run's final parameters and BN statistics bit for bit
with the portable run (psp_jax/reproducibility.py, the default of `psp-jax ablate --scale
mini`), and its final evaluation. Settings:

  portable, portable again     the setting, twice: deterministic on this machine
  portable, one core           the setting with the process pinned to one core: the result may
                               not depend on the core count
  native                       no cap: this machine's own instruction sets and core count
  native, one thread           PJRT_NPROC=1: why the setting fixes the thread count
  capped to AVX                --xla_cpu_max_isa=AVX and OpenCV without AVX2/FMA: an older CPU
                               kind, to show that the comparison does see an ISA difference

One machine cannot run a second CPU kind: "portable" vs "native" on an AVX-512 machine is the
comparison that stands for "an AVX2 machine vs an AVX-512 one" (the AVX2 machine's native run
is the portable one, as nothing newer than AVX2 is there to cap).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from psp_jax import reproducibility  # noqa: E402


def settings() -> list[dict]:
  portable = reproducibility.portable_overrides({})
  avx = {"XLA_FLAGS": "--xla_cpu_max_isa=AVX", "PJRT_NPROC": "2",
         "OPENCV_CPU_DISABLE": "AVX512-SKX,AVX2,FMA3"}
  return [
      dict(name="portable", env=portable),
      dict(name="portable, again", env=portable),
      dict(name="portable, one core", env=portable, cpus=1),
      dict(name="native", env={}),
      dict(name="native, one thread", env={"PJRT_NPROC": "1"}),
      dict(name="capped to AVX", env=avx),
  ]


def train(setting: dict, workdir: pathlib.Path, config: str, steps: int, seed: int) -> dict:
  env = {k: v for k, v in os.environ.items()
         if k not in ("XLA_FLAGS", "PJRT_NPROC", "NPROC", "OPENCV_CPU_DISABLE")}
  env.update(setting["env"])
  command = [sys.executable, "-m", "psp_jax", "train", "--config", config, "--workdir", str(workdir),
             f"--config.seed={seed}", f"--config.train.steps={steps}"]
  cpus = setting.get("cpus")
  if cpus:  # pin the child (not a fork of this process, which has jax's threads) to `cpus` cores
    keep = sorted(os.sched_getaffinity(0))[:cpus]
    command = [sys.executable, "-c", f"import os, sys; os.sched_setaffinity(0, {keep}); "
               "os.execv(sys.executable, [sys.executable] + sys.argv[1:])", *command[1:]]
  start = time.perf_counter()
  log = workdir.with_suffix(".log")
  with open(log, "w") as f:
    rc = subprocess.run(command, env=env, stdout=f, stderr=subprocess.STDOUT,
                        cwd=REPO, check=False).returncode
  seconds = time.perf_counter() - start
  if rc != 0:
    raise SystemExit(f"{setting['name']}: `{shlex.join(command)}` failed ({rc}); see {log}")
  return {"seconds": seconds, "result": json.loads((workdir / "train_result.json").read_text())}


def leaves(workdir: pathlib.Path) -> dict[str, np.ndarray]:
  from flax import traverse_util  # pylint: disable=import-outside-toplevel
  from psp_jax import checkpoint  # pylint: disable=import-outside-toplevel
  variables, _ = checkpoint.load_variables(workdir / "checkpoints")
  flat = traverse_util.flatten_dict(variables, sep="/")
  return {k: np.asarray(v) for k, v in sorted(flat.items())}


def digest(arrays: dict[str, np.ndarray]) -> str:
  h = hashlib.sha256()
  for k, v in arrays.items():
    h.update(k.encode())
    h.update(np.ascontiguousarray(v).tobytes())
  return h.hexdigest()[:16]


def speed(row: dict) -> float:
  """Training images/s after compilation, as `psp-jax train` measured it (train_result.json)."""
  value = row["result"]["train_cost"]["images_per_s"]
  return float("nan") if value is None else float(value)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--workdir", default="runs/cross_isa")
  p.add_argument("--config", default="configs/pspnet.py:synthetic_mini")
  p.add_argument("--steps", type=int, default=150, help="training steps (the config's: 150)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--output", default=None, help="Markdown report (default: print only)")
  args = p.parse_args(argv)
  root = pathlib.Path(args.workdir).resolve()
  if root.exists() and any(root.iterdir()):
    raise SystemExit(f"--workdir {root} is not empty: give a new one (every run starts fresh)")
  root.mkdir(parents=True, exist_ok=True)
  rows = []
  for i, setting in enumerate(settings()):
    workdir = root / f"run{i}"
    print(f"[{i + 1}/{len(settings())}] {setting['name']}: training ...", flush=True)
    out = train(setting, workdir, args.config, args.steps, args.seed)
    arrays = leaves(workdir)
    rows.append(dict(setting, **out, arrays=arrays, digest=digest(arrays)))
    print(f"    {out['seconds']:.0f} s, parameters {rows[-1]['digest']}", flush=True)
  ref = rows[0]
  model, flags = reproducibility.cpu_description()
  command = "python experiments/cross_isa_identity.py " + shlex.join(argv if argv is not None else sys.argv[1:])
  lines = [
      "# Bit identity of a mini training run across CPU settings",
      "",
      f"Made by: `{command}`",
      "",
      f"Machine: {model}, {os.cpu_count()} cores; lscpu flags: {flags}.",
      f"Run: `psp-jax train --config {args.config} --config.seed={args.seed} "
      f"--config.train.steps={args.steps}` under each setting, one after the other on the idle machine.",
      "Speed: the training throughput each run measured after compilation (`train_cost` in its "
      "train_result.json); the runs share the machine with nothing else.",
      "Compared with the first row: every parameter and BN statistic of the final checkpoint, bit "
      "for bit (`identical`), the largest absolute difference, and the final evaluation.",
      "",
      "| setting | environment | identical | leaves differing | max abs diff | mIoU | train images/s | speed vs portable |",
      "|---|---|---|---:|---:|---:|---:|---:|",
  ]
  for r in rows:
    differing = [k for k in ref["arrays"] if not np.array_equal(ref["arrays"][k], r["arrays"][k])]
    diff = max((float(np.max(np.abs(ref["arrays"][k].astype(np.float64) - r["arrays"][k])))
                for k in differing), default=0.0)
    env = " ".join(f"{k}={v}" for k, v in r["env"].items()) or "(none)"
    if r.get("cpus"):
      env += f"; affinity {r['cpus']} core"
    miou = 100 * r["result"].get("mIoU", float("nan"))
    lines.append(f"| {r['name']} | `{env}` | {'yes' if not differing else 'no'} | "
                 f"{len(differing)} of {len(ref['arrays'])} | {diff:.3g} | {miou:.4f} | "
                 f"{speed(r):.1f} | {speed(r) / speed(ref):.2f} |")
  text = "\n".join(lines) + "\n"
  print(text)
  if args.output:
    pathlib.Path(args.output).write_text(text)
    print(f"wrote {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
