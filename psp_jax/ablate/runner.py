"""Run a plan: every unfinished training run, then its rows' evaluations, one subprocess each.

  * A finished training run (its workdir has train_result.json) or evaluation (its row file
    exists) is skipped, so rerunning `psp-jax ablate` continues where it stopped.
  * An interrupted training run is simply run again: `psp-jax train` resumes from
    WORKDIR/checkpoints by itself.
  * A table's refiner run comes before the seed's other runs; if it fails, the rows that
    refine with it get that failure, and their evaluations are not started.
  * A run of a row with recompute_bn=True gets `psp-jax recompute-bn` after training (once:
    DIR/runs/<run>/seed<S>/recompute_bn.done marks it), before its rows' evaluations.
  * A failure (non-zero exit, or no result file afterwards) is reported with the end of its
    log, recorded in the row's `seed<S>.failed.json` (the collected table marks it) and the
    runner goes on with the other runs; `Runner.run` returns the failures.
Each command's output goes to DIR/logs/; the console gets one line per step with the elapsed
time and an estimate of the time left (mean duration so far x steps left).
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import pathlib
import shlex
import subprocess
import sys
import time
from typing import Callable, TextIO

from psp_jax import reproducibility
from psp_jax.ablate.plan import Evaluation, Plan


def execute(command: tuple[str, ...], log: pathlib.Path, env: dict[str, str] | None = None) -> int:
  """Run `command` with its stdout and stderr appended to `log`; return the exit status.
  env: variables set on top of this process's environment (logged with the command)."""
  log.parent.mkdir(parents=True, exist_ok=True)
  with open(log, "ab") as f:
    f.write(f"\n$ {shlex.join(reproducibility.env_command(command, env or {}))}\n# started {datetime.datetime.now():%Y-%m-%d %H:%M:%S}\n".encode())
    f.flush()
    return subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          env={**os.environ, **env} if env else None, check=False).returncode


def duration(seconds: float) -> str:
  seconds = int(round(seconds))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def log_tail(log: pathlib.Path, lines: int = 15) -> str:
  if not log.is_file():
    return "(no log)"
  text = log.read_text(errors="replace").replace("\r", "\n").splitlines()
  return "\n".join(f"    | {line}" for line in [t for t in text if t.strip()][-lines:])


@dataclasses.dataclass
class Failure:
  stage: str          # 'train' | 'recompute-bn' | 'evaluate'
  what: str           # run id or row name
  seed: int
  returncode: int
  log: pathlib.Path
  reason: str


@dataclasses.dataclass
class Summary:
  trained: int = 0
  train_skipped: int = 0
  evaluated: int = 0
  eval_skipped: int = 0
  failures: list[Failure] = dataclasses.field(default_factory=list)
  seconds: float = 0.0


