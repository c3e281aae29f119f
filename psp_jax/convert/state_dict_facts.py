"""Architecture facts read from a PyTorch state_dict (block counts, depth, required keys), and
the error every converter raises when a file does not fit the requested model. Shared by the
converters (torch_checkpoint.py, deeplab_targets.py) without either importing the other."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

DEPTH_BY_LAYER3_BLOCKS = {6: 50, 23: 101, 36: 152}


class ConversionError(ValueError):
  """The file does not fit the requested model (message says which key and why)."""


def _blocks(sd: Mapping[str, Any], prefix: str) -> int:
  """Number of blocks in a ResNet stage, from keys like `{prefix}.{i}.conv1.weight`."""
  idx = {int(k[len(prefix) + 1:].split(".")[0]) for k in sd
         if k.startswith(prefix + ".") and k[len(prefix) + 1:].split(".")[0].isdigit()}
  return max(idx) + 1 if idx else 0


def _depth(sd: Mapping[str, Any], layer3: str, layers: int | None) -> int:
  if layers is not None:
    return int(layers)
  n = _blocks(sd, layer3)
  if n not in DEPTH_BY_LAYER3_BLOCKS:
    raise ConversionError(f"cannot tell the ResNet depth: {n} blocks under {layer3!r} "
                          f"(known: {DEPTH_BY_LAYER3_BLOCKS}); pass --layers")
  return DEPTH_BY_LAYER3_BLOCKS[n]


def _require(sd: Mapping[str, Any], key: str, model: str) -> np.ndarray:
  if key not in sd:
    sample = sorted(sd)[:8]
    raise ConversionError(f"key {key!r} not found: this file does not look like a {model} checkpoint "
                          f"(its first keys: {sample})")
  return sd[key]
