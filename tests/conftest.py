"""Test set-up: 8 simulated CPU devices, set before jax is imported anywhere."""
import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# the commands' persistent compilation cache stays off unless a test turns it on (into tmp)
os.environ.setdefault("PSP_JAX_COMPILATION_CACHE", "off")

import pathlib  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

# the repository root, so tests can import the config files as `configs.<name>`
ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> pathlib.Path:
  """../shared/data beside the project root; skips (with the reason) when a clone lacks it."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"shared data folder not found at {SHARED_DATA} (only present beside the dev checkout)")
  return SHARED_DATA
