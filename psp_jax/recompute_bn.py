"""`psp-jax recompute-bn`: BatchNorm statistics recomputed over the training set (SegNet's
protocol, the tutorial's Scripts/compute_bn_statistics.py), for any segmentation family with BN.

  psp-jax recompute-bn --config configs/segnet.py:segnet_basic_camvid --workdir runs/segnet_basic
      [--step N] [--batch_size B] [--max_batches K] [--config.KEY=VALUE ...]

SegNet trains on batch statistics and tests with statistics recomputed afterwards with the
trained weights: one pass over the training batches in training mode (each BN normalising
with its batch's statistics), averaging every BN's per-batch mean and variance, the variance
made unbiased with m / (m - 1), m the pixels per channel of a batch. Here each batch is one
data-parallel forward with BN statistics synchronised over the global batch and momentum 0,
so a BN's updated running statistics ARE its batch mean and unbiased variance; their average
over the batches is the tutorial's result (same m for every batch: full batches only).

The batches are the config's training pipeline (data.train_split, its augmentation; SegNet's
configs train on whole images) for one epoch, the last partial batch dropped (the tutorial
ran 367 // 4 + 367 % 4 = 94 batches of 4, wrapping around; we run 91). Nothing else changes:
the statistics replace batch_stats in a NEW step of WORKDIR/checkpoints, one after the
newest, holding the source step's whole training state (params, opt_state, rng, step) and
data-iterator position, and its meta plus `bn_recomputed` {from_step, batches, images,
batch_size, split}. Orbax writes it atomically, so `psp-jax evaluate --workdir` (latest)
uses it and a resumed training continues from the source step's state. The best checkpoint
(checkpoints_best/) is not changed. The workdir's lock is held throughout (not during a train).
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
from typing import Any, Callable, Iterable, Mapping

import flax.linen as nn
import jax
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from psp_jax.parallel import DATA_AXIS, data_sharded, replicated

META_KEY = "bn_recomputed"


def batch_statistics_fn(model: nn.Module, mesh: Mesh) -> Callable:
  """jit(shard_map): (variables, images (B, H, W, C) sharded over 'data') -> the batch_stats
  tree whose every BN holds this global batch's mean and unbiased variance."""
  bn = dataclasses.replace(model.bn, momentum=0.0, frozen=False, axis_name=DATA_AXIS, group_size=None)
  model = model.clone(bn=bn)

  def local(variables, images, key):
    rng = jax.random.fold_in(jax.random.wrap_key_data(key), lax.axis_index(DATA_AXIS))
    _, updates = model.apply(variables, images, train=True, return_aux=True, mutable=["batch_stats"],
                             rngs={"dropout": rng})
    return updates["batch_stats"]

  sharded = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(DATA_AXIS), P()), out_specs=P())
  return jax.jit(sharded, in_shardings=(replicated(mesh), data_sharded(mesh), replicated(mesh)),
                 out_shardings=replicated(mesh))


def recompute_batch_stats(model: nn.Module, variables: Mapping[str, Any], batches: Iterable[np.ndarray],
                          mesh: Mesh, *, seed: int = 0) -> tuple[dict, int]:
  """(new batch_stats, number of batches): the average over `batches` (global image batches,
  numpy or jax) of every BN's batch mean and unbiased variance (module docstring).
  ValueError when the model has no BatchNorm or `batches` is empty."""
  if not jax.tree_util.tree_leaves(variables.get("batch_stats", {})):
    raise ValueError(f"recompute-bn: the {type(model).__name__} model has no BatchNorm (its variables hold "
                     f"no batch_stats); there is nothing to recompute")
  stats_fn = batch_statistics_fn(model, mesh)
  variables = {"params": variables["params"], "batch_stats": variables["batch_stats"]}
  total, count = None, 0
  for images in batches:
    key = jax.random.key_data(jax.random.fold_in(jax.random.key(seed), count))
    stats = jax.device_get(stats_fn(variables, images, key))
    stats = jax.tree.map(lambda a: np.asarray(a, np.float64), stats)
    total = stats if total is None else jax.tree.map(np.add, total, stats)
    count += 1
  if count == 0:
    raise ValueError("recompute-bn: no training batch (the split has fewer images than the batch size?)")
  return jax.tree.map(lambda a: (a / count).astype(np.float32), total), count


class _SavedIteratorState:
  """A saved Grain iterator position, re-saved as is (grain's handler calls get_state())."""

  def __init__(self, data: bytes):
    self._data = data

  def get_state(self) -> bytes:
    return self._data


def _training_batches(data_cfg, batch_size: int, max_batches: int | None):
  """One epoch of global training image batches (the last partial one dropped)."""
  from psp_jax.data import train_iterator  # pylint: disable=import-outside-toplevel
  for k, batch in enumerate(train_iterator(data_cfg, batch_size, num_epochs=1)):
    if max_batches is not None and k >= max_batches:
      return
    yield batch["image"]


