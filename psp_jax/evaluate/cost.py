"""What a model costs, measured where it runs: parameters, XLA's FLOP count, time and memory.

  parameter_count(params)                    -> int
  forward_gflops(forward, variables, (h, w)) -> GFLOPs of one batch-1 forward at h x w
  median_ms(seconds)                         -> the median of per-image durations, in ms
  peak_memory_mb()                           -> the device's peak bytes in use (GPU/TPU) or,
                                                where a device keeps no statistics (CPU), the
                                                process's peak resident set size
  machine()                                  -> one line naming the device, CPU and its ISA

The FLOP count is XLA's HLO cost analysis of the lowered (not compiled) computation: one
multiply-add is 2 FLOPs and taps that fall on zero padding are not counted, so a 3x3 'SAME'
convolution counts slightly under 2 * 9 * Cin * Cout * H * W. It is a property of the model
and the input size, the same on every machine; the durations and memory are of this machine.
"""
from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from psp_jax import cpu_info


def parameter_count(params: Any) -> int:
  """Number of scalars in a parameter pytree (BatchNorm statistics are not parameters)."""
  return int(sum(int(x.size) for x in jax.tree_util.tree_leaves(params)))


def forward_gflops(forward: Callable, variables: Any, hw: Sequence[int], channels: int = 3) -> float:
  """GFLOPs of `forward(variables, images)` on one (1, h, w, channels) float32 image.

  Traced and lowered on abstract values: no compile, no computation."""
  shapes = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), variables)
  image = jax.ShapeDtypeStruct((1, int(hw[0]), int(hw[1]), int(channels)), jnp.float32)
  analysis = jax.jit(forward).lower(shapes, image).cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older JAX: one dict per computation
    analysis = analysis[0] if analysis else {}
  flops = (analysis or {}).get("flops")
  if flops is None:
    raise RuntimeError("XLA's cost analysis returned no 'flops' entry for the forward pass")
  return float(flops) / 1e9


def median_ms(seconds: Sequence[float], *, skip_first: bool = True) -> float | None:
  """Median of per-item durations in milliseconds; the first (it compiles) is skipped when there
  are others. None for no durations."""
  values = list(seconds[1:] if skip_first and len(seconds) > 1 else seconds)
  return round(1e3 * statistics.median(values), 3) if values else None


def peak_memory_mb() -> tuple[float, str]:
  """(MiB, what was measured): the first local device's peak bytes in use where the runtime keeps
  it (GPU, TPU), else this process's peak resident set size (CPU: weights, activations, data and
  the runtime together)."""
  try:
    stats = jax.local_devices()[0].memory_stats()
  except Exception:  # pylint: disable=broad-except  (backends without statistics raise or return None)
    stats = None
  if stats and stats.get("peak_bytes_in_use"):
    return round(stats["peak_bytes_in_use"] / 2**20, 1), "device peak bytes in use"
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
  rss_bytes = rss if sys.platform == "darwin" else rss * 1024
  return round(rss_bytes / 2**20, 1), "process peak resident set size"


_ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def machine() -> str:
  """'cpu: Intel(R) Xeon(R) Processor (avx2 avx512f amx_tile), 2 cores, jax 0.10.2' style: what
  the timings of a run depend on (the CPU model and the vector extensions XLA can use)."""
  info = cpu_info.read_cpuinfo()
  flags = set(info.flags)
  model = info.model if info.model != cpu_info.UNKNOWN_MODEL else (
      platform.processor() or platform.machine())
  isa = " ".join(f for f in _ISA_FLAGS if f in flags)
  device = jax.local_devices()[0]
  return (f"{device.platform}: {getattr(device, 'device_kind', device.platform)}; CPU {model}"
          + (f" ({isa})" if isa else "") + f", {os.cpu_count()} cores; jax {jax.__version__}")
