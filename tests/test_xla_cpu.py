"""psp_jax/xla_cpu.py: train steps compile with XLA's own CPU convolutions instead of
YNNPACK's, unless the caller chose (the portable setting keeps XLA's default); inference keeps
XLA's default."""
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from jax import lax
from jax.sharding import PartitionSpec as P

from psp_jax import cpu_info, reproducibility, xla_cpu
from psp_jax.parallel import DATA_AXIS, make_mesh
from psp_jax.train.step import compile_data_parallel


def _local_step(state, x):
  """A conv layer's SGD step: (state, metrics), as the train steps are."""
  def loss(w):
    y = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.mean(y ** 2)
  value, grad = jax.value_and_grad(loss)(state["w"])
  grad = lax.pmean(grad, DATA_AXIS)
  return {"w": state["w"] - 0.1 * grad}, lax.pmean(value, DATA_AXIS)


def _program(compiled) -> str:
  return re.sub(r"\.\d+", "", compiled.as_text())


def test_train_compiler_options_only_on_the_cpu_and_never_over_the_callers_flag(monkeypatch):
  ours = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
  avx512, avx2 = {"avx2", "avx512f"}, {"avx2", "fma"}
  options = lambda env, flags=avx512: xla_cpu.train_compiler_options("cpu", env, flags)  # noqa: E731
  assert options({}) == ours
  assert options({"XLA_FLAGS": "--xla_cpu_max_isa=AMX", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}) == ours
  assert options({}, avx2) == {}  # an AVX2 CPU: XLA's default (the setting lost there)
  assert options({"XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}) == {}  # capped like one
  assert options({"ONEDNN_MAX_CPU_ISA": "AVX2"}) == {}
  assert xla_cpu.train_compiler_options("gpu", {}, avx512) == {}
  assert options({"XLA_FLAGS": f"{xla_cpu.FLAG}="}) == {}
  assert options(reproducibility.portable_overrides({})) == {}
  monkeypatch.setattr(xla_cpu, "_jaxlib_version", lambda: "0.11.0")  # not checked: left alone
  assert options({}) == {}
  assert xla_cpu.with_fusions("--a=1 --xla_cpu_experimental_ynn_fusion_type=x --b", "y") == (
      "--a=1 --b --xla_cpu_experimental_ynn_fusion_type=y")


def test_which_convolutions_a_train_step_runs():
  """XLA's own where the setting applies or XLA_FLAGS names no convolution fusion; YNNPACK's
  under jaxlib's default (an AVX2 CPU, the portable setting's pin)."""
  own = xla_cpu.train_convolutions_are_xla_own
  avx512, avx2 = {"avx2", "avx512f"}, {"avx2"}
  assert own("cpu", {}, avx512) and not own("cpu", {}, avx2) and not own("gpu", {}, avx512)
  assert own("cpu", {"XLA_FLAGS": f"--xla_cpu_max_isa=AVX2 {xla_cpu.FLAG}=dot,reduce"}, avx2)
  assert own("cpu", {"XLA_FLAGS": f"{xla_cpu.FLAG}="}, avx2)
  assert not own("cpu", {"XLA_FLAGS": f"{xla_cpu.FLAG}=reduce,individual_convolution"}, avx512)
  assert not own("cpu", reproducibility.portable_overrides({}), avx512)
  assert xla_cpu.fusions_in_flags("--a --xla_cpu_experimental_ynn_fusion_type=dot") == "dot"
  assert xla_cpu.fusions_in_flags("--a") is None


def test_the_train_step_compiles_with_the_setting_and_inference_without(monkeypatch):
  assert not xla_cpu.has_flag(os.environ.get("XLA_FLAGS", ""))  # conftest sets only devices
  monkeypatch.setattr(xla_cpu, "avx512_in_use", lambda *a: True)  # as on an AVX-512 CPU
  mesh = make_mesh(2)
  step = compile_data_parallel(_local_step, mesh, num_batch_args=1, donate=False)
  state, x = {"w": jnp.ones((3, 3, 32, 32)) * 0.01}, jnp.ones((2, 16, 16, 32))
  lowered = step.lower(state, x)
  got = _program(lowered.compile())
  assert got == _program(lowered.compile(xla_cpu.compiler_options(xla_cpu.CPU_LIBRARY_FUSIONS)))
  assert got != _program(lowered.compile(xla_cpu.compiler_options(xla_cpu.XLA_DEFAULT_FUSIONS)))
  # a plain jit (inference) keeps XLA's default: the convolution inside a YNNPACK fusion
  conv = jax.jit(lambda a, w: lax.conv_general_dilated(a, w, (1, 1), "SAME",
                                                         dimension_numbers=("NHWC", "HWIO", "NHWC")))
  assert "ynn_fusion" in conv.lower(x, state["w"]).compile().as_text()
  assert "ynn_fusion" not in conv.lower(x, state["w"]).compile(
      xla_cpu.compiler_options(xla_cpu.CPU_LIBRARY_FUSIONS)).as_text()
  new_state, value = step(state, x)
  assert float(value) > 0 and new_state["w"].shape == state["w"].shape


def _tap_conv_step(state, x):
  """A train step of a 3x3 256->256 convolution through the layers' ops (tap-dot size)."""
  from psp_jax.models import ops  # pylint: disable=import-outside-toplevel
  def loss(w):
    y = ops.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.mean(y ** 2)
  value, grad = jax.value_and_grad(loss)(state["w"])
  return {"w": state["w"] - 0.1 * lax.pmean(grad, DATA_AXIS)}, lax.pmean(value, DATA_AXIS)


@pytest.mark.parametrize("avx512, vendor, taps", [(True, "GenuineIntel", False),
                                                  (False, "GenuineIntel", True),
                                                  (False, "AuthenticAMD", False),
                                                  (True, "AuthenticAMD", False)])
def test_the_train_step_traces_its_layers_for_the_convolutions_it_compiles_with(
    avx512, vendor, taps, monkeypatch):
  """With XLA's own convolutions (AVX-512), or on an AMD CPU, the step keeps the plain
  convolution's weight gradient (a second convolution beside the forward); with jaxlib's
  default on another CPU the tap dots replace it (nine dots)."""
  monkeypatch.setattr(xla_cpu, "avx512_in_use", lambda *a: avx512)
  monkeypatch.setattr(xla_cpu.cpu_info, "read_cpuinfo", lambda *a: cpu_info.CpuInfo(vendor=vendor))
  step = compile_data_parallel(_tap_conv_step, make_mesh(1), num_batch_args=1, donate=False)
  state, x = {"w": jnp.full((3, 3, 256, 256), 0.01)}, jnp.ones((1, 6, 6, 256))
  hlo = step.lower(state, x).as_text()
  convs, dots = hlo.count("stablehlo.convolution"), hlo.count("stablehlo.dot_general")
  assert (convs, dots) == ((1, 9) if taps else (2, 0)), (convs, dots)


def test_tap_dot_grads_pay_except_on_the_vendors_where_they_lost():
  pay = xla_cpu.tap_dot_grads_pay
  assert pay("cpu", cpu_info.CpuInfo(vendor="GenuineIntel")) and pay("cpu", cpu_info.CpuInfo())
  assert not pay("cpu", cpu_info.CpuInfo(vendor="AuthenticAMD"))
  assert pay("gpu", cpu_info.CpuInfo(vendor="AuthenticAMD"))  # not a CPU program


@pytest.mark.parametrize("fusions", [xla_cpu.CPU_LIBRARY_FUSIONS, xla_cpu.XLA_DEFAULT_FUSIONS])
def test_the_flag_value_means_those_fusion_types(fusions):
  """XLA_FLAGS' lowercase names (the portable setting's) compile the same program as the same
  list given as a compiler option (which rejects unknown names): no name is silently dropped."""
  options = xla_cpu.compiler_options(fusions)  # as the train steps and benchmark_core.py use it
  assert options == {"xla_cpu_experimental_ynn_fusion_type": ",".join(
      "LIBRARY_FUSION_TYPE_" + name.upper() for name in fusions.split(","))}
  code = ("import re, jax, jax.numpy as jnp; from jax import lax; "
          "f = jax.jit(jax.grad(lambda w, x: jnp.sum(lax.conv_general_dilated(x, w, (1, 1), 'SAME', "
          "dimension_numbers=('NHWC', 'HWIO', 'NHWC')) ** 2))); "
          "low = f.lower(jnp.ones((3, 3, 32, 32)), jnp.ones((2, 16, 16, 32))); "
          "strip = lambda t: re.sub(r'[.]\\d+', '', t); "
          "print(strip(low.compile().as_text()) == strip(low.compile("
          f"{options!r}).as_text()))")
  base = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  out = subprocess.run([sys.executable, "-c", code],
                       env={**base, "XLA_FLAGS": f"{xla_cpu.FLAG}={fusions}"},
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.strip().splitlines()[-1] == "True"
