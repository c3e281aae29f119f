"""Datasets (TFDS builders, prepared without TensorFlow), Grain pipelines and transforms.

Entry points (imported lazily, so `psp_jax.data.synthetic` stays light):
  prepare(data_cfg)                         prepare a dataset once (prints counts + histogram)
  open_dataset(data_cfg)                    prepared splits as random-access sources
  train_iterator(data_cfg, global_batch)    per-process training batches, get_state/set_state
  eval_iterator(data_cfg, split)            per-process padded evaluation batches
  eval_steps(num_records, process_count, batch_size)
  refine_train_iterator(data_cfg, global_batch)   CascadePSP crops: image, perturbed seg, gt
  refine_eval_examples(data_cfg, split)          full-size (name, image, gt, coarse) examples
"""
from __future__ import annotations

import importlib

_LAZY = {
    "prepare": "psp_jax.data.datasets",
    "open_dataset": "psp_jax.data.datasets",
    "make_builder": "psp_jax.data.builders",
    "PreparedDataset": "psp_jax.data.prepared",
    "train_iterator": "psp_jax.data.pipeline",
    "train_dataset": "psp_jax.data.pipeline",
    "eval_iterator": "psp_jax.data.pipeline",
    "eval_dataset": "psp_jax.data.pipeline",
    "eval_steps": "psp_jax.data.pipeline",
    "refine_train_iterator": "psp_jax.data.refine_pipeline",
    "refine_train_dataset": "psp_jax.data.refine_pipeline",
    "refine_eval_examples": "psp_jax.data.refine_pipeline",
    "RefineAugment": "psp_jax.data.refine_pipeline",
    "Augment": "psp_jax.data.transforms",
    "normalize": "psp_jax.data.transforms",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
  if name in _LAZY:
    return getattr(importlib.import_module(_LAZY[name]), name)
  raise AttributeError(f"module 'psp_jax.data' has no attribute {name!r}")
