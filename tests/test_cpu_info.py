"""psp_jax.cpu_info: the one /proc/cpuinfo reader behind the CPU names in results and the
train steps' AVX-512 check."""
from __future__ import annotations

from psp_jax import cpu_info, reproducibility, xla_cpu

# Two processors as Linux lists them (abridged); the reader takes the first one's lines.
CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 fma avx avx2 avx512f avx512_bf16 amx_tile
bugs\t\t: spectre_v1

processor\t: 1
model name\t: Another CPU
flags\t\t: fpu sse2
"""


def test_parse_takes_the_first_processors_model_and_flags_in_order():
  info = cpu_info.parse_cpuinfo(CPUINFO)
  assert info.model == "Intel(R) Xeon(R) Processor"
  assert info.flags == ("fpu", "sse2", "fma", "avx", "avx2", "avx512f", "avx512_bf16", "amx_tile")
  assert info.vector_flags() == ["fma", "avx", "avx2", "avx512f", "avx512_bf16", "amx_tile"]
  assert info.vendor == "GenuineIntel"


def test_a_file_without_model_or_flags_reads_as_unknown(tmp_path):
  assert cpu_info.parse_cpuinfo("processor\t: 0\n") == cpu_info.CpuInfo()
  assert cpu_info.read_cpuinfo(str(tmp_path / "missing")) == cpu_info.CpuInfo()
  assert cpu_info.CpuInfo().model == cpu_info.UNKNOWN_MODEL and cpu_info.CpuInfo().vendor == ""


def test_reproducibility_and_xla_cpu_read_through_it(monkeypatch, tmp_path):
  path = tmp_path / "cpuinfo"
  path.write_text(CPUINFO)
  real = cpu_info.read_cpuinfo
  monkeypatch.setattr(cpu_info, "read_cpuinfo", lambda p=str(path): real(p))
  assert reproducibility.cpu_description() == (
      "Intel(R) Xeon(R) Processor", "fma avx avx2 avx512f avx512_bf16 amx_tile")
  assert xla_cpu.avx512_in_use(environ={})
  path.write_text(CPUINFO.replace(" avx512f avx512_bf16 amx_tile", ""))
  assert not xla_cpu.avx512_in_use(environ={})
