"""Shared helpers for the ablate tests: a small table file and a fake `psp_jax` executor.

The fake executor stands in for the subprocesses (`python -m psp_jax train|evaluate ...`): it
reads the flags of the command and writes the files the real commands write, with metrics that
are a known function of the seed and the overrides, so no training happens.
"""
from __future__ import annotations

import io
import json
import pathlib
import textwrap

TABLE_TEXT = textwrap.dedent('''
    TABLE = dict(
        title="Test table",
        base={"mini": "configs/pspnet.py:synthetic_mini", "paper": "configs/pspnet.py:ade20k_r50"},
        train={"mini": {"train.steps": 7}},
        seeds={"mini": [0, 1], "paper": [0]},
        metrics=["mIoU", "aAcc"],
        metric_labels={"aAcc": "pixel acc"},
        paper_source="made up for the test",
        notes=["a note"],
        rows=[
            dict(name="fcn", label="FCN", train={"model.context": "none"},
                 paper={"mIoU": 37.23, "aAcc": 78.01}),
            dict(name="psp", label="PSP", train={}, paper={"mIoU": 41.68}),
            dict(name="psp_ms", label="PSP+MS", train={}, eval={"eval.scales": (0.5, 1.0)}),
            dict(name="later", label="not yet", blocked="no key for it"),
            dict(name="big", label="paper only", scales=("paper",), train={"model.depth": 101}),
        ],
    )
''')


def write_table(directory: pathlib.Path, text: str = TABLE_TEXT, name: str = "test_table.py") -> pathlib.Path:
  path = directory / name
  path.write_text(text)
  return path


def flag(command, name: str) -> str | None:
  command = list(command)
  if name in command:
    return command[command.index(name) + 1]
  for arg in command:
    if arg.startswith(name + "="):
      return arg.split("=", 1)[1]
  return None


def fake_metrics(command) -> dict:
  """mIoU 0.5 + 0.01 * seed (+0.1 for the PPM, +0.05 for multi-scale); aAcc 0.8 + 0.02 * seed."""
  seed = int(flag(command, "--config.seed"))
  miou = 0.5 + 0.01 * seed
  if flag(command, "--config.model.context") != "none":
    miou += 0.1
  if flag(command, "--config.eval.scales"):
    miou += 0.05
  return {"mIoU": miou, "aAcc": 0.8 + 0.02 * seed, "step": 7}


class FakePspJax:
  """`execute(command, log) -> status` emulating psp-jax train/evaluate.

  fail: {(command kind, workdir suffix)} of calls that exit 137 once (a killed run) after
  writing a checkpoint directory but no result, as an interrupted training would.
  """

  def __init__(self, fail=()):
    self.calls: list[tuple[str, ...]] = []
    self.fail = set(fail)

  def __call__(self, command, log: pathlib.Path) -> int:
    self.calls.append(tuple(command))
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("fake run\nsomething went wrong at step 3\n")
    kind = command[command.index("psp_jax") + 1]
    workdir = pathlib.Path(flag(command, "--workdir"))
    key = (kind, f"{workdir.parent.name}/{workdir.name}")
    if key in self.fail:
      self.fail.discard(key)
      (workdir / "checkpoints" / "3").mkdir(parents=True, exist_ok=True)
      return 137
    if kind == "train":
      assert not (workdir / "train_result.json").exists(), "a finished run was run again"
      workdir.mkdir(parents=True, exist_ok=True)
      (workdir / "train_result.json").write_text(json.dumps(fake_metrics(command)))
    elif kind == "recompute-bn":
      assert (workdir / "train_result.json").exists(), "BN recomputed before training finished"
      (workdir / "fake_recomputed").write_text("1")
    else:
      assert (workdir / "train_result.json").exists(), "evaluated before training finished"
      refiner = flag(command, "--config.eval.refine.checkpoint")
      if refiner is not None:
        assert (pathlib.Path(refiner) / "train_result.json").exists(), "refined before the refiner trained"
      out = pathlib.Path(flag(command, "--output"))
      out.parent.mkdir(parents=True, exist_ok=True)
      out.write_text(json.dumps(fake_metrics(command)))
    return 0


def run_plan(plan, fake):
  """Run `plan` with the fake executor: (runner Summary, console output)."""
  from psp_jax.ablate import runner  # pylint: disable=import-outside-toplevel
  out = io.StringIO()
  summary = runner.Runner(plan, execute_fn=fake, out=out).run()
  return summary, out.getvalue()
