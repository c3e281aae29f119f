"""`psp-jax train` and `psp-jax evaluate`: experiments launched from ml_collections configs.

  psp-jax train --config configs/pspnet.py:demo --workdir runs/demo [--config.train.steps=300]
  psp-jax evaluate --config configs/pspnet.py:demo --workdir runs/demo [--split validation]
                   [--checkpoint latest|best] [--config.eval.flip=True] [--output FILE.json]

Every config field can be overridden with --config.KEY=VALUE; an unknown key or a value of the
wrong type is an error naming the key. Config files may import their siblings as
`configs.<name>` (the folder holding `configs/` is put on the import path).

`train` writes WORKDIR/train_result.json (the final evaluation, step, best step) only after the
run finished: it marks the run done (psp-jax ablate skips such runs). `evaluate` writes its
reports to WORKDIR/eval/ and, with --output, the metrics as one JSON file (written only on
success), so several evaluations of one run (other scales, flip, ...) keep their own files.
The config's task (`config.task`, else the model family's; psp_jax/tasks/) trains and
evaluates: segmentation reports mIoU/mAcc/aAcc per class, refinement IoU and mBA before and after.
"""
from __future__ import annotations

import pathlib
import sys

from absl import app, flags
from ml_collections import config_flags

from psp_jax.constants import TRAIN_RESULT
from psp_jax.reports import write_json

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config: FILE.py:NAME.",
                                          lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory (checkpoints, logs, reports).")
flags.DEFINE_string("split", None, "evaluate: split to evaluate (default: config.eval.split).")
flags.DEFINE_enum("checkpoint", "latest", ["latest", "best"],
                  "evaluate: the latest checkpoint or the best by mIoU.")
flags.DEFINE_string("output", None, "evaluate: also write the metrics to this JSON file "
                    "(written only when the evaluation succeeds).")



def _config_import_path(argv: list[str]) -> None:
  """Put the parent of the config file's folder on sys.path (for `from configs import data`)."""
  for i, arg in enumerate(argv):
    value = None
    if arg.startswith("--config="):
      value = arg.split("=", 1)[1]
    elif arg == "--config" and i + 1 < len(argv):
      value = argv[i + 1]
    if value:
      root = pathlib.Path(value.split(":", 1)[0]).expanduser().resolve().parent.parent
      if str(root) not in sys.path:
        sys.path.insert(0, str(root))


def _require(name: str) -> None:
  if getattr(FLAGS, name) is None:
    raise app.UsageError(f"--{name} is required")


def _train(argv):
  del argv
  _require("config"), _require("workdir")
  from psp_jax.train import checkpointing, loop  # pylint: disable=import-outside-toplevel
  try:
    result = loop.train_and_evaluate(_CONFIG.value, FLAGS.workdir)
  except (loop.TrainingError, checkpointing.CheckpointMismatchError) as e:
    print(f"psp-jax train: error: {e}", file=sys.stderr)
    sys.exit(1)
  import jax  # pylint: disable=import-outside-toplevel
  if jax.process_index() == 0:
    write_json(pathlib.Path(FLAGS.workdir) / TRAIN_RESULT, dict(result or {}))


def _evaluate(argv):
  del argv
  _require("config"), _require("workdir")
  from psp_jax import tasks  # pylint: disable=import-outside-toplevel
  config = _CONFIG.value
  workdir = pathlib.Path(FLAGS.workdir)
  metrics, markdown = tasks.get_task(config).evaluate_checkpoint(
      config, workdir, checkpoint=FLAGS.checkpoint, split=FLAGS.split)
  metrics = dict(metrics)
  print(markdown)
  if FLAGS.output:
    metrics.setdefault("checkpoint", FLAGS.checkpoint)
    metrics.setdefault("workdir", str(workdir))
    metrics.setdefault("eval_config", config.eval.to_dict())
    write_json(pathlib.Path(FLAGS.output), metrics)


def _run(main, command: str, argv: list[str]) -> int:
  _config_import_path(argv)
  if {"-h", "--help"} & set(argv):
    print(__doc__)
    print(FLAGS.module_help(sys.modules[__name__]))
    return 0
  app.run(main, argv=[f"psp-jax {command}", *argv])
  return 0


def train_main(argv: list[str]) -> int:
  return _run(_train, "train", argv)


def evaluate_main(argv: list[str]) -> int:
  return _run(_evaluate, "evaluate", argv)
