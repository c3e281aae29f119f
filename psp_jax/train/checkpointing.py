"""Training checkpoints: the latest N steps, the best by mIoU (refinement: IoU), resumable
data iterators.

Layout of a training workdir (both roots are `psp_jax.checkpoint` directories, so
`psp_jax.load(WORKDIR)` / `psp_jax.load(WORKDIR/checkpoints_best)` work for inference):

  WORKDIR/checkpoints/<step>/        every `train.checkpoint_every` steps, at the end and on
                                     SIGTERM; the last `train.keep_checkpoints` are kept
      state/    {'params', 'batch_stats', 'opt_state', 'step', 'rng'}   (Orbax PyTree)
      meta/     model config, full training config, classes, preprocessing   (JSON)
      data/     process_<p>-of-<P>.json: the Grain iterator state of every process
  WORKDIR/checkpoints_best/<step>/   the evaluated step with the highest mIoU or IoU (one kept; Orbax
                                     `best_fn` over the metrics saved with it)
      state/    {'params', 'batch_stats', 'step'}
      meta/     as above, plus 'metrics' {mIoU, mAcc, aAcc} (refinement: {IoU, mBA, ...})

Saving is asynchronous (Orbax copies the arrays to host memory before `save` returns, then
writes in a background thread) and atomic (a step directory appears only when complete).
Restoring places every array with the sharding of the CURRENT mesh, so a checkpoint written on
N devices restores on M devices or on one CPU; the data iterator state depends on the process
count and batch size only. A checkpoint whose arrays do not fit the configured model is
rejected before anything is read, with every mismatched parameter named.

Damaged steps (psp_jax.checkpoint_integrity: a truncated array file, state metadata or
data-iterator JSON ...) are found by `latest_step()`, which validates the steps newest first:
each damaged one is reported (folder, file, problem) and moved to WORKDIR/checkpoints_damaged/,
and the newest whole step is resumed; when no step is whole, CheckpointCorruptError says what
to delete. A damaged best checkpoint is set aside the same way. A whole step that does not fit
the configured model is a CheckpointMismatchError instead, and never falls back.
"""
from __future__ import annotations

import functools
import logging
import os
import pathlib
import shutil
import sys
from typing import Any, Mapping

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import traverse_util
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from psp_jax import checkpoint as ckpt_lib
from psp_jax.checkpoint_integrity import CheckpointCorruptError, Damage, inspect_step
from psp_jax.train.state import TrainState

CHECKPOINT_DIR = "checkpoints"
BEST_DIR = "checkpoints_best"
DAMAGED_DIR = "checkpoints_damaged"
DATA_ITEM = "data"
TRAIN_ITEMS = ckpt_lib.ITEMS + (DATA_ITEM,)
STATE_FIELDS = ("params", "batch_stats", "opt_state", "step", "rng")


class _QuietOrbaxInfo(logging.Filter):
  """Drops Orbax's INFO records (dozens per save under absl.app's INFO verbosity); its
  warnings and errors still show."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or f"{os.sep}orbax{os.sep}" not in record.pathname


logging.getLogger("absl").addFilter(_QuietOrbaxInfo())


class CheckpointMismatchError(ValueError):
  """A checkpoint's arrays do not fit the model/optimiser built from the config."""


def _sync(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
    multihost_utils.sync_global_devices(name)


def _warn(message: str) -> None:
  if jax.process_index() == 0:
    print(f"psp-jax: warning: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- state <-> tree

def state_to_tree(state: TrainState) -> dict[str, Any]:
  return {f: getattr(state, f) for f in STATE_FIELDS}


def tree_to_state(tree: Mapping[str, Any]) -> TrainState:
  return TrainState(**{f: tree[f] for f in STATE_FIELDS})


def abstract_tree(state: TrainState, mesh: Mesh) -> dict[str, Any]:
  """ShapeDtypeStructs of `state` (real or abstract), replicated on `mesh` (restore target)."""
  sharding = NamedSharding(mesh, P())
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding),
                      state_to_tree(state))


# ----------------------------------------------------------------------------- compatibility

def _path_str(path) -> str:
  parts = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        parts.append(str(getattr(k, attr)))
        break
    else:
      parts.append(str(k))
  return "/".join(parts)


def _flat_shapes(tree) -> dict[str, tuple]:
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    shape = getattr(leaf, "shape", None)
    out[_path_str(path)] = tuple(shape) if shape is not None else None
  return out


