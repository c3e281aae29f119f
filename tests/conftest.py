"""Test set-up: 8 simulated CPU devices, set before jax is imported anywhere."""
import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent XLA compilation cache for the whole run, shared by both xdist workers, every
# test and every `psp-jax` subprocess (which inherit the environment): a program compiled once
# (a resumed run's step, the tiny model several tests train) is loaded, not compiled, the next
# time. It lives in this checkout's .pytest_cache, so a fresh clone (CI) starts cold; a size
# limit turns on JAX's file lock, so concurrent writers never expose a half-written entry.
# Tests of the cache itself set their own folder.
_XLA_CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          ".pytest_cache", "xla")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _XLA_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(8 * 2**30))
os.environ.setdefault("PSP_JAX_COMPILATION_CACHE", _XLA_CACHE)

import pathlib  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

# the repository root, so tests can import the config files as `configs.<name>`
ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

SHARED = pathlib.Path(__file__).resolve().parents[1].parent / "shared"
SHARED_DATA = SHARED / "data"


def under_ci() -> bool:
  """Whether this is a CI run (env CI set, as CI services and .ci/run do)."""
  return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_shared(relative: str, what: str) -> pathlib.Path:
  """../shared/<relative> beside the project root. Missing: under CI, which runs beside
  ../shared, a failure (the tests must not vanish); elsewhere a skip that says why."""
  path = SHARED / relative
  if path.exists():
    return path
  message = f"{what} not found at {path}"
  if under_ci():
    pytest.fail(f"{message}: CI={os.environ['CI']} runs beside ../shared, so it must be there",
                pytrace=False)
  pytest.skip(f"{message} (only beside the dev checkout; under CI this fails)")


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """../shared/data beside the project root (see require_shared)."""
  return require_shared("data", "shared data folder")


@pytest.fixture(scope="session")
def shared_path():
  """require_shared for fixtures of any scope: shared_path("data/camvid", "shared CamVid")."""
  return require_shared
