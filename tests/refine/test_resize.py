"""Resampling matrices against PyTorch's F.interpolate, and the global step's sizes."""
from __future__ import annotations

import numpy as np
import pytest

from psp_jax.refine import resize


def _torch():
  """torch, or a skip naming why (inside each test: the torch-free tests still run)."""
  return pytest.importorskip("torch", reason="PyTorch (the optional convert extra) is the "
                                             "reference for F.interpolate")


def _ours(x: np.ndarray, kind: str, out_hw, scale=None) -> np.ndarray:
  return np.asarray(resize.resize2d(x.transpose(1, 2, 0), kind, out_hw, scale)).transpose(2, 0, 1)


@pytest.mark.parametrize("h,w,L", [(37, 53, 90), (21, 10, 900), (5, 3, 16), (90, 60, 128)])
@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
def test_enlarging_with_scale_factor_matches_torch(h, w, L, mode):
  torch = _torch()
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, h, w)).astype(np.float32)
  scale = L / max(h, w)
  ref = torch.nn.functional.interpolate(torch.from_numpy(x)[None], scale_factor=scale, mode=mode,
                                        align_corners=False)[0].numpy()
  gh, gw, s = resize.global_size(h, w, L)
  assert (gh, gw) == ref.shape[1:] and s == scale
  np.testing.assert_allclose(_ours(x, mode, (gh, gw), s), ref, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("h,w,L", [(648, 968, 900), (300, 77, 128), (1000, 1002, 900), (131, 97, 96)])
def test_shrinking_with_area_matches_torch(h, w, L):
  torch = _torch()
  x = np.random.default_rng(1).standard_normal((1, h, w)).astype(np.float32)
  ref = torch.nn.functional.interpolate(torch.from_numpy(x)[None], scale_factor=L / max(h, w),
                                        mode="area")[0].numpy()
  gh, gw, _ = resize.global_size(h, w, L)
  assert (gh, gw) == ref.shape[1:]
  np.testing.assert_allclose(_ours(x, "area", (gh, gw)), ref, atol=1e-5)


@pytest.mark.parametrize("src,dst", [((62, 96), (150, 230)), ((96, 51), (13, 7)), ((30, 20), (30, 20))])
def test_size_resizes_match_torch(src, dst):
  torch = _torch()
  x = np.random.default_rng(2).random((1,) + src).astype(np.float32)
  t = torch.from_numpy(x)[None]
  for kind, kwargs in (("bilinear", dict(mode="bilinear", align_corners=False)),
                       ("bilinear_ac", dict(mode="bilinear", align_corners=True)),
                       ("area", dict(mode="area"))):
    ref = torch.nn.functional.interpolate(t, size=dst, **kwargs)[0].numpy()
    np.testing.assert_allclose(_ours(x, kind, dst), ref, atol=1e-5, err_msg=kind)


def test_global_size_reproduces_the_official_rounding_and_never_reaches_zero():
  assert resize.global_size(648, 968, 900) == (602, 900, 900 / 968)
  assert resize.global_size(10, 21, 900)[:2] == (428, 899)  # float rounding, as PyTorch
  assert resize.global_size(900, 30, 900) == (900, 30, 1.0)
  assert resize.global_size(4001, 3, 900)[:2] == (900, 1)  # PyTorch would give 0 and fail