class Runner:
  """Executes a Plan. `execute(command, log) -> exit status` is swappable (tests)."""

  def __init__(self, plan: Plan, *, execute_fn: Callable[[tuple[str, ...], pathlib.Path], int] | None = None,
               out: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
    self.plan = plan
    self.execute = execute_fn or functools.partial(execute, env=plan.environment)
    self.out = out or sys.stdout
    self.clock = clock
    self.durations: dict[str, list[float]] = {"train": [], "evaluate": []}

  def say(self, message: str) -> None:
    print(f"[ablate] {message}", file=self.out, flush=True)

  # --------------------------------------------------------------- bookkeeping

  def _record_failure(self, evaluation: Evaluation, failure: Failure) -> None:
    evaluation.failure_file.parent.mkdir(parents=True, exist_ok=True)
    evaluation.failure_file.write_text(json.dumps({
        "stage": failure.stage, "seed": failure.seed,
        # the run that failed: the evaluation's own, or one it needs (its refiner)
        "run": evaluation.run.run_id if failure.stage == "evaluate" else failure.what,
        "returncode": failure.returncode, "reason": failure.reason, "log": str(failure.log),
        "time": f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S}"}, indent=1) + "\n")

  def _eta(self, trains_left: int, evals_left: int) -> str:
    """Time left: mean duration so far x steps left, per kind (unmeasured kinds are named)."""
    seconds, unknown = 0.0, []
    for kind, left in (("train", trains_left), ("evaluate", evals_left)):
      if left and self.durations[kind]:
        seconds += left * sum(self.durations[kind]) / len(self.durations[kind])
      elif left:
        unknown.append(f"{left} {'training run' if kind == 'train' else 'evaluation'}{'s' if left > 1 else ''}")
    return f"ETA {duration(seconds)}" + (f" + {' + '.join(unknown)}" if unknown else "")

  def _run_failed(self, summary: Summary, run, failure: Failure, seconds: float) -> None:
    """A training run (or its BN recomputation) failed: every row of it has no result."""
    summary.failures.append(failure)
    for e in self.plan.dependents(run):
      self._record_failure(e, failure)
    self.say(f"  FAILED after {duration(seconds)} ({failure.reason}); log {run.log}:\n{log_tail(run.log)}\n"
             f"  rows {', '.join(run.rows)} have no result for seed {run.seed}; continuing")

  # --------------------------------------------------------------- running

  def _step(self, kind: str, command, log: pathlib.Path, done: Callable[[], bool]) -> tuple[int, float, str]:
    start = self.clock()
    code = self.execute(command, log)
    seconds = self.clock() - start
    reason = ""
    if code != 0:
      reason = f"exit status {code}"
    elif not done():
      reason = "exited 0 but wrote no result file"
      code = code or -1
    if not reason:
      self.durations[kind].append(seconds)
    return code, seconds, reason

  def run(self) -> Summary:
    plan, summary = self.plan, Summary()
    t0 = self.clock()
    trains_left = sum(not r.finished() for r in plan.runs) + sum(not r.recomputed() for r in plan.runs)
    evals_left = sum(bool(e.command) and not e.finished() for e in plan.evaluations)
    total, index = trains_left + evals_left, 0
    self.say(f"{plan.table.title} [{plan.table.scale}]: {len(plan.runs)} training runs "
             f"({sum(r.finished() for r in plan.runs)} finished), "
             + (f"{sum(r.recompute_command is not None for r in plan.runs)} BN recomputations "
                f"({sum(r.recompute_command is not None and r.recomputed() for r in plan.runs)} "
                "finished), " if any(r.recompute_command for r in plan.runs) else "")
             + f"{sum(bool(e.command) for e in plan.evaluations)} separate evaluations "
             f"({sum(bool(e.command) and e.finished() for e in plan.evaluations)} finished), "
             f"seeds {list(plan.table.seeds)}; logs in {plan.workdir / 'logs'}")
    for run in plan.runs:
      evaluations = plan.evaluations_of(run)
      pending = [e for e in evaluations if e.command and not e.finished()]
      if run.finished():
        summary.train_skipped += 1
      else:
        index += 1
        resuming = (run.workdir / "checkpoints").is_dir()
        self.say(f"[{index}/{total}] train {run.run_id} seed {run.seed} (rows: {', '.join(run.rows)})"
                 + (" - resuming from its checkpoints" if resuming else ""))
        code, seconds, reason = self._step("train", run.command, run.log, run.finished)
        trains_left -= 1
        if reason:
          self._run_failed(summary, run, Failure("train", run.run_id, run.seed, code, run.log, reason),
                           seconds)
          evals_left, total = evals_left - len(pending), total - len(pending)
          continue
        summary.trained += 1
        self.say(f"  done in {duration(seconds)} | elapsed {duration(self.clock() - t0)} | "
                 f"{self._eta(trains_left, evals_left)}")
      if not run.recomputed():
        index += 1
        self.say(f"[{index}/{total}] recompute-bn {run.run_id} seed {run.seed} (rows: {', '.join(run.rows)})")
        code, seconds, reason = self._step("train", run.recompute_command, run.log,
                                           lambda: True)
        trains_left -= 1
        if reason:
          self._run_failed(summary, run, Failure("recompute-bn", run.run_id, run.seed, code, run.log,
                                                 reason), seconds)
          evals_left, total = evals_left - len(pending), total - len(pending)
          continue
        run.recompute_marker.write_text(json.dumps({"command": list(run.recompute_command),
                                                    "seconds": round(seconds, 1)}) + "\n")
        self.say(f"  done in {duration(seconds)} | elapsed {duration(self.clock() - t0)} | "
                 f"{self._eta(trains_left, evals_left)}")
      for e in evaluations:
        if e.command is None:
          e.failure_file.unlink(missing_ok=True)
          continue
        if e.finished():
          summary.eval_skipped += 1
          e.failure_file.unlink(missing_ok=True)
          continue
        index += 1
        missing = [n for n in e.needs if not n.finished()]
        if missing:  # its refiner run failed: recorded when it did; say so again here
          evals_left -= 1
          self.say(f"[{index}/{total}] evaluate row {e.row} seed {e.seed}: skipped, it needs "
                   f"{', '.join(n.run_id for n in missing)} seed {e.seed}, which did not finish")
          continue
        self.say(f"[{index}/{total}] evaluate row {e.row} seed {e.seed} ({', '.join(f'{k}={v}' for k, v in e.overrides.items()) or 'no overrides'})")
        code, seconds, reason = self._step("evaluate", e.command, e.log, e.finished)
        evals_left -= 1
        if reason:
          failure = Failure("evaluate", e.row, e.seed, code, e.log, reason)
          summary.failures.append(failure)
          self._record_failure(e, failure)
          self.say(f"  FAILED after {duration(seconds)} ({reason}); log {e.log}:\n{log_tail(e.log)}")
          continue
        e.failure_file.unlink(missing_ok=True)
        summary.evaluated += 1
        self.say(f"  done in {duration(seconds)} | elapsed {duration(self.clock() - t0)} | "
                 f"{self._eta(trains_left, evals_left)}")
    summary.seconds = self.clock() - t0
    return summary