def recompute_checkpoint(config, workdir: str | pathlib.Path, *, step: int | None = None,
                         batch_size: int | None = None, max_batches: int | None = None,
                         num_devices: int | None = None) -> dict:
  """Recompute the BN statistics of WORKDIR/checkpoints/<step> (default: the newest) over
  `config`'s training data and save them as a new step (module docstring). Returns the
  `bn_recomputed` record plus 'step' (the new step) and 'directory'."""
  import grain  # pylint: disable=import-outside-toplevel
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
  from psp_jax import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
  from psp_jax.models.build import family_of  # pylint: disable=import-outside-toplevel
  from psp_jax.parallel import check_global_batch, make_mesh  # pylint: disable=import-outside-toplevel
  from psp_jax.train import checkpointing  # pylint: disable=import-outside-toplevel

  root = pathlib.Path(workdir).expanduser().absolute() / checkpointing.CHECKPOINT_DIR
  if not root.is_dir():
    raise FileNotFoundError(f"recompute-bn: {root} does not exist (train first, or check --workdir)")
  root, step = ckpt_lib.resolve(root, step)
  model, variables = ckpt_lib.load(root, step)
  family = family_of(model)
  if family.task != "segmentation":
    raise ValueError(f"recompute-bn: model.name={family.name!r} is a {family.task!r} model; only "
                     "segmentation families are supported")
  meta = ckpt_lib.read_meta(root, step)
  data_cfg = config.data.copy_and_resolve_references()
  batch_size = int(batch_size or config.train.batch_size)
  mesh = make_mesh(num_devices or config.train.get("num_devices"))
  check_global_batch(batch_size, mesh)
  batch_stats, batches = recompute_batch_stats(
      model, variables, _training_batches(data_cfg, batch_size, max_batches), mesh,
      seed=int(config.get("seed", 0)))
  split = str(data_cfg.get("train_split", "train"))
  record = {"from_step": int(step), "batches": batches, "images": batches * batch_size,
            "batch_size": batch_size, "split": split}

  state, _ = ckpt_lib.load_variables(root, step, collections=checkpointing.STATE_FIELDS)
  state = {k: v for k, v in state.items() if k in ("params", "opt_state", "step", "rng") and v is not None}
  state["batch_stats"] = batch_stats
  new_step = max(ckpt_lib.resolve(root)[1], step) + 1
  args = {"state": ocp.args.PyTreeSave(state),
          "meta": ocp.args.JsonSave(dict(meta, **{META_KEY: record}))}
  data_file = (root / str(step) / checkpointing.DATA_ITEM /
               f"process_{jax.process_index()}-of-{jax.process_count()}.json")
  if data_file.is_file():
    args[checkpointing.DATA_ITEM] = grain.checkpoint.CheckpointSave(_SavedIteratorState(data_file.read_bytes()))
  manager = ocp.CheckpointManager(
      root, item_names=checkpointing.TRAIN_ITEMS, item_handlers=checkpointing._handlers(True),  # pylint: disable=protected-access
      options=ocp.CheckpointManagerOptions(create=False, enable_async_checkpointing=False,
                                           cleanup_tmp_directories=True))
  with manager:
    manager.save(new_step, args=ocp.args.Composite(**args))
    manager.wait_until_finished()
  return dict(record, step=new_step, directory=str(root / str(new_step)))


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="psp-jax recompute-bn", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="--config.KEY=VALUE  override any config field (repeatable)")
  p.add_argument("--config", required=True, metavar="FILE.py[:NAME]", help="the run's config (its data)")
  p.add_argument("--workdir", required=True, help="the training run directory (holds checkpoints/)")
  p.add_argument("--step", type=int, default=None, help="checkpoint step to start from (default: newest)")
  p.add_argument("--batch_size", type=int, default=None, help="global batch (default: train.batch_size)")
  p.add_argument("--max_batches", type=int, default=None, help="stop after K batches (default: one epoch)")
  return p


def recompute_bn_main(argv: list[str]) -> int:
  """`psp-jax recompute-bn` (module docstring)."""
  from psp_jax import cli_checks, config_loading, workdir_lock  # pylint: disable=import-outside-toplevel
  spec, overrides, rest = config_loading.split_config_args(argv)
  args = _parser().parse_args(rest + (["--config", spec] if spec is not None else []))
  for flag in ("batch_size", "max_batches"):
    if getattr(args, flag) is not None and getattr(args, flag) < 1:
      raise config_loading.ConfigError(f"--{flag}={getattr(args, flag)}: must be an integer >= 1")
  loaded = config_loading.load_config(args.config)
  config_loading.apply_text_overrides(loaded.config, overrides)
  workdir = cli_checks.check_existing(args.workdir, "--workdir", "dir")
  with workdir_lock.hold(workdir, "psp-jax recompute-bn"):
    result = recompute_checkpoint(loaded.config, workdir, step=args.step, batch_size=args.batch_size,
                                  max_batches=args.max_batches)
  print(f"psp-jax recompute-bn: BN statistics of step {result['from_step']} recomputed over "
        f"{result['batches']} batches of {result['batch_size']} ({result['images']} images of split "
        f"{result['split']!r}); saved as step {result['step']} ({result['directory']})")
  return 0


if __name__ == "__main__":
  sys.exit(recompute_bn_main(sys.argv[1:]))
