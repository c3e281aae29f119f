"""`train_and_evaluate(config, workdir)`: the training run behind `psp-jax train`.

  psp-jax train --config configs/pspnet.py:demo --workdir runs/demo [--config.KEY=VALUE ...]

What a run does, in order:
  1. `jax.distributed.initialize` when `distributed.coordinator_address` is set.
  2. Writes WORKDIR/config.json, config.txt and setup.txt (also printed): the resolved config,
     processes and devices, the batch split, the effective BatchNorm batch, the learning rate
     of every parameter group at the start, middle and end of the schedule.
  3. Prepares the dataset on first use (process 0 prepares; the others wait at a barrier and
     then open it; the data_dir must be shared between hosts, else each host prepares its own).
  4. Resumes from WORKDIR/checkpoints (state + data iterator position) if a checkpoint exists,
     else initialises (optionally from `train.init_checkpoint`).
  5. Trains `train.steps` steps (every host the same number), logging every `train.log_every`
     steps (TensorBoard + WORKDIR/train.log + a progress bar), checkpointing every
     `train.checkpoint_every` steps and at the end, evaluating every `eval.every` steps and
     at the end (best-by-mIoU kept in WORKDIR/checkpoints_best).
Returns the final evaluation metrics (mIoU, mAcc, aAcc, per_class, ... plus 'step').

Host-device round trips: per-step metrics are accumulated ON DEVICE (sums over the log
interval, the first step whose loss was not finite, the count of invalid label pixels) and
fetched only at log / checkpoint / evaluation steps.

Failure modes:
  * A NaN/Inf loss raises NonFiniteLossError naming the step; no checkpoint is written from
    that step on (the check runs before every save), so the latest checkpoint is the last good.
  * Labels outside [0, num_classes) other than the ignore label raise InvalidLabelsError.
  * SIGTERM (preemption): the run saves a checkpoint at the current step, waits for it, and
    exits with status 143 (= 128 + SIGTERM; `Preempted`, a SystemExit); restarting the same
    command resumes. With several processes the JAX preemption service agrees on the step.
  * SIGKILL: restart the same command; it resumes from the latest checkpoint and, on the same
    devices, ends with bit-identical parameters (every step is a pure function of the state,
    the step number and the data iterator position, all of which are checkpointed).
  * A checkpoint that does not fit the configured model raises CheckpointMismatchError
    naming every mismatched parameter with both shapes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import pathlib
import signal
import sys
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from tqdm import tqdm

from psp_jax import checkpoint as ckpt_lib
from psp_jax.models.build import build_model
from psp_jax.models.resnet import BNConfig
from psp_jax.parallel import check_global_batch, make_mesh, shard_batch
from psp_jax.train import logging_utils
from psp_jax.train.checkpointing import TrainCheckpointer
from psp_jax.train.losses import IGNORE_LABEL
from psp_jax.train.optim import Optimizer, batchnorm_paths, make_optimizer
from psp_jax.train.state import create_train_state
from psp_jax.train.step import make_train_step

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM: "terminated", the scheduler should restart the job
OPTIONAL_MODULES = ("ppm", "aux_head")
SUMMED_METRICS = ("loss", "main_loss", "aux_loss", "pixel_acc", "grad_norm")


class TrainingError(RuntimeError):
  """A run stopped because something is wrong with the data or the optimisation."""


class NonFiniteLossError(TrainingError):
  pass


class InvalidLabelsError(TrainingError):
  pass


class Preempted(SystemExit):
  """SIGTERM received: a checkpoint at `step` was saved; exit status PREEMPTED_EXIT_CODE."""

  def __init__(self, step: int, message: str):
    super().__init__(PREEMPTED_EXIT_CODE)
    self.step = step
    self.message = message

  def __str__(self) -> str:
    return self.message


# ----------------------------------------------------------------------------- set-up

def maybe_initialize_distributed(config) -> bool:
  """`jax.distributed.initialize` from `config.distributed` when a coordinator is set (and
  JAX is not initialised yet). Must run before anything touches the devices. On a CPU-only
  run (JAX_PLATFORMS=cpu) the gloo collectives are selected. Returns whether it initialised."""
  dist = config.get("distributed") or {}
  address = dist.get("coordinator_address") or ""
  if not address or jax.distributed.is_initialized():
    return False
  if os.environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(address, num_processes=int(dist.get("num_processes", 1)),
                             process_id=int(dist.get("process_id", 0)))
  return True


def _get(cfg, key, default=None):
  v = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
  return default if v is None else v


def data_config(config) -> ml_collections.ConfigDict:
  """The data section the pipeline reads: references resolved; data order seeded by
  data.seed + 1_000_003 * seed (so `seed` alone changes the order, seed=0 keeps data.seed)."""
  data_cfg = config.data.copy_and_resolve_references()
  with data_cfg.unlocked():
    data_cfg.seed = int(_get(data_cfg, "seed", 0)) + 1_000_003 * int(_get(config, "seed", 0))
  return data_cfg


def prepare_dataset(data_cfg):
  """Prepare once (process 0 writes, the others wait), then open it on every process."""
  from psp_jax import data as data_lib  # pylint: disable=import-outside-toplevel
  if jax.process_index() == 0 and not str(_get(data_cfg, "name", "")).startswith("tfds:"):
    data_lib.prepare(data_cfg)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices("psp_jax: dataset prepared")
  return data_lib.open_dataset(data_cfg)


def class_palette(data_cfg, dataset) -> np.ndarray:
  """(C, 3) uint8 colours: data.colors, else the builder's palette, else the synthetic scenes'
  palette, else a fixed (PASCAL-style) palette."""
  from psp_jax.visualize import default_palette  # pylint: disable=import-outside-toplevel
  num_classes = dataset.num_classes
  colors = _get(data_cfg, "colors")
  if colors is None and dataset.builder is not None:
    colors = getattr(dataset.builder, "COLORS", None)
  if colors is None and _get(data_cfg, "name") == "synthetic":
    try:
      from psp_jax.data.synthetic import synthetic_classes  # pylint: disable=import-outside-toplevel
      colors = synthetic_classes(dataset.class_names)[1]
    except ValueError:
      colors = None
  if colors is not None and len(colors) >= num_classes:
    return np.asarray(colors, np.uint8)[:num_classes].reshape(num_classes, 3)
  return default_palette(num_classes)


def bn_batch_description(config, mesh, per_device: int) -> str:
  t = config.train
  if t.get("frozen_bn", False):
    return "frozen (running statistics, no batch statistics)"
  n = mesh.devices.size
  if not t.get("sync_bn", True):
    return f"{per_device} (per device, no sync)"
  group = t.get("bn_group_size") or n
  if n % group:
    raise ValueError(f"train.bn_group_size={group} must divide the {n} devices of the mesh")
  return f"{per_device * group} ({per_device} per device x {group} devices per BN group)"


def schedule_points(optimizer: Optimizer, total: int) -> list[tuple[int, dict[str, float]]]:
  steps = sorted({0, total // 2, total})
  return [(s, {g: float(v) for g, v in optimizer.learning_rates(s).items()}) for s in steps]


def describe_setup(config, mesh, per_device: int, optimizer: Optimizer, total: int,
                   resume_step: int | None, data_seed: int) -> str:
  devices = jax.devices()
  lines = [
      f"platform: {devices[0].platform} ({devices[0].device_kind})",
      f"processes: {jax.process_count()} (this is process {jax.process_index()})",
      f"devices: {jax.local_device_count()} local, {jax.device_count()} global; "
      f"mesh 'data' over {mesh.devices.size}",
      f"global batch: {config.train.batch_size} = {per_device} per device x {mesh.devices.size} "
      f"devices ({config.train.batch_size // jax.process_count()} per process)",
      f"BatchNorm batch: {bn_batch_description(config, mesh, per_device)}",
      f"steps: {total}; log every {config.train.log_every}, checkpoint every "
      f"{config.train.checkpoint_every} (keep {config.train.keep_checkpoints}), evaluate every "
      f"{config.eval.every}",
      f"data order seed: {data_seed}",
      f"start: {'resume from step ' + str(resume_step) if resume_step is not None else 'step 0'}"
      + (f" (init_checkpoint {config.train.init_checkpoint})"
         if config.train.get("init_checkpoint") and resume_step is None else ""),
      "learning rate per parameter group (schedule end points):",
  ]
  for step, lrs in schedule_points(optimizer, total):
    lines.append(f"  step {step:>7d}: " + ", ".join(f"{g} {lr:.6g}" for g, lr in sorted(lrs.items())))
  return "\n".join(lines)


def checkpoint_meta(config, model, dataset, palette: np.ndarray) -> dict[str, Any]:
  """The 'meta' item: everything `psp_jax.load` / `predict` need, plus the full config."""
  from psp_jax import __version__ as version  # pylint: disable=import-outside-toplevel
  ev = config.eval
  return {
      "format_version": ckpt_lib.FORMAT_VERSION,
      "model": ckpt_lib.model_config(model),
      "source": {"format": "psp_jax-train", "psp_jax_version": version,
                 "config": logging_utils.config_to_dict(config)},
      "classes": {"names": list(dataset.class_names), "palette": palette.tolist(),
                  "dataset": str(_get(config.data, "name", ""))},
      "preprocessing": {"mean": list(config.data.mean), "std": list(config.data.std),
                        "input_scale": 255.0, "channel_order": "RGB",
                        "align_corners": bool(getattr(model, "align_corners", True)),
                        "ignore_label": int(_get(config.data, "ignore_label", IGNORE_LABEL))},
      "inference": {"crop_size": list(ev.crop_size), "base_size": ev.get("base_size"),
                    "scales": list(ev.get("scales", (1.0,))), "flip": bool(ev.get("flip", False)),
                    "stride_rate": float(ev.get("stride_rate", 2.0 / 3.0)),
                    "window_batch": int(ev.get("window_batch", 2))},
  }


# ----------------------------------------------------------------------------- evaluation hook

# The evaluator, swappable: `fn(model, variables, config, mesh, workdir, step) -> metrics`
# with at least 'mIoU', 'mAcc', 'aAcc'. None: psp_jax.evaluate.evaluator.evaluate_split.
EVALUATE_FN: Callable | None = None


def _local_copy(tree):
  """This process's copy of replicated arrays, on one local device (what an ordinary jit
  outside the mesh can read, also on multi-host meshes)."""
  return jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)


def default_evaluate(model, variables, config, mesh, workdir, step) -> dict:
  from psp_jax.evaluate.evaluator import evaluate_split  # pylint: disable=import-outside-toplevel
  params = inspect.signature(evaluate_split).parameters
  kwargs: dict[str, Any] = {}
  if "mesh" in params:
    kwargs["mesh"] = mesh
  else:
    variables = _local_copy(variables)
  if "workdir" in params:
    kwargs["workdir"] = workdir
  if "step" in params:
    kwargs["step"] = step
  if "progress" in params:
    kwargs["progress"] = jax.process_index() == 0
  return evaluate_split(model, variables, config, **kwargs)


class PredictionLogger:
  """A few validation images with their label and predicted masks, side by side, to
  TensorBoard (process 0 only; one sliding-window predictor compiled once per run)."""

  def __init__(self, model, config, data_cfg, dataset, palette: np.ndarray, count: int):
    self.count = count
    self.palette = palette
    self.samples = []
    self.predictor = None
    if count <= 0 or jax.process_index() != 0:
      return
    from psp_jax.data import eval_iterator  # pylint: disable=import-outside-toplevel
    from psp_jax.evaluate.evaluator import inference_settings  # pylint: disable=import-outside-toplevel
    from psp_jax.evaluate.inference import SlidingWindowPredictor  # pylint: disable=import-outside-toplevel
    split = config.eval.get("split", "validation")
    for batch in eval_iterator(data_cfg, split, process_index=0, process_count=1, dataset=dataset):
      for i in range(len(batch["valid"])):
        if batch["valid"][i] and len(self.samples) < count:
          h, w = int(batch["height"][i]), int(batch["width"][i])
          self.samples.append((batch["image"][i, :h, :w], batch["label"][i, :h, :w]))
      if len(self.samples) >= count:
        break
    self.mean = np.asarray(config.data.mean, np.float32)
    self.std = np.asarray(config.data.std, np.float32)
    self.predictor = SlidingWindowPredictor(lambda v, x: model.apply(v, x, train=False), None,
                                            dataset.num_classes,
                                            inference_settings(config.eval, config.data))

  def log(self, writer: logging_utils.MetricWriter, variables, step: int) -> None:
    if self.predictor is None or not self.samples:
      return
    from psp_jax.visualize import colorize  # pylint: disable=import-outside-toplevel
    self.predictor.variables = _local_copy(variables)
    for k, (image, label) in enumerate(self.samples):
      pred = self.predictor.predict(image, normalized=True)
      rgb = np.clip((image * self.std + self.mean) * 255.0, 0, 255).astype(np.uint8)
      panel = np.concatenate([rgb, colorize(label, self.palette), colorize(pred, self.palette)], 1)
      writer.image(step, f"eval/prediction_{k}", panel)


# ----------------------------------------------------------------------------- metrics on device

def _zero_accumulator(mesh, keys=SUMMED_METRICS) -> dict:
  acc = {"sums": {k: jnp.zeros((), jnp.float32) for k in keys},
         "count": jnp.zeros((), jnp.int32), "invalid": jnp.zeros((), jnp.int32),
         "bad_step": jnp.full((), -1, jnp.int32), "bad_loss": jnp.zeros((), jnp.float32)}
  from psp_jax.parallel import replicate  # pylint: disable=import-outside-toplevel
  return replicate(acc, mesh)


@jax.jit
def _accumulate(acc: dict, metrics: dict, step: jnp.ndarray) -> dict:
  loss = metrics["loss"]
  first_bad = (acc["bad_step"] < 0) & ~jnp.isfinite(loss)
  return {"sums": {k: v + metrics[k].astype(jnp.float32) for k, v in acc["sums"].items()},
          "count": acc["count"] + 1,
          "invalid": acc["invalid"] + metrics["invalid_label_pixels"].astype(jnp.int32),
          "bad_step": jnp.where(first_bad, step.astype(jnp.int32), acc["bad_step"]),
          "bad_loss": jnp.where(first_bad, loss, acc["bad_loss"])}


def check_health(acc_host: dict, *, last_good: int | None, checkpoint_dir: pathlib.Path, step: int,
                 num_classes: int | None = None, ignore_label: int = IGNORE_LABEL,
                 labels_hint: str | None = None) -> None:
  """Raise NonFiniteLossError / InvalidLabelsError from a fetched accumulator."""
  bad = int(acc_host["bad_step"])
  if bad >= 0:
    where = (f"the last good checkpoint is step {last_good} in {checkpoint_dir}" if last_good is not None
             else "no checkpoint was written")
    raise NonFiniteLossError(
        f"loss is {float(acc_host['bad_loss'])} (not finite) at step {bad}: training stopped and "
        f"nothing from step {bad} on was saved; {where}. Lower optim.base_lr, enable "
        "optim.grad_clip_norm, or check the input data of that step.")
  invalid = int(acc_host["invalid"])
  if invalid > 0:
    hint = labels_hint or (f"neither in [0, {num_classes}) nor the ignore label {ignore_label}: the "
                           "labels do not match data.num_classes / model.num_classes or the "
                           "dataset's label mapping is wrong")
    raise InvalidLabelsError(
        f"{invalid} label pixels in the training batches up to step {step} are outside the classes "
        f"({hint}).")


# ----------------------------------------------------------------------------- preemption

class PreemptionWatcher:
  """SIGTERM -> a flag checked between steps. With several processes the JAX preemption
  service (jax.distributed's own SIGTERM notifier) makes every process agree on the step."""

  def __init__(self):
    self.requested = False
    self._previous = None
    self.multiprocess = jax.process_count() > 1
    if not self.multiprocess:
      try:
        self._previous = signal.signal(signal.SIGTERM, self._handler)
      except ValueError:  # not the main thread: no handler, preemption not watched
        self._previous = None

  def _handler(self, signum, frame):  # pylint: disable=unused-argument
    self.requested = True

  def reached(self, step: int) -> bool:
    if self.multiprocess:
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
      try:
        return bool(multihost_utils.reached_preemption_sync_point(step))
      except RuntimeError:
        return False
    return self.requested

  def close(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None


# ----------------------------------------------------------------------------- tasks

@dataclasses.dataclass
class Task:
  """What differs between training a PSPNet and a CascadePSP refinement module; the loop
  (schedule, checkpoints, resume, preemption, logging, evaluation cadence) is shared.

  make_step(optimizer, mesh) -> step(state, *arrays) -> (state, metrics); batch_arrays maps a
  host batch of the task's iterator to those arrays (numpy, global batch); summed_metrics are
  the step metrics averaged over each log interval; evaluate(model, variables, config, mesh,
  workdir, step) -> metrics holding eval_metrics, of which best_metric (higher is better)
  picks checkpoints_best; labels_hint says what valid labels are (for the health check).
  """
  name: str
  model: Any
  meta: dict
  train_iterator: Any
  make_step: Callable
  batch_arrays: Callable
  evaluate: Callable
  summed_metrics: tuple[str, ...]
  eval_metrics: tuple[str, ...]
  best_metric: str
  labels_hint: str
  progress: dict  # progress-bar field -> metric name
  optional_modules: tuple[str, ...] = ()
  predictions: Any = None  # .log(writer, variables, step) or None


def segmentation_task(config, data_cfg, model, evaluate: Callable, global_batch: int) -> Task:
  """Semantic segmentation (PSPNet / dilated FCN): images + labels, cross-entropy with the
  auxiliary loss, mIoU by sliding-window evaluation."""
  dataset = prepare_dataset(data_cfg)
  num_classes = int(config.model.num_classes)
  if num_classes != dataset.num_classes:
    raise ValueError(f"model.num_classes={num_classes} but the dataset has {dataset.num_classes} classes")
  ignore_label = int(_get(config.data, "ignore_label", IGNORE_LABEL))
  palette = class_palette(config.data, dataset)
  from psp_jax.data import train_iterator  # pylint: disable=import-outside-toplevel

  def make_step(optimizer, mesh):
    return make_train_step(  # looked up at call time (tests wrap it)
        model, optimizer, mesh, num_classes=num_classes,
        aux_weight=float(config.train.get("aux_weight", 0.4)), ignore_label=ignore_label,
        sync_bn=bool(config.train.get("sync_bn", True)), bn_group_size=config.train.get("bn_group_size"))

  return Task(
      name="segmentation", model=model, meta=checkpoint_meta(config, model, dataset, palette),
      train_iterator=train_iterator(data_cfg, global_batch, dataset=dataset), make_step=make_step,
      batch_arrays=lambda batch: (batch["image"], batch["label"]), evaluate=evaluate,
      summed_metrics=SUMMED_METRICS, eval_metrics=("mIoU", "mAcc", "aAcc"), best_metric="mIoU",
      labels_hint=f"neither in [0, {num_classes}) nor the ignore label {ignore_label}: the labels do "
                  "not match data.num_classes / model.num_classes or the dataset's label mapping is wrong",
      progress={"loss": "loss", "acc": "pixel_acc"}, optional_modules=OPTIONAL_MODULES,
      predictions=PredictionLogger(model, config, data_cfg, dataset, palette,
                                   int(config.eval.get("log_images", 3))))


def make_task(config, data_cfg, model, evaluate_fn: Callable | None, global_batch: int) -> Task:
  """The task of `config.model.name`: 'cascadepsp' trains the refinement module, everything
  else is semantic segmentation."""
  if str(config.model.get("name", "pspnet")) == "cascadepsp":
    from psp_jax.refine.training import refinement_task  # pylint: disable=import-outside-toplevel
    return refinement_task(config, data_cfg, model, evaluate_fn, global_batch)
  return segmentation_task(config, data_cfg, model, evaluate_fn or EVALUATE_FN or default_evaluate,
                           global_batch)


# ----------------------------------------------------------------------------- the run

def _is_every(step: int, every, total: int) -> bool:
  every = int(every or 0)
  return step == total or (every > 0 and step % every == 0)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                       evaluate_fn: Callable | None = None) -> dict:
  """Train (or resume) the run described by `config` in `workdir`; returns the final
  evaluation metrics plus 'step', 'best_step' and 'best_mIoU' (refinement: 'best_IoU'). See
  the module docstring.

  evaluate_fn: `fn(model, variables, config, mesh, workdir, step) -> metrics` replacing the
  full-split evaluator (default: EVALUATE_FN, else psp_jax.evaluate.evaluator.evaluate_split).
  """
  maybe_initialize_distributed(config)
  with contextlib.ExitStack() as stack:
    watcher = PreemptionWatcher()  # early: a SIGTERM while preparing/compiling still saves
    stack.callback(watcher.close)
    return _train_and_evaluate(config, pathlib.Path(workdir).expanduser().absolute(),
                               evaluate_fn, watcher, stack)


def _train_and_evaluate(config, workdir: pathlib.Path, evaluate_fn: Callable | None,
                        watcher: PreemptionWatcher, stack: contextlib.ExitStack) -> dict:
  is_main = jax.process_index() == 0
  if is_main:
    workdir.mkdir(parents=True, exist_ok=True)
  say = (lambda msg: tqdm.write(msg, file=sys.stdout)) if is_main else (lambda msg: None)

  total = int(config.train.steps)
  if total < 1:
    raise ValueError(f"train.steps must be >= 1, got {total}")
  num_devices = config.train.get("num_devices")
  if num_devices and jax.process_count() > 1 and num_devices != jax.device_count():
    raise ValueError("train.num_devices must be None (all devices) with several processes")
  mesh = make_mesh(num_devices)
  global_batch = int(config.train.batch_size)
  per_device = check_global_batch(global_batch, mesh)

  if is_main:
    logging_utils.write_config(workdir, config)
  data_cfg = data_config(config)
  frozen_bn = bool(config.train.get("frozen_bn", False))
  model = build_model(config.model, bn=BNConfig(frozen=frozen_bn))
  task = make_task(config, data_cfg, model, evaluate_fn, global_batch)
  init_rng, train_rng = jax.random.split(jax.random.key(int(config.seed)))

  checkpointer = TrainCheckpointer(workdir, keep=config.train.get("keep_checkpoints", 3),
                                   best_metric=task.best_metric, saved_metrics=task.eval_metrics)
  stack.callback(checkpointer.close)
  stack.callback(checkpointer.wait)  # runs first: in-flight saves complete, even on errors
  resume_step = checkpointer.latest_step()
  variables = ckpt_lib.init_variables(model, init_rng, abstract=resume_step is not None)
  frozen_paths = batchnorm_paths(variables["batch_stats"]) if frozen_bn else ()
  optimizer = make_optimizer(config.optim, variables["params"], total,
                             optional_modules=task.optional_modules, frozen_paths=frozen_paths)
  data_seed = int(data_cfg.seed)
  setup = describe_setup(config, mesh, per_device, optimizer, total, resume_step, data_seed)
  writer = logging_utils.MetricWriter(workdir, enabled=is_main)
  stack.callback(writer.close)
  if is_main:
    (workdir / "setup.txt").write_text(setup + "\n")
    say(f"config:\n{config}\nset-up:\n{setup}")
    writer.text("set-up: " + setup.replace("\n", "\n    "))

  train_iter = task.train_iterator
  if resume_step is not None:
    target = jax.eval_shape(lambda v: create_train_state(v, optimizer.tx, train_rng), variables)
    state = checkpointer.restore(target, mesh, train_iter, resume_step)
    writer.text(f"resumed from {checkpointer.directory}/{resume_step}")
    say(f"resumed from {checkpointer.directory}/{resume_step}")
  else:
    init_ckpt = config.train.get("init_checkpoint") or ""
    if init_ckpt:
      variables, report = ckpt_lib.init_from_checkpoint(variables, init_ckpt, log=None)
      say(report.summary())
      writer.text(report.summary())
    state = create_train_state(variables, optimizer.tx, train_rng, mesh)
  del variables

  meta = task.meta
  train_step = task.make_step(optimizer, mesh)
  predictions = task.predictions
  debug_nan_at = int(config.train.get("debug_nan_at_step", 0) or 0)
  log_every = int(config.train.get("log_every", 50) or 0)
  ckpt_every = int(config.train.get("checkpoint_every", 0) or 0)
  eval_every = int(config.eval.get("every", 0) or 0)

  step = int(jax.device_get(state.step))
  last_saved = resume_step
  final_metrics: dict = {}
  evaluated_at = -1
  acc = _zero_accumulator(mesh, task.summed_metrics)
  bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not is_main,
             dynamic_ncols=True, file=sys.stderr)
  stack.callback(bar.close)
  interval_start, interval_steps, first_step = time.time(), 0, True

  def fetch_and_check():
    host = jax.device_get(acc)
    check_health(host, last_good=last_saved, checkpoint_dir=checkpointer.directory, step=step,
                 labels_hint=task.labels_hint)
    return host

  def run_eval(current: int) -> dict:
    metrics = task.evaluate(model, state.variables, config, mesh, str(workdir), current)
    scalars = {f"eval/{k}": float(metrics[k]) for k in task.eval_metrics if k in metrics}
    writer.scalars(current, scalars)
    if predictions is not None:
      predictions.log(writer, state.variables, current)
    line = f"eval step {current}: " + logging_utils.format_metrics(
        {k.split("/")[1]: v for k, v in scalars.items()})
    writer.text(line)
    say(line)
    checkpointer.save_best(state, dict(meta, step=current), metrics)
    return metrics

  while step < total:
    if watcher.reached(step):
      checkpointer.wait()
      fetch_and_check()
      checkpointer.save(state, train_iter, dict(meta, step=step))
      checkpointer.wait()
      msg = (f"preempted (SIGTERM): saved a checkpoint at step {step} in {checkpointer.directory}; "
             f"run the same command again to resume (exit status {PREEMPTED_EXIT_CODE})")
      writer.text(msg)
      say(msg)
      raise Preempted(step, msg)

    arrays = task.batch_arrays(next(train_iter))
    if debug_nan_at and step + 1 == debug_nan_at:  # the first array is the images
      arrays = (np.full_like(arrays[0], np.nan), *arrays[1:])
    state, metrics = train_step(state, *shard_batch(tuple(arrays), mesh))
    step += 1
    acc = _accumulate(acc, metrics, state.step)
    interval_steps += 1
    bar.update(1)
    if first_step:  # one sync: report compilation + first step apart from the throughput
      jax.block_until_ready(metrics["loss"])
      writer.text(f"step {step}: compiled and ran the first step in {time.time() - interval_start:.1f} s")
      interval_start, interval_steps, first_step = time.time(), 0, False

    is_log = _is_every(step, log_every, total)
    is_ckpt = _is_every(step, ckpt_every, total)
    is_eval = _is_every(step, eval_every, total)
    if not (is_log or is_ckpt or is_eval):
      continue
    host = fetch_and_check()  # raises before anything of a bad step is saved
    if is_log:
      n = max(int(host["count"]), 1)
      elapsed = time.time() - interval_start
      values = {f"train/{k}": float(host["sums"][k]) / n for k in task.summed_metrics}
      values.update({f"train/lr/{g}": float(v) for g, v in optimizer.learning_rates(step - 1).items()})
      if interval_steps:
        values["train/images_per_sec"] = interval_steps * global_batch / max(elapsed, 1e-9)
      values["train/invalid_label_pixels"] = float(host["invalid"])
      writer.scalars(step, values)
      writer.text(f"step {step}/{total}: " + logging_utils.format_metrics(
          {k[len("train/"):]: v for k, v in values.items()}))
      bar.set_postfix({f: f"{values['train/' + k]:.4f}" for f, k in task.progress.items()},
                      refresh=False)
      acc = _zero_accumulator(mesh, task.summed_metrics)
      interval_steps = 0
    if is_ckpt and checkpointer.save(state, train_iter, dict(meta, step=step)):
      last_saved = step
      writer.text(f"checkpoint step {step} -> {checkpointer.directory}/{step}")
    if is_eval:
      final_metrics, evaluated_at = run_eval(step), step
    writer.flush()
    interval_start = time.time()  # throughput excludes checkpointing and evaluation

  if evaluated_at != step:  # resumed after the end: evaluate the final state again
    final_metrics = run_eval(step)
  checkpointer.wait()
  result = dict(final_metrics)
  result.update({"step": step, "best_step": checkpointer.best_step(),
                 f"best_{task.best_metric}": checkpointer.best_metric()})
  return result
