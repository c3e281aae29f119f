"""`psp-jax train`, `evaluate` and `prepare`: experiments launched from ml_collections configs.

  psp-jax train --config configs/pspnet.py:demo --workdir runs/demo [--config.train.steps=300]
  psp-jax evaluate --config configs/pspnet.py:demo --workdir runs/demo [--split validation]
                   [--checkpoint latest|best] [--config.eval.flip=True] [--output FILE.json]
                   [--allow_mismatch]
  psp-jax prepare --config configs/pspnet.py:camvid_r18 [--config.data.manual_dir=DIR] [--force]

Every config field can be overridden with --config.KEY=VALUE (psp_jax.config_loading): an
unknown key, a value of the wrong type or out of range (psp_jax.config_checks) stops the
command before it starts, naming the full key and what is accepted (exit status 2). Config
files may import their siblings as `configs.<name>`.

`train` holds WORKDIR's lock for the whole run and `evaluate` while it evaluates and writes its
reports (psp_jax.workdir_lock): a second writer is refused, naming the holder. `evaluate`
first compares the checkpoint with the config (model, dataset, classes, normalisation;
psp_jax.checkpoint_match) and stops on differences unless --allow_mismatch, which the reports
then state. `prepare --force` re-prepares a dataset whose source changed.

`train` writes WORKDIR/train_result.json (the final evaluation, step, best step) only after the
run finished: it marks the run done (psp-jax ablate skips such runs). `evaluate` writes its
reports to WORKDIR/eval/ and, with --output, the metrics as one JSON file (written only on
success), so several evaluations of one run (other scales, flip, ...) keep their own files.
The config's task (`config.task`, else the model family's; psp_jax/tasks/) trains and
evaluates: segmentation reports mIoU/mAcc/aAcc per class, refinement IoU and mBA before and after.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

from psp_jax import cli_checks, config_checks, config_loading, reproducibility, workdir_lock
from psp_jax.constants import TRAIN_RESULT
from psp_jax.reports import write_json


def _parser(command: str) -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog=f"psp-jax {command}", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="--config.KEY=VALUE  override any config field (repeatable)")
  p.add_argument("--config", required=True, metavar="FILE.py[:NAME]",
                 help="experiment config (without :NAME, get_config's default variant)")
  p.add_argument("--workdir", required=command != "prepare",
                 help="run directory (checkpoints, logs, reports)")
  if command == "evaluate":
    p.add_argument("--split", default=None, help="split to evaluate (default: config.eval.split)")
    p.add_argument("--checkpoint", choices=["latest", "best"], default="latest",
                   help="the latest checkpoint or the best by the task's metric (segmentation: "
                        "mIoU; refinement: IoU)")
    p.add_argument("--output", default=None, help="also write the metrics to this JSON file "
                   "(written only when the evaluation succeeds)")
    p.add_argument("--allow_mismatch", action="store_true",
                   help="evaluate even if the checkpoint was trained for another model/dataset "
                        "(the reports list the differences)")
  if command == "prepare":
    p.add_argument("--force", action="store_true",
                   help="prepare again even if prepared (e.g. data.manual_dir changed)")
  return p


def parse(command: str, argv: list[str]) -> tuple[argparse.Namespace, config_loading.ConfigDict]:
  """(flags, the config with its overrides applied, checked and locked); UsageError naming the
  flag, key or value otherwise."""
  spec, overrides, rest = config_loading.split_config_args(argv)
  args = cli_checks.parse_args(_parser(command), rest + (["--config", spec] if spec is not None else []))
  loaded = config_loading.load_config(args.config)
  if loaded.note:
    print(f"psp-jax {command}: note: {loaded.note}", file=sys.stderr)
  config_loading.apply_text_overrides(loaded.config, overrides)
  config_checks.check_config(loaded.config, where=f"--config {args.config}")
  loaded.config.lock()
  return args, loaded.config


def _agree_across_processes(ok: bool) -> bool:
  """Process 0's `ok`, on every process (multi-host runs)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  return bool(multihost_utils.broadcast_one_to_all(np.int32(ok)))


