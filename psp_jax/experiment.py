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
A config whose `model.name` is 'cascadepsp' is evaluated by
psp_jax.refine.training.evaluate_refinement (IoU, mBA and the input's IoU/mBA).
"""
from __future__ import annotations

import json
import math
import pathlib
import sys

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config: FILE.py:NAME.",
                                          lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory (checkpoints, logs, reports).")
flags.DEFINE_string("split", None, "evaluate: split to evaluate (default: config.eval.split).")
flags.DEFINE_enum("checkpoint", "latest", ["latest", "best"],
                  "evaluate: the latest checkpoint or the best by mIoU.")
flags.DEFINE_string("output", None, "evaluate: also write the metrics to this JSON file "
                    "(written only when the evaluation succeeds).")

TRAIN_RESULT = "train_result.json"  # psp_jax.ablate.plan.TRAIN_RESULT names the same file


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


def _clean(value):
  """JSON-ready: NaN/Inf as null, NumPy scalars and arrays as Python numbers and lists."""
  if isinstance(value, dict):
    return {str(k): _clean(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_clean(v) for v in value]
  if hasattr(value, "tolist"):
    return _clean(value.tolist())
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def write_json(path: pathlib.Path, data: dict) -> None:
  """Write `data` as JSON atomically (a temporary file renamed), so the file exists only whole."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(_clean(data), indent=1) + "\n")
  tmp.replace(path)


def _is_cascadepsp(config) -> bool:
  return config.model.get("name") == "cascadepsp"


def _evaluate(argv):
  del argv
  _require("config"), _require("workdir")
  from psp_jax import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
  from psp_jax.evaluate.evaluator import evaluate_split, metrics_markdown  # pylint: disable=import-outside-toplevel
  config = _CONFIG.value
  workdir = pathlib.Path(FLAGS.workdir)
  if _is_cascadepsp(config):
    from psp_jax.refine import training  # pylint: disable=import-outside-toplevel
    metrics = dict(training.evaluate_refinement(config, str(workdir), checkpoint=FLAGS.checkpoint,
                                                split=FLAGS.split))
    print(training.metrics_markdown(metrics, f"CascadePSP refinement, {FLAGS.checkpoint} checkpoint "
                                             f"(step {metrics.get('step')}), split {metrics['split']}"))
  else:
    path = workdir / "checkpoints_best" if FLAGS.checkpoint == "best" else workdir
    model, variables = ckpt_lib.load(path)
    _, step = ckpt_lib.resolve(path)
    metrics = evaluate_split(model, variables, config, workdir=str(workdir), step=step,
                             split=FLAGS.split)
    print(metrics_markdown(metrics, f"{FLAGS.checkpoint} checkpoint (step {step}), split "
                                    f"{metrics['split']}"))
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
