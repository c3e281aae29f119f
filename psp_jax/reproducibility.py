"""The portable CPU setting: runs that give the same bits on any x86-64 CPU with AVX2.

XLA compiles for the CPU it runs on, and its thread pool follows the core count, so the same
training run gives slightly different floats on an AVX-512 and on an AVX2 machine, or with one
core instead of two, and a long run drifts apart (issue 20: a committed ablation table changed
its conclusion on the next machine). The portable setting pins what decides the numerics, in
the environment of the processes it launches (it must be set before jax is imported):

  XLA_FLAGS=--xla_cpu_max_isa=AVX2   XLA emits no instruction newer than AVX2 (+FMA)
  PJRT_NPROC=2                       XLA's CPU thread pool has 2 threads whatever the core
                                     count (a 1-thread pool reduces in another order)
  OPENCV_CPU_DISABLE=AVX512-SKX      OpenCV's augmentation kernels take their AVX2 paths
  --xla_cpu_experimental_ynn_fusion_type=reduce,individual_dot,individual_convolution
                                     (in XLA_FLAGS) XLA's own choice of what YNNPACK computes,
                                     not psp_jax's train steps' (psp_jax/xla_cpu.py), so runs
                                     repeat the bits of the tables committed before that change

experiments/cross_isa_identity.py measures which of these change the bits on the machine it
runs on, and what the setting costs in speed (experiments/results/cross_isa_identity.md).
`psp-jax ablate --scale mini` uses it by default (--no-portable-cpu turns it off).
"""
from __future__ import annotations

import os
import shlex
from typing import Mapping

from psp_jax import cpu_info, xla_cpu

MAX_ISA = "AVX2"
THREADS = 2
OPENCV_DISABLE = "AVX512-SKX"

_ISA_FLAG = "--xla_cpu_max_isa"


def portable_overrides(environ: Mapping[str, str] | None = None) -> dict[str, str]:
  """The environment variables to set (on top of `environ`, default os.environ) for a portable run.

  XLA_FLAGS keeps the caller's other flags (e.g. --xla_force_host_platform_device_count); a
  caller's own --xla_cpu_max_isa is replaced, since it would defeat the setting.
  """
  environ = os.environ if environ is None else environ
  flags = [f for f in shlex.split(environ.get("XLA_FLAGS", "")) if not f.startswith(_ISA_FLAG)]
  flags = shlex.split(xla_cpu.with_fusions(shlex.join(flags), xla_cpu.XLA_DEFAULT_FUSIONS))
  return {"XLA_FLAGS": shlex.join([*flags, f"{_ISA_FLAG}={MAX_ISA}"]),
          "PJRT_NPROC": str(THREADS),
          "OPENCV_CPU_DISABLE": OPENCV_DISABLE}


def portable_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
  """A full environment for a subprocess: `environ` (default os.environ) with the setting applied."""
  environ = dict(os.environ if environ is None else environ)
  return {**environ, **portable_overrides(environ)}


def describe(portable: bool) -> str:
  """One line for result files: which CPU setting the runs were made with."""
  if not portable:
    return ("native CPU (XLA and OpenCV use every instruction set of the machine, XLA one thread "
            "per core): results are reproducible on the same CPU kind and core count only")
  return (f"portable CPU: `XLA_FLAGS='{xla_cpu.FLAG}={xla_cpu.XLA_DEFAULT_FUSIONS} "
          f"{_ISA_FLAG}={MAX_ISA}' PJRT_NPROC={THREADS} "
          f"OPENCV_CPU_DISABLE={OPENCV_DISABLE}` (psp_jax/reproducibility.py)")


def env_command(command: tuple[str, ...], env: Mapping[str, str]) -> tuple[str, ...]:
  """`command` as one self-contained line: prefixed by `env K=V ...` when `env` sets anything."""
  return ("env", *[f"{k}={v}" for k, v in env.items()], *command) if env else tuple(command)


def cpu_description() -> tuple[str, str]:
  """(CPU model name, its vector flags 'fma avx avx2 avx512f ...') from /proc/cpuinfo: the CPU
  kind that numerics and speed ratios depend on."""
  info = cpu_info.read_cpuinfo()
  return info.model, " ".join(info.vector_flags())


def current() -> dict[str, str]:
  """The variables of the setting as this process sees them (recorded in result JSON)."""
  return {k: os.environ.get(k, "") for k in ("XLA_FLAGS", "PJRT_NPROC", "OPENCV_CPU_DISABLE")}
