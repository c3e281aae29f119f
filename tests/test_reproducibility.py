"""The portable CPU setting (psp_jax/reproducibility.py): what it sets, and that it makes XLA's
numerics independent of the core count (the one CPU difference a single machine can produce;
experiments/cross_isa_identity.py measures whole training runs)."""
import os
import subprocess
import sys

import pytest

from psp_jax import reproducibility

# A large full reduction: XLA splits it over its thread pool, so the pool size sets the
# summation order (and the last bits of the result).
REDUCTION = ("import jax, jax.numpy as jnp, numpy as np; "
             "x = jax.random.normal(jax.random.PRNGKey(0), (2, 60, 60, 512)); "
             "print(np.asarray(jnp.sum(x)).tobytes().hex(), np.asarray(jnp.sum(jnp.exp(x), 0)).sum())")


def _run(env: dict, cores: int | None = None) -> str:
  code = REDUCTION
  if cores:
    keep = sorted(os.sched_getaffinity(0))[:cores]
    code = f"import os; os.sched_setaffinity(0, {keep}); " + code
  base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PJRT_NPROC", "NPROC")}
  out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  return out.stdout.strip()


def test_the_setting_caps_the_isa_fixes_the_threads_and_keeps_other_flags():
  pin = "--xla_cpu_experimental_ynn_fusion_type=reduce,individual_dot,individual_convolution"
  env = reproducibility.portable_overrides(
      {"XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_cpu_max_isa=AVX512 "
                    "--xla_cpu_experimental_ynn_fusion_type=dot,reduce"})
  assert env == {"XLA_FLAGS": f"--xla_force_host_platform_device_count=8 {pin} "
                              "--xla_cpu_max_isa=AVX2",
                 "PJRT_NPROC": "2", "OPENCV_CPU_DISABLE": "AVX512-SKX"}
  assert reproducibility.portable_overrides({})["XLA_FLAGS"] == f"{pin} --xla_cpu_max_isa=AVX2"
  full = reproducibility.portable_environment({"HOME": "/h", "XLA_FLAGS": "--a=1"})
  assert full["HOME"] == "/h" and full["XLA_FLAGS"] == f"--a=1 {pin} --xla_cpu_max_isa=AVX2"
  assert "--xla_cpu_max_isa=AVX2' PJRT_NPROC=2" in reproducibility.describe(True)
  assert "same CPU kind and core count only" in reproducibility.describe(False)


def test_under_the_setting_the_core_count_does_not_change_the_bits():
  if len(os.sched_getaffinity(0)) < 2:
    pytest.skip("needs 2 cores to compare a 1-core with a 2-core run (this process may use "
                f"{len(os.sched_getaffinity(0))})")
  portable = reproducibility.portable_overrides({})
  assert _run(portable, cores=1) == _run(portable, cores=2)
  # the control: without the fixed pool, one core means one XLA thread and other bits
  assert _run({}, cores=1) != _run({}, cores=2)
