"""Which operations XLA's CPU backend gives to its YNNPACK library in the train steps: the one
compiler setting psp_jax changes (`train_compiler_options`, used by
`psp_jax.train.step.compile_data_parallel`).

jaxlib 0.10 hands every float32 2-D convolution in NHWC/HWIO layout ("individual convolution"),
single dots and large reductions to YNNPACK. Its convolutions, and most of all the weight
gradients a train step asks of them, ran slower than XLA's own (Eigen) convolutions on the
PSPNet-50 shapes we timed (Intel Xeon with AVX-512, 2 cores, 2026-12-07; ad hoc): a 1x1
128->256 weight gradient at 2x59x59 took 25.6 ms against 4.7 ms, the dilated 3x3 512->512 one
148.7 against 38.6 ms. With `CPU_LIBRARY_FUSIONS` (YNNPACK's reductions and dot fusions kept,
convolutions back to Eigen, whose matrix products are oneDNN's) PSPNet-50's train step at
2x233x233 ran 1.10x faster natively but 0.965x capped to AVX2 (XLA and oneDNN both capped:
`bash experiments/speed_xla_fusions.sh native|avx2`), so it is used only where AVX-512 is in
use. Inference keeps XLA's default: capped, the eval forward ran 0.87x with this setting (same
files). Turning YNNPACK off altogether is slower (XLA's own reductions of the BatchNorm
statistics).

The caller's choice wins: when XLA_FLAGS sets FLAG itself (as the portable CPU setting of
`psp_jax.reproducibility` does, with XLA's default, so the committed mini-scale tables rerun to
the same bits), no option is added. Only on the CPU backend with AVX-512, and only for jaxlib releases in
KNOWN_JAXLIB (whose XLA has the flag; checked in the 0.10.0, 0.10.1 and 0.10.2 wheels).

`tap_dot_grads_pay` is the CPU's say in how the train steps trace their layers: the tap-dot
weight gradients of psp_jax.models.ops are left off on the vendors where they lost
(`bash experiments/speed_tap_dot_cpu_rule.sh avx2`).
"""
from __future__ import annotations

import os
import shlex

from psp_jax import cpu_info

FLAG = "--xla_cpu_experimental_ynn_fusion_type"
CPU_LIBRARY_FUSIONS = "dot,reduce"  # "": XLA's default (no option added)
XLA_DEFAULT_FUSIONS = "reduce,individual_dot,individual_convolution"  # jaxlib 0.10.2's default
KNOWN_JAXLIB = ("0.10.",)


def has_flag(xla_flags: str) -> bool:
  """Whether XLA_FLAGS already sets FLAG."""
  return fusions_in_flags(xla_flags) is not None


def with_fusions(xla_flags: str, fusions: str) -> str:
  """XLA_FLAGS with FLAG set to `fusions` (any earlier value of it replaced)."""
  flags = [f for f in shlex.split(xla_flags) if f.split("=", 1)[0] != FLAG]
  return shlex.join([*flags, f"{FLAG}={fusions}"])


def compiler_options(fusions: str) -> dict[str, str]:
  """`fusions` ("dot,reduce", as in XLA_FLAGS) as a jax compiler option
  (`jax.jit(f, compiler_options=...)` or `.lower(...).compile(...)`)."""
  enums = ",".join(f"LIBRARY_FUSION_TYPE_{name.strip().upper()}" for name in fusions.split(",")
                   if name.strip())
  return {FLAG.lstrip("-"): enums}


def _jaxlib_version() -> str:
  try:
    from importlib import metadata  # pylint: disable=import-outside-toplevel
    return metadata.version("jaxlib")
  except Exception:  # pylint: disable=broad-except
    return ""


def avx512_in_use(environ=None, cpu_flags: set[str] | None = None) -> bool:
  """Whether XLA's code and its oneDNN kernels may use AVX-512 here: the CPU has avx512f and
  neither --xla_cpu_max_isa nor ONEDNN_MAX_CPU_ISA caps them below it."""
  environ = os.environ if environ is None else environ
  flags = set(cpu_info.read_cpuinfo().flags) if cpu_flags is None else cpu_flags
  if "avx512f" not in flags:
    return False
  for f in shlex.split(environ.get("XLA_FLAGS", "")):
    if f.split("=", 1)[0] == "--xla_cpu_max_isa" and not f.split("=", 1)[-1].upper().startswith(
        ("AVX512", "AMX")):
      return False
  onednn = environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
  return not onednn or onednn == "ALL" or onednn.startswith(("AVX512", "AMX"))


def train_compiler_options(platform: str, environ=None, cpu_flags: set[str] | None = None
                           ) -> dict[str, str]:
  """The compiler options of a train step on devices of `platform` ('cpu', 'gpu', ...):
  compiler_options(CPU_LIBRARY_FUSIONS) on a CPU with AVX-512 in use (`avx512_in_use`); {}
  elsewhere, when XLA_FLAGS (of `environ`, default os.environ) sets FLAG already, or for a
  jaxlib outside KNOWN_JAXLIB."""
  environ = os.environ if environ is None else environ
  if platform != "cpu" or not CPU_LIBRARY_FUSIONS or has_flag(environ.get("XLA_FLAGS", "")):
    return {}
  if not avx512_in_use(environ, cpu_flags) or not _jaxlib_version().startswith(KNOWN_JAXLIB):
    return {}
  return compiler_options(CPU_LIBRARY_FUSIONS)


def fusions_in_flags(xla_flags: str) -> str | None:
  """The value XLA_FLAGS gives FLAG ('dot,reduce'), None where it does not set it."""
  value = None
  for f in shlex.split(xla_flags):
    name, _, v = f.partition("=")
    if name == FLAG:
      value = v
  return value


def train_convolutions_are_xla_own(platform: str, environ=None,
                                   cpu_flags: set[str] | None = None) -> bool:
  """Whether a train step on `platform` runs XLA's own CPU convolutions rather than YNNPACK's:
  with `train_compiler_options`, or where XLA_FLAGS sets FLAG to a list with no convolution
  fusion type. The layers' tap-dot weight gradients follow it (`psp_jax.models.ops`)."""
  environ = os.environ if environ is None else environ
  if platform != "cpu":
    return False
  given = fusions_in_flags(environ.get("XLA_FLAGS", ""))
  if given is not None:
    return not any("convolution" in name for name in given.lower().split(","))
  return bool(train_compiler_options(platform, environ, cpu_flags))


TAP_DOT_GRAD_LOSING_VENDORS = ("AuthenticAMD",)


def tap_dot_grads_pay(platform: str, cpu: cpu_info.CpuInfo | None = None) -> bool:
  """Whether the layers' tap-dot weight gradients (psp_jax.models.ops) pay in a train step on
  `platform`: not on a CPU whose vendor is in TAP_DOT_GRAD_LOSING_VENDORS (an AMD EPYC, Zen 4,
  capped to AVX2: PSPNet-50's step 1.07-1.13x faster without them, 2026-12-08; on an Intel
  Xeon without AMX they made the capped step 1.44x faster), True elsewhere. `cpu`: default
  this machine's."""
  if platform != "cpu":
    return True
  cpu = cpu_info.read_cpuinfo() if cpu is None else cpu
  return cpu.vendor not in TAP_DOT_GRAD_LOSING_VENDORS
