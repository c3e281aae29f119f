"""Shared helpers of the conversion tests (torch imported by the callers only)."""
from __future__ import annotations

import numpy as np

TORCH_SKIP_REASON = ("PyTorch is not installed: conversion parity tests need the optional extra "
                     "(pip install 'psp_jax[convert]', i.e. torch==2.13.0)")


def nhwc(t) -> np.ndarray:
  return t.detach().numpy().transpose(0, 2, 3, 1)


def nchw(a: np.ndarray):
  import torch
  return torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2)))


def rel_err(out, ref) -> float:
  out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
  return float(np.abs(out - ref).max() / np.abs(ref).max())


def save_state_dict(module, path, *, prefix: str = "", wrap: bool = False, extra=None) -> None:
  """torch.save the module's state_dict, optionally `module.`-prefixed and/or wrapped as semseg
  does ({'epoch', 'state_dict', 'optimizer'})."""
  import torch
  sd = {prefix + k: v for k, v in module.state_dict().items()}
  if extra:
    sd.update(extra)
  obj = sd
  if wrap:
    obj = {"epoch": 7, "state_dict": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 0.01}]}}
  torch.save(obj, path)


def random_variables(model, seed: int = 0) -> dict:
  """Random {'params', 'batch_stats'} of the model's shapes, without running its init (fast
  stand-in for a fresh initialisation in tests of init_from_checkpoint)."""
  import jax

  from psp_jax import checkpoint
  rng = np.random.default_rng(seed)
  abstract = checkpoint.init_variables(model, abstract=True)

  def draw(path, s):
    if path[-1].key == "var":  # running variances must be positive
      return rng.uniform(0.5, 1.5, s.shape).astype(s.dtype)
    return (rng.standard_normal(s.shape) * 0.1).astype(s.dtype)

  return jax.tree_util.tree_map_with_path(draw, abstract)
