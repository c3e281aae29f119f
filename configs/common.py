"""The config base every family's config file builds on (plain data, no logic).

  cfg = common.base(task, model, data_cfg)      seed, task, model, data, train, optim, eval, distributed

Sections shared by every training config (the keys of shared/design.md: seed, train.steps,
train.batch_size (global), train.checkpoint_every, eval.every, model.*, data.*, optim.*):
  task                  'segmentation' | 'refinement': the psp_jax.tasks module that trains and
                        evaluates it (must be the model family's task)
  train.steps / batch_size / sync_bn / bn_group_size / frozen_bn / init_checkpoint /
  checkpoint_every / keep_checkpoints / log_every / num_devices / debug_nan_at_step
  optim.*               see psp_jax.train.optim.make_optimizer (sgd_poly / adam_step below)
  eval.every / split / max_images
  distributed.*         jax.distributed.initialize arguments for multi-host runs ('' = one host)
Segmentation configs add `segmentation_eval` (the sliding-window protocol) and train.aux_weight.
"""
from __future__ import annotations

import ml_collections


def train(steps: int, batch_size: int, **extra) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      steps=steps, batch_size=batch_size, sync_bn=True,
      bn_group_size=ml_collections.FieldReference(None, field_type=int), frozen_bn=False,
      init_checkpoint="", checkpoint_every=5000, keep_checkpoints=3, log_every=50,
      num_devices=ml_collections.FieldReference(None, field_type=int), debug_nan_at_step=0,
      native_loss=False, **extra))


def sgd_poly(base_lr: float, lr_multipliers: dict, weight_decay: float = 1e-4,
             momentum: float = 0.9) -> ml_collections.ConfigDict:
  """SGD with momentum, poly(0.9) decay to 0, L2 weight decay, per-module lr multipliers."""
  return ml_collections.ConfigDict(dict(
      name="sgd", base_lr=base_lr, momentum=momentum, nesterov=False, weight_decay=weight_decay,
      schedule="poly", power=0.9, warmup_steps=0, warmup_init_lr=0.0, end_lr=0.0,
      lr_multipliers=lr_multipliers, grad_clip_norm=0.0))


def adam_step(base_lr: float, boundary_fractions: tuple, decay_factor: float = 0.1,
              weight_decay: float = 1e-4) -> ml_collections.ConfigDict:
  """Adam with a step schedule (lr x decay_factor at each boundary fraction of the steps)."""
  return ml_collections.ConfigDict(dict(
      name="adam", base_lr=base_lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay,
      schedule="step", boundaries=ml_collections.FieldReference((), field_type=tuple),
      boundary_fractions=boundary_fractions, decay_factor=decay_factor,
      lr_multipliers={}, grad_clip_norm=0.0))


def segmentation_eval(crop: tuple[int, int], base_size: int | None,
                      every: int = 5000) -> ml_collections.ConfigDict:
  """The sliding-window protocol of psp_jax.evaluate.inference (scales, flip, stride 2/3)."""
  return ml_collections.ConfigDict(dict(
      every=every, split="validation", crop_size=tuple(crop),
      base_size=ml_collections.FieldReference(base_size, field_type=int), scales=(1.0,),
      flip=False, stride_rate=2.0 / 3.0, window_batch=2, max_images=0, log_images=3,
      crf="",  # a DenseCRF preset, or "NAME:key=value,...": also evaluate after the CRF
      crf_images=0,  # the CRF on N evenly spaced images (0: all), scored against no CRF on them
      # CascadePSP on top: every predicted class refined by the 'cascadepsp' checkpoint
      # (a training workdir); psp_jax/refine/on_segmentation.py
      refine=dict(checkpoint="", L=900, stages="global+local", images=0)))


def distributed() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(coordinator_address="", num_processes=1, process_id=0))


def base(task: str, model: dict, data_cfg: ml_collections.ConfigDict,
         train_cfg: ml_collections.ConfigDict, optim_cfg: ml_collections.ConfigDict,
         eval_cfg: ml_collections.ConfigDict, seed: int = 0) -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict()
  cfg.seed = seed
  cfg.task = task
  cfg.model = ml_collections.ConfigDict(model)
  cfg.data = data_cfg
  cfg.train = train_cfg
  cfg.optim = optim_cfg
  cfg.eval = eval_cfg
  cfg.distributed = distributed()
  return cfg
