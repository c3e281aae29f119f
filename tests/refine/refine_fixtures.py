"""Helpers of the refinement tests: a tiny random-weight CascadePSP checkpoint, sample data."""
from __future__ import annotations

import jax
import numpy as np

from psp_jax import checkpoint
from psp_jax.models.refinement import RefinementModule

WIDTH = 8  # everything scales with it: a 3-pass forward compiles in seconds


def tiny_variables(seed: int = 0) -> dict:
  """Random {'params', 'batch_stats'} of RefinementModule(width=8) without running its init."""
  model = RefinementModule(width=WIDTH)
  abstract = checkpoint.init_variables(model, abstract=True)
  rng = np.random.default_rng(seed)

  def draw(path, s):
    name = path[-1].key
    if name == "var":
      return rng.uniform(0.5, 1.5, s.shape).astype(s.dtype)
    if name == "scale":
      return rng.uniform(0.8, 1.2, s.shape).astype(s.dtype)
    if name in ("mean", "bias"):
      return (rng.standard_normal(s.shape) * 0.05).astype(s.dtype)
    fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) == 4 else 1
    return (rng.standard_normal(s.shape) * (1.0 / fan_in) ** 0.5).astype(s.dtype)

  return jax.tree_util.tree_map_with_path(draw, abstract)


def save_tiny_checkpoint(directory, seed: int = 0) -> str:
  model = RefinementModule(width=WIDTH)
  meta = {"format_version": 1, "model": checkpoint.model_config(model),
          "source": {"what": "random weights for tests"}}
  checkpoint.save_checkpoint(directory, tiny_variables(seed), meta)
  return str(directory)


def blob_sample(h: int, w: int, seed: int = 0):
  """(RGB uint8 image, uint8 0/255 mask): a bright ellipse on noise, the mask a shifted ellipse."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:h, :w]
  inside = ((yy - h / 2) / (0.35 * h)) ** 2 + ((xx - w / 2) / (0.3 * w)) ** 2 < 1
  image = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
  image[inside] = (230, 200, 60)
  coarse = ((yy - h / 2 - 0.05 * h) / (0.33 * h)) ** 2 + ((xx - w / 2) / (0.32 * w)) ** 2 < 1
  return image, coarse.astype(np.uint8) * 255
