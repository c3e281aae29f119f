"""What opening a dataset gives the pipelines, shared by the TFDS builders and catalog datasets.

PreparedDataset: random-access sources per split and the label facts; DEFAULT_DATA_DIR: where
TFDS writes prepared datasets unless data.data_dir says otherwise; `get`: a config field with
a default (ConfigDict, FrozenConfigDict or plain dict).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

DEFAULT_DATA_DIR = os.path.join(os.path.expanduser("~"), "tensorflow_datasets")


def get(cfg: Mapping[str, Any] | Any, key: str, default=None):
  try:
    v = cfg.get(key, default)
  except AttributeError:
    v = getattr(cfg, key, default)
  return default if v is None else v


@dataclasses.dataclass
class PreparedDataset:
  """What the pipeline needs: random-access sources per split and the label facts."""
  sources: dict[str, Any]
  class_names: tuple[str, ...]
  num_classes: int
  metadata: dict
  builder: Any = None

  def split_info(self, split: str) -> dict:
    return dict(self.metadata.get("splits", {}).get(split, {}))
