"""The CPU this process runs on, as /proc/cpuinfo names it: the one reader of that file.

Speed ratios and numerics depend on the CPU kind (its model and vector extensions: AVX2 only,
AVX-512, AMX), so results name it (`psp_jax.reproducibility.cpu_description`,
`psp_jax.evaluate.cost.machine`) and the train steps' compiler setting follows it
(`psp_jax.xla_cpu.avx512_in_use`). Stdlib only (base layer).
"""
from __future__ import annotations

import dataclasses

CPUINFO = "/proc/cpuinfo"
UNKNOWN_MODEL = "unknown CPU"


@dataclasses.dataclass(frozen=True)
class CpuInfo:
  """model: the first 'model name' ('Intel(R) Xeon(R) Processor'); flags: the first 'flags'
  line's words in its order ('fpu', ..., 'avx2', 'avx512f', ...); vendor: the first
  'vendor_id' ('GenuineIntel', 'AuthenticAMD'). UNKNOWN_MODEL, () and '' where the file is
  missing (not Linux)."""
  model: str = UNKNOWN_MODEL
  flags: tuple[str, ...] = ()
  vendor: str = ""

  def vector_flags(self) -> list[str]:
    """The flags speed and numerics depend on (fma, avx*, amx*), in the file's order."""
    return [f for f in self.flags if f.startswith(("avx", "fma", "amx"))]


def parse_cpuinfo(text: str) -> CpuInfo:
  """CpuInfo of /proc/cpuinfo's `text` (its first processor's model name, flags and vendor)."""
  model, flags, vendor = UNKNOWN_MODEL, None, ""
  for line in text.splitlines():
    key, _, value = line.partition(":")
    key = key.strip()
    if key == "model name" and model == UNKNOWN_MODEL and value.strip():
      model = value.strip()
    elif key == "flags" and flags is None:
      flags = tuple(value.split())
    elif key == "vendor_id" and not vendor:
      vendor = value.strip()
    if flags is not None and model != UNKNOWN_MODEL and vendor:
      break
  return CpuInfo(model=model, flags=flags or (), vendor=vendor)


def read_cpuinfo(path: str = CPUINFO) -> CpuInfo:
  """CpuInfo of `path` (default /proc/cpuinfo); CpuInfo() where it cannot be read."""
  try:
    with open(path, encoding="utf-8") as f:
      return parse_cpuinfo(f.read())
  except OSError:
    return CpuInfo()