def check_compatible(saved: Mapping[str, Any], target: Mapping[str, Any], where: str = "") -> None:
  """Raise CheckpointMismatchError naming every array of 'params'/'batch_stats' whose shape
  differs, is missing from, or is extra in the checkpoint `saved` (Orbax metadata tree)
  relative to `target`; then the same for the optimiser state (e.g. SGD vs Adam)."""
  problems = []
  for coll in ("params", "batch_stats"):
    s = {"/".join(k): tuple(v.shape) for k, v in
         traverse_util.flatten_dict(dict(saved.get(coll) or {})).items() if hasattr(v, "shape")}
    t = {"/".join(k): tuple(v.shape) for k, v in
         traverse_util.flatten_dict(dict(target.get(coll) or {})).items()}
    for k in sorted(set(s) | set(t)):
      if k not in s:
        problems.append(f"{coll}/{k}: missing from the checkpoint (model has {t[k]})")
      elif k not in t:
        problems.append(f"{coll}/{k}: in the checkpoint {s[k]} but not in the model")
      elif s[k] != t[k]:
        problems.append(f"{coll}/{k}: checkpoint {s[k]} vs model {t[k]}")
  if problems:
    shown = problems[:30] + ([f"... and {len(problems) - 30} more"] if len(problems) > 30 else [])
    raise CheckpointMismatchError(
        f"checkpoint {where} does not fit the configured model ({len(problems)} mismatched "
        "arrays):\n  " + "\n  ".join(shown) + "\n(model.* or data.num_classes differ from the run "
        "that wrote it; use a fresh --workdir, or train.init_checkpoint to start from it with "
        "the non-fitting layers re-initialised)")
  s_opt = sorted(v for v in _flat_shapes(saved.get("opt_state")).values() if v is not None)
  t_opt = sorted(v for v in _flat_shapes(target.get("opt_state")).values() if v is not None)
  if s_opt != t_opt:
    raise CheckpointMismatchError(
        f"checkpoint {where}: the optimiser state has {len(s_opt)} arrays, the configured "
        f"optimiser {len(t_opt)} (optim.* changed, e.g. name sgd/adam, momentum, frozen_bn); "
        "use a fresh --workdir or train.init_checkpoint")


# ----------------------------------------------------------------------------- managers

