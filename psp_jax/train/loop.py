"""`train_and_evaluate(config, workdir)`: the training run behind `psp-jax train`, for any task.

  psp-jax train --config configs/pspnet.py:demo --workdir runs/demo [--config.KEY=VALUE ...]

The loop knows tasks only through their interface (psp_jax/tasks/base.py; `config.task`
chooses one) and models only through the family contract (psp_jax/models/contract.py).
What a run does, in order:
  1. `jax.distributed.initialize` when `distributed.coordinator_address` is set.
  2. Writes WORKDIR/config.json, config.txt and setup.txt (also printed): the resolved config,
     processes and devices, the batch split, the effective BatchNorm batch, the learning rate
     of every parameter group at the start, middle and end of the schedule.
  3. The task prepares its dataset on first use (process 0 prepares; the others wait at a
     barrier and then open it; the data_dir must be shared between hosts).
  4. Resumes from WORKDIR/checkpoints (state + data iterator position) if a checkpoint exists,
     else initialises (optionally from `train.init_checkpoint`).
  5. Trains `train.steps` steps (every host the same number), logging every `train.log_every`
     steps (TensorBoard + WORKDIR/train.log + a progress bar), checkpointing every
     `train.checkpoint_every` steps and at the end, evaluating every `eval.every` steps and
     at the end (the best by the task's metric kept in WORKDIR/checkpoints_best).
Returns the final evaluation metrics plus 'step', 'best_step' and 'best_<metric>'.

Host-device round trips: per-step metrics are accumulated ON DEVICE (psp_jax.train.health)
and fetched only at log / checkpoint / evaluation steps.

Failure modes:
  * A NaN/Inf loss raises NonFiniteLossError naming the step; no checkpoint is written from
    that step on (the check runs before every save), so the latest checkpoint is the last good.
  * Labels outside the task's valid values raise InvalidLabelsError.
  * SIGTERM (preemption): a checkpoint at the current step is saved, then `Preempted` (exit
    status 143); restarting the same command resumes (psp_jax.train.preemption).
  * SIGKILL: restart the same command; it resumes from the latest checkpoint and, on the same
    devices, ends with bit-identical parameters (every step is a pure function of the state,
    the step number and the data iterator position, all of which are checkpointed).
  * A checkpoint that does not fit the configured model raises CheckpointMismatchError
    naming every mismatched parameter with both shapes.
"""
from __future__ import annotations

import contextlib
import pathlib
import statistics
import sys
import time
from typing import Callable

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from psp_jax import checkpoint as ckpt_lib
from psp_jax import tasks
from psp_jax.evaluate import cost
from psp_jax.models.build import build_model
from psp_jax.models.resnet import BNConfig
from psp_jax.parallel import check_global_batch, make_mesh, maybe_initialize_distributed, shard_batch
from psp_jax.tasks.base import TrainingTask, data_config
from psp_jax.train import logging_utils
from psp_jax.train.checkpointing import TrainCheckpointer
from psp_jax.train.health import (InvalidLabelsError, NonFiniteLossError, TrainingError,  # noqa: F401
                                  accumulate, check_health, zero_accumulator)
from psp_jax.train.optim import batchnorm_paths, make_optimizer
from psp_jax.train.preemption import PREEMPTED_EXIT_CODE, Preempted, PreemptionWatcher  # noqa: F401
from psp_jax.train.setup_report import describe_setup
from psp_jax.train.state import create_train_state

# step_fn: a function of the task's compiled step returning the step to run (tests wrap the
# real step to hang or signal at a given step; production passes None).
StepWrapper = Callable[[Callable], Callable]


def _is_every(step: int, every, total: int) -> bool:
  every = int(every or 0)
  return step == total or (every > 0 and step % every == 0)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                       evaluate_fn: Callable | None = None,
                       step_fn: StepWrapper | None = None) -> dict:
  """Train (or resume) the run described by `config` in `workdir`; returns the final
  evaluation metrics plus 'step', 'best_step' and 'best_<metric>' (module docstring).

  evaluate_fn: `fn(model, variables, config, mesh, workdir, step) -> metrics` replacing the
  task's evaluation (at least the task's metrics). step_fn: see StepWrapper.
  """
  maybe_initialize_distributed(config)
  with contextlib.ExitStack() as stack:
    watcher = PreemptionWatcher()  # early: a SIGTERM while preparing/compiling still saves
    stack.callback(watcher.close)
    run = _Run(config, pathlib.Path(workdir).expanduser().absolute(), stack)
    run.set_up(evaluate_fn, step_fn)
    return run.train(watcher)


