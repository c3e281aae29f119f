"""Fixtures of the refinement tests: a tiny random-weight CascadePSP checkpoint and refiner."""
from __future__ import annotations

import pytest
from refine_fixtures import save_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> str:
  return save_tiny_checkpoint(tmp_path_factory.mktemp("refine") / "ckpt")


@pytest.fixture(scope="session")
def refiner(tiny_ckpt):
  """One refiner for the API tests (bucket 64: few compiled shapes)."""
  from psp_jax.refine.api import Refiner
  return Refiner(tiny_ckpt, bucket=64)
