"""The task interface: what the training loop and `psp-jax evaluate` need from a task.

A task module (psp_jax/tasks/segmentation.py, refinement.py) provides:
  NAME                         'segmentation' | 'refinement' (a model family's `task`)
  BEST_METRIC                  the evaluation metric (higher is better) that picks
                               checkpoints_best, as named in logs, reports and help texts
  training_task(config, model, global_batch, *, evaluate_fn=None) -> TrainingTask
                               everything the loop runs for this task (below)
  evaluate_checkpoint(config, path, *, step_dir=None, split=None) -> (metrics, markdown)
                               `psp-jax evaluate` of a checkpoint (a workdir, a checkpoints_best)
The loop (psp_jax/train/loop.py) knows tasks only through this; it never asks for a family.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import ml_collections

from psp_jax.constants import VERSION

# fn(model, variables, config, mesh, workdir, step) -> metrics (at least the task's eval_metrics)
EvaluateFn = Callable[..., dict]


@dataclasses.dataclass
class TrainingTask:
  """One task's side of a training run; the loop (schedule, checkpoints, resume, preemption,
  logging, evaluation cadence) is shared.

  make_step(optimizer, mesh) -> step(state, *arrays) -> (state, metrics); batch_arrays maps a
  host batch of `train_iterator` to those arrays (numpy, global batch; the first is the
  images); summed_metrics are the step metrics averaged over each log interval; evaluate is an
  EvaluateFn whose eval_metrics are logged and whose best_metric picks checkpoints_best;
  labels_hint says what valid labels are (for the health check); progress maps progress-bar
  fields to metric names; lr_modules are the modules lr_multipliers may name although this
  model leaves them out (the family's); predictions, if any, has .log(writer, variables, step).
  """
  name: str
  meta: dict
  train_iterator: Any
  make_step: Callable
  batch_arrays: Callable
  evaluate: EvaluateFn
  summed_metrics: tuple[str, ...]
  eval_metrics: tuple[str, ...]
  best_metric: str
  labels_hint: str
  progress: dict
  lr_modules: tuple[str, ...] = ()
  predictions: Any = None


def get(cfg, key, default=None):
  """cfg[key] for a ConfigDict or a dict, `default` when absent or None."""
  v = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
  return default if v is None else v


def data_config(config) -> ml_collections.ConfigDict:
  """The data section the pipeline reads: references resolved; data order seeded by
  data.seed + 1_000_003 * seed (so `seed` alone changes the order, seed=0 keeps data.seed)."""
  data_cfg = config.data.copy_and_resolve_references()
  with data_cfg.unlocked():
    data_cfg.seed = int(get(data_cfg, "seed", 0)) + 1_000_003 * int(get(config, "seed", 0))
  return data_cfg


def prepare_dataset(data_cfg):
  """Prepare once (process 0 writes, the others wait), then open it on every process."""
  from psp_jax import data as data_lib  # pylint: disable=import-outside-toplevel
  if jax.process_index() == 0 and not str(get(data_cfg, "name", "")).startswith("tfds:"):
    data_lib.prepare(data_cfg)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices("psp_jax: dataset prepared")
  return data_lib.open_dataset(data_cfg)


def checkpoint_meta(config, model, **sections: Any) -> dict[str, Any]:
  """The 'meta' item of training checkpoints: the model config, where it came from (the full
  config), the data config's preprocessing, plus the task's own `sections`."""
  from psp_jax import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
  from psp_jax.data.pipeline import preprocessing  # pylint: disable=import-outside-toplevel
  from psp_jax.train import logging_utils  # pylint: disable=import-outside-toplevel
  meta = {
      "format_version": ckpt_lib.FORMAT_VERSION,
      "model": ckpt_lib.model_config(model),
      "source": {"format": "psp_jax-train", "psp_jax_version": VERSION,
                 "config": logging_utils.config_to_dict(config)},
      "preprocessing": preprocessing(config.data).to_meta(),
  }
  for key, value in sections.items():
    meta[key] = dict(meta.get(key, {}), **value) if isinstance(value, dict) else value
  return meta