def _handlers(with_data: bool) -> dict[str, ocp.CheckpointHandler]:
  handlers = {"state": ocp.PyTreeCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
  if with_data:
    handlers[DATA_ITEM] = grain.checkpoint.CheckpointHandler()
  return handlers


def _best_metric(metrics: Mapping[str, Any], key: str = "mIoU") -> float:
  v = metrics.get(key)
  return float("-inf") if v is None or not np.isfinite(v) else float(v)


class TrainCheckpointer:
  """The two CheckpointManagers of a training workdir (see the module docstring).

  Every process must call every method (saves and restores are collective)."""

  def __init__(self, workdir: str | pathlib.Path, *, keep: int | None = 3,
               enable_async: bool = True, keep_best: bool = True, best_metric: str = "mIoU",
               saved_metrics: tuple[str, ...] = ("mIoU", "mAcc", "aAcc")):
    """best_metric: the evaluation metric (higher is better) that picks the best checkpoint
    ('mIoU' for segmentation, 'IoU' for refinement); saved_metrics: those stored with it."""
    self.metric = best_metric
    self.saved_metrics = tuple(saved_metrics)
    self._validated = False
    workdir = pathlib.Path(workdir).expanduser().absolute()
    self.directory = workdir / CHECKPOINT_DIR
    self.best_directory = workdir / BEST_DIR
    self.manager = ocp.CheckpointManager(
        self.directory, item_names=TRAIN_ITEMS, item_handlers=_handlers(True),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep or None, create=True, enable_async_checkpointing=enable_async,
            cleanup_tmp_directories=True, save_interval_steps=1))
    self.best = None
    if keep_best:
      self.best = ocp.CheckpointManager(
          self.best_directory, item_names=ckpt_lib.ITEMS, item_handlers=_handlers(False),
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, best_fn=functools.partial(_best_metric, key=best_metric), best_mode="max",
              keep_checkpoints_without_metrics=False, create=True,
              enable_async_checkpointing=enable_async, cleanup_tmp_directories=True,
              save_interval_steps=1))

  # -- queries
  def latest_step(self) -> int | None:
    """The newest whole step (None when there is none); on the first call, damaged steps are
    reported and set aside (see the module docstring)."""
    if not self._validated:
      self._validated = True
      self._set_aside_damaged()
    return self.manager.latest_step()

  def _set_aside_damaged(self) -> None:
    damaged: list[Damage] = []
    steps = sorted(self.manager.all_steps(), reverse=True)
    for step in steps:
      damage = inspect_step(self.directory / str(step))
      if damage is None:
        break
      damaged.append(damage)
    if damaged and len(damaged) == len(steps):
      paths = " ".join(str(d.step_dir) for d in damaged)
      raise CheckpointCorruptError(damaged[0], advice=(
          "no whole checkpoint is left"
          + "".join(f"; {d.describe()}" for d in damaged[1:])
          + f". Delete the damaged steps (rm -r {paths}) to train again from step 0, or use a "
          "fresh --workdir"))
    if self.best is not None:
      damaged_best = [inspect_step(self.best_directory / str(s)) for s in self.best.all_steps()]
      damaged += [d for d in damaged_best if d is not None]
    if not damaged:
      return
    _sync("psp_jax: checkpoints validated")  # every process read them before any is moved
    for damage in damaged:
      self._move_aside(damage)
    _sync("psp_jax: damaged checkpoints set aside")
    self.manager.reload()
    if self.best is not None:
      self.best.reload()
    if self.manager.latest_step() is not None and damaged[0].step_dir.parent == self.directory:
      _warn(f"resuming from step {self.manager.latest_step()}, the newest whole checkpoint")

  def _move_aside(self, damage: Damage) -> None:
    """Move a damaged step to WORKDIR/checkpoints_damaged/<manager folder>_<step>[.n]."""
    base = self.directory.parent / DAMAGED_DIR / f"{damage.step_dir.parent.name}_{damage.step_dir.name}"
    target, n = base, 1
    while target.exists():
      target, n = base.with_name(f"{base.name}.{n}"), n + 1
    _warn(f"checkpoint {damage.describe()}; moved it to {target}")
    if jax.process_index() == 0:
      target.parent.mkdir(parents=True, exist_ok=True)
      shutil.move(str(damage.step_dir), str(target))

  def best_step(self) -> int | None:
    return None if self.best is None else self.best.best_step()

  def best_metric(self) -> float | None:
    """The best metric (mIoU by default) of the best checkpoint so far (None when none)."""
    if self.best is None or self.best.best_step() is None:
      return None
    meta = self.best.restore(self.best.best_step(),
                             args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    return (meta or {}).get("metrics", {}).get(self.metric)

  # -- save
  def save(self, state: TrainState, data_iterator, meta: Mapping[str, Any], *,
           force: bool = False) -> bool:
    """Save `state` (at its own step), the data iterator position and `meta`. Returns whether
    a checkpoint was started (False when that step is already saved)."""
    step = int(jax.device_get(state.step))
    if step in self.manager.all_steps():
      return False
    args = {"state": ocp.args.PyTreeSave(state_to_tree(state)),
            "meta": ocp.args.JsonSave(dict(meta))}
    if data_iterator is not None:
      args[DATA_ITEM] = grain.checkpoint.CheckpointSave(data_iterator)
    return bool(self.manager.save(step, args=ocp.args.Composite(**args), force=force))

  def save_best(self, state: TrainState, meta: Mapping[str, Any], metrics: Mapping[str, Any]) -> bool:
    """Offer an evaluated step to the best-by-metric manager (Orbax keeps the better one)."""
    if self.best is None:
      return False
    step = int(jax.device_get(state.step))
    if step in self.best.all_steps():
      return False
    scalars = {k: float(metrics[k]) for k in self.saved_metrics if k in metrics}
    meta = dict(meta, metrics=scalars)
    tree = {"params": state.params, "batch_stats": state.batch_stats, "step": state.step}
    return bool(self.best.save(step, metrics=scalars, args=ocp.args.Composite(
        state=ocp.args.PyTreeSave(tree),
        meta=ocp.args.JsonSave(meta)), force=True))

  # -- restore
  def restore(self, target: TrainState, mesh: Mesh, data_iterator=None,
              step: int | None = None) -> TrainState:
    """The saved state at `step` (default latest), placed replicated on `mesh`, after a shape
    check against `target` (a real or abstract state built from the config). The data
    iterator, if given, is moved to the saved position in place."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint under {self.directory}")
    try:
      return self._restore(target, mesh, data_iterator, step)
    except CheckpointMismatchError as e:
      error: Exception = e
    except (ValueError, OSError, KeyError, TypeError) as e:  # damaged since latest_step()?
      error = CheckpointMismatchError(f"checkpoint {self.directory}/{step} cannot be restored "
                                      f"into the configured training state: {e}")
      error.__cause__ = e
    damage = inspect_step(self.directory / str(step))
    if damage is not None:
      raise CheckpointCorruptError(damage) from error
    raise error

  def _restore(self, target: TrainState, mesh: Mesh, data_iterator, step: int) -> TrainState:
    where = f"{self.directory}/{step}"
    saved = self.manager.item_metadata(step)["state"]
    saved = getattr(saved, "tree", saved)
    if saved is None:
      raise FileNotFoundError(f"checkpoint {where} has no 'state' item")
    abstract = abstract_tree(target, mesh)
    check_compatible(saved, abstract, where)
    args = {"state": ocp.args.PyTreeRestore(
        item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract))}
    if data_iterator is not None:
      data_dir = self.directory / str(step) / DATA_ITEM
      if not data_dir.is_dir():
        raise FileNotFoundError(f"checkpoint {where} has no data iterator state ('{DATA_ITEM}/')")
      mine = data_dir / f"process_{jax.process_index()}-of-{jax.process_count()}.json"
      if not mine.exists():
        found = sorted(p.name for p in data_dir.glob("process_*.json"))
        raise CheckpointMismatchError(
            f"checkpoint {where} holds the data iterator state of another process count ({found}); "
            f"this run has {jax.process_count()} processes. Resume with the same number of "
            "processes (the device count per process may differ)")
      args[DATA_ITEM] = grain.checkpoint.CheckpointRestore(data_iterator)
    out = self.manager.restore(step, args=ocp.args.Composite(**args))
    return tree_to_state(out["state"])

  # -- lifecycle
  def wait(self) -> None:
    self.manager.wait_until_finished()
    if self.best is not None:
      self.best.wait_until_finished()

  def close(self) -> None:
    self.manager.close()
    if self.best is not None:
      self.best.close()