def train_main(argv: list[str]) -> int:
  """`psp-jax train`: the run under the workdir's lock (process 0 holds it)."""
  args, config = parse("train", argv)
  workdir = cli_checks.check_dir(args.workdir, "--workdir")
  primary, agree = True, None
  if (config.get("distributed") or {}).get("coordinator_address"):
    import jax  # pylint: disable=import-outside-toplevel
    from psp_jax.parallel import maybe_initialize_distributed  # pylint: disable=import-outside-toplevel
    maybe_initialize_distributed(config)
    primary, agree = jax.process_index() == 0, _agree_across_processes
  with workdir_lock.hold(workdir, "psp-jax train", primary=primary, agree=agree):
    from psp_jax.train import loop  # pylint: disable=import-outside-toplevel
    result = loop.train_and_evaluate(config, workdir)
    if primary:
      write_json(workdir / TRAIN_RESULT, {**(result or {}), "cpu_setting": reproducibility.current()})
  return 0


def _mismatches(workdir: pathlib.Path, checkpoint: str, config) -> tuple[pathlib.Path, list[str]]:
  """(the checkpoint evaluate uses, how it differs from `config`; psp_jax.checkpoint_match)."""
  from psp_jax import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
  from psp_jax import checkpoint_match  # pylint: disable=import-outside-toplevel
  path = workdir / "checkpoints_best" if checkpoint == "best" else workdir
  meta = ckpt_lib.read_meta(path)
  return path, checkpoint_match.differences(meta, config, checkpoint_match.read_run_config(workdir))


def _check_split(config, split: str) -> None:
  """UsageError when the config's dataset has no split `split` (naming the ones it has)."""
  from psp_jax.data import datasets  # pylint: disable=import-outside-toplevel
  splits = sorted(datasets.open_dataset(config.data.copy_and_resolve_references()).sources)
  if split not in splits:
    close = config_loading.did_you_mean(split, splits)
    raise config_loading.ConfigError(
        f"--split {split}: the dataset has no such split; it has {', '.join(splits)}"
        + (f" (did you mean {' or '.join(close)}?)" if close else ""))


def evaluate_main(argv: list[str]) -> int:
  """`psp-jax evaluate`: compare checkpoint and config, evaluate under the workdir's lock."""
  args, config = parse("evaluate", argv)
  from psp_jax import checkpoint_match  # pylint: disable=import-outside-toplevel
  workdir = cli_checks.check_existing(args.workdir, "--workdir", "dir")
  if args.output:
    cli_checks.check_output_file(args.output, "--output")
  with workdir_lock.hold(workdir, "psp-jax evaluate"):
    path, found = _mismatches(workdir, args.checkpoint, config)
    if found and not args.allow_mismatch:
      raise checkpoint_match.mismatch_error(path, found)
    if args.split:
      _check_split(config, args.split)
    started = checkpoint_match.now()
    from psp_jax import tasks  # pylint: disable=import-outside-toplevel
    metrics, markdown = tasks.get_task(config).evaluate_checkpoint(
        config, workdir, checkpoint=args.checkpoint, split=args.split)
    metrics = dict(metrics)
    if found:
      metrics["config_mismatch"] = found
      checkpoint_match.annotate_reports(workdir / "eval", started, found)
      markdown = ("WARNING (--allow_mismatch): the checkpoint does not belong to this config:\n  "
                  + "\n  ".join(found) + "\n\n" + markdown)
    print(markdown)
    if args.output:
      metrics.setdefault("checkpoint", args.checkpoint)
      metrics.setdefault("workdir", str(workdir))
      metrics.setdefault("eval_config", config.eval.to_dict())
      write_json(pathlib.Path(args.output), {**metrics, "cpu_setting": reproducibility.current()})
  return 0


def prepare_main(argv: list[str]) -> int:
  """`psp-jax prepare`: prepare the config's dataset (again with --force)."""
  args, config = parse("prepare", argv)
  from psp_jax.data import datasets  # pylint: disable=import-outside-toplevel
  datasets.prepare(config.data.copy_and_resolve_references(), force=args.force)
  return 0