class _Run:
  """One training run's state between set-up and the end (see `train_and_evaluate`)."""

  def __init__(self, config, workdir: pathlib.Path, stack: contextlib.ExitStack):
    self.config, self.workdir, self.stack = config, workdir, stack
    self.is_main = jax.process_index() == 0
    self.total = int(config.train.steps)
    if self.total < 1:
      raise ValueError(f"train.steps must be >= 1, got {self.total}")
    num_devices = config.train.get("num_devices")
    if num_devices and jax.process_count() > 1 and num_devices != jax.device_count():
      raise ValueError("train.num_devices must be None (all devices) with several processes")
    self.mesh = make_mesh(num_devices)
    self.global_batch = int(config.train.batch_size)
    self.per_device = check_global_batch(self.global_batch, self.mesh)

  def say(self, msg: str) -> None:
    if self.is_main:
      tqdm.write(msg, file=sys.stdout)

  def set_up(self, evaluate_fn: Callable | None, step_fn: StepWrapper | None) -> None:
    """Model, task, checkpointer, optimizer, logs and the initial (or restored) state."""
    config = self.config
    if self.is_main:
      self.workdir.mkdir(parents=True, exist_ok=True)
      logging_utils.write_config(self.workdir, config)
    data_cfg = data_config(config)
    frozen_bn = bool(config.train.get("frozen_bn", False))
    self.model = build_model(config.model, bn=BNConfig(frozen=frozen_bn))
    self.task: TrainingTask = tasks.get_task(config).training_task(
        config, data_cfg, self.model, self.global_batch, evaluate_fn=evaluate_fn)
    init_rng, self.train_rng = jax.random.split(jax.random.key(int(config.seed)))
    self.checkpointer = TrainCheckpointer(self.workdir, keep=config.train.get("keep_checkpoints", 3),
                                          best_metric=self.task.best_metric,
                                          saved_metrics=self.task.eval_metrics)
    self.stack.callback(self.checkpointer.close)
    self.stack.callback(self.checkpointer.wait)  # runs first: in-flight saves complete, even on errors
    resume_step = self.checkpointer.latest_step()
    variables = ckpt_lib.init_variables(self.model, init_rng, abstract=resume_step is not None)
    frozen_paths = batchnorm_paths(variables["batch_stats"]) if frozen_bn else ()
    self.optimizer = make_optimizer(config.optim, variables["params"], self.total,
                                    optional_modules=self.task.lr_modules, frozen_paths=frozen_paths)
    self.writer = logging_utils.MetricWriter(self.workdir, enabled=self.is_main)
    self.stack.callback(self.writer.close)
    setup = describe_setup(config, self.mesh, self.per_device, self.optimizer, self.total,
                           resume_step, int(data_cfg.seed))
    if self.is_main:
      (self.workdir / "setup.txt").write_text(setup + "\n")
      self.say(f"config:\n{config}\nset-up:\n{setup}")
      self.writer.text("set-up: " + setup.replace("\n", "\n    "))
    self.state = self._initial_state(variables, resume_step)
    self.last_saved = resume_step
    step = self.task.make_step(self.optimizer, self.mesh)
    self.train_step = step_fn(step) if step_fn is not None else step

  def _initial_state(self, variables, resume_step: int | None):
    """The checkpointed state of `resume_step` (and the data position), else a fresh state,
    optionally from train.init_checkpoint (its report printed and logged)."""
    if resume_step is not None:
      target = jax.eval_shape(lambda v: create_train_state(v, self.optimizer.tx, self.train_rng),
                              variables)
      state = self.checkpointer.restore(target, self.mesh, self.task.train_iterator, resume_step)
      msg = f"resumed from {self.checkpointer.directory}/{resume_step}"
      self.writer.text(msg)
      self.say(msg)
      return state
    init_ckpt = self.config.train.get("init_checkpoint") or ""
    if init_ckpt:
      variables, report = ckpt_lib.init_from_checkpoint(variables, init_ckpt, log=None)
      self.say(report.summary())
      self.writer.text(report.summary())
    return create_train_state(variables, self.optimizer.tx, self.train_rng, self.mesh)

  # --------------------------------------------------------------------------- the steps

  def train(self, watcher: PreemptionWatcher) -> dict:
    """Steps until train.steps, with logging, checkpoints and evaluations on their cadence."""
    cfg, task = self.config, self.task
    debug_nan_at = int(cfg.train.get("debug_nan_at_step", 0) or 0)
    every = {"log": cfg.train.get("log_every", 50), "ckpt": cfg.train.get("checkpoint_every", 0),
             "eval": cfg.eval.get("every", 0)}
    step = int(jax.device_get(self.state.step))
    final_metrics, evaluated_at = {}, -1
    self.acc = zero_accumulator(self.mesh, task.summed_metrics)
    bar = tqdm(total=self.total, initial=step, desc="train", unit="step", disable=not self.is_main,
               dynamic_ncols=True, file=sys.stderr)
    self.stack.callback(bar.close)
    self.interval_start, self.interval_steps, first_step = time.time(), 0, True
    self.logged_rates: list[float] = []
    while step < self.total:
      if watcher.reached(step):
        self._preempt(step)
      arrays = task.batch_arrays(next(task.train_iterator))
      if debug_nan_at and step + 1 == debug_nan_at:  # the first array is the images
        arrays = (np.full_like(arrays[0], np.nan), *arrays[1:])
      self.state, metrics = self.train_step(self.state, *shard_batch(tuple(arrays), self.mesh))
      step += 1
      self.acc = accumulate(self.acc, metrics, self.state.step)
      self.interval_steps += 1
      bar.update(1)
      if first_step:  # one sync: report compilation + first step apart from the throughput
        jax.block_until_ready(metrics["loss"])
        self.writer.text(f"step {step}: compiled and ran the first step in "
                         f"{time.time() - self.interval_start:.1f} s")
        self.interval_start, self.interval_steps, first_step = time.time(), 0, False
      due = {k: _is_every(step, v, self.total) for k, v in every.items()}
      if not any(due.values()):
        continue
      host = self._fetch_and_check(step)  # raises before anything of a bad step is saved
      if due["log"]:
        self._log(step, host, bar)
      if due["ckpt"] and self.checkpointer.save(self.state, task.train_iterator,
                                                dict(task.meta, step=step)):
        self.last_saved = step
        self.writer.text(f"checkpoint step {step} -> {self.checkpointer.directory}/{step}")
      if due["eval"]:
        final_metrics, evaluated_at = self._evaluate(step), step
      self.writer.flush()
      self.interval_start = time.time()  # throughput excludes checkpointing and evaluation
    if evaluated_at != step:  # resumed after the end: evaluate the final state again
      final_metrics = self._evaluate(step)
    self.checkpointer.wait()
    result = dict(final_metrics)
    result.update({"step": step, "best_step": self.checkpointer.best_step(),
                   f"best_{task.best_metric}": self.checkpointer.best_metric(),
                   "train_cost": self._train_cost()})
    return result

  def _train_cost(self) -> dict:
    """Training throughput (median of the logged intervals, compile and first step excluded;
    None when no interval was logged) and the peak memory of this run."""
    memory, measured = cost.peak_memory_mb()
    rates = self.logged_rates
    return dict(images_per_s=round(statistics.median(rates), 3) if rates else None,
                global_batch=self.global_batch, devices=int(self.mesh.size),
                peak_memory_mb=memory, memory_measured=measured, machine=cost.machine())

  def _fetch_and_check(self, step: int) -> dict:
    host = jax.device_get(self.acc)
    check_health(host, last_good=self.last_saved, checkpoint_dir=self.checkpointer.directory,
                 step=step, labels_hint=self.task.labels_hint)
    return host

  def _preempt(self, step: int) -> None:
    self.checkpointer.wait()
    self._fetch_and_check(step)
    self.checkpointer.save(self.state, self.task.train_iterator, dict(self.task.meta, step=step))
    self.checkpointer.wait()
    msg = (f"preempted (SIGTERM): saved a checkpoint at step {step} in {self.checkpointer.directory}; "
           f"run the same command again to resume (exit status {PREEMPTED_EXIT_CODE})")
    self.writer.text(msg)
    self.say(msg)
    raise Preempted(step, msg)

  def _log(self, step: int, host: dict, bar) -> None:
    """Interval means of the summed metrics, learning rates and throughput; resets the sums."""
    n = max(int(host["count"]), 1)
    elapsed = time.time() - self.interval_start
    values = {f"train/{k}": float(host["sums"][k]) / n for k in self.task.summed_metrics}
    values.update({f"train/lr/{g}": float(v) for g, v in self.optimizer.learning_rates(step - 1).items()})
    if self.interval_steps:
      values["train/images_per_sec"] = self.interval_steps * self.global_batch / max(elapsed, 1e-9)
      self.logged_rates.append(values["train/images_per_sec"])
    values["train/invalid_label_pixels"] = float(host["invalid"])
    self.writer.scalars(step, values)
    self.writer.text(f"step {step}/{self.total}: " + logging_utils.format_metrics(
        {k[len("train/"):]: v for k, v in values.items()}))
    bar.set_postfix({f: f"{values['train/' + k]:.4f}" for f, k in self.task.progress.items()},
                    refresh=False)
    self.acc = zero_accumulator(self.mesh, self.task.summed_metrics)
    self.interval_steps = 0

  def _evaluate(self, step: int) -> dict:
    task = self.task
    metrics = task.evaluate(self.model, self.state.variables, self.config, self.mesh,
                            str(self.workdir), step)
    scalars = {f"eval/{k}": float(metrics[k]) for k in task.eval_metrics if k in metrics}
    self.writer.scalars(step, scalars)
    if task.predictions is not None:
      task.predictions.log(self.writer, self.state.variables, step)
    line = f"eval step {step}: " + logging_utils.format_metrics(
        {k.split("/")[1]: v for k, v in scalars.items()})
    self.writer.text(line)
    self.say(line)
    self.checkpointer.save_best(self.state, dict(task.meta, step=step), metrics)
    return metrics
