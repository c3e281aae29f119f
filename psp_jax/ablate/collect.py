"""Gather each row's evaluations over seeds: mean, sample standard deviation, n, and status.

A row's result for one seed is its row file (DIR/rows/<row>/seed<S>-<key>.json). For a row that
uses the training run's own final evaluation, that file is copied from the run's
train_result.json the first time it is collected (so runs launched elsewhere, from
`--print-commands`, are collected the same way).
"""
from __future__ import annotations

import dataclasses
import json
import math
import statistics

from psp_jax.ablate.plan import Evaluation, Plan
from psp_jax.ablate.table import Row


@dataclasses.dataclass
class Cell:
  """One metric of one row: shown values (x table scale) per seed."""
  values: dict[int, float]

  @property
  def n(self) -> int:
    return len(self.values)

  @property
  def mean(self) -> float:
    return statistics.fmean(self.values.values()) if self.values else math.nan

  @property
  def std(self) -> float:
    """Sample standard deviation over seeds (nan with fewer than two)."""
    return statistics.stdev(self.values.values()) if len(self.values) > 1 else math.nan


# The cost columns of a table with `costs=True`: (key, where in the results, label). 'cost' is
# the evaluation's entry (psp_jax/evaluate/evaluator.py:evaluation_cost), 'train_cost' the
# training run's (psp_jax/train/loop.py), read from the run's train_result.json.
COSTS = (("params_M", ("cost", "params"), "parameters (M)"),
         ("gflops", ("cost", "gflops_per_window"), "GFLOPs per window"),
         ("train_images_per_s", ("train_cost", "images_per_s"), "train images/s"),
         ("forward_ms", ("cost", "forward_ms_per_image"), "eval forward ms/image"),
         ("crf_ms", ("cost", "crf_ms_per_image"), "DenseCRF ms/image"),
         ("refine_ms", ("cost", "refine_ms_per_image"), "CascadePSP ms/image"),
         ("train_memory_mb", ("train_cost", "peak_memory_mb"), "peak train memory (MiB)"))
_COST_SCALE = {"params_M": 1e-6}


@dataclasses.dataclass
class RowResult:
  row: Row
  cells: dict[str, Cell]
  failed: dict[int, str]       # seed -> reason
  pending: list[int]           # seeds without a result or a failure (not run yet)
  problems: list[str]          # e.g. a metric missing from a result file
  costs: dict[str, Cell] = dataclasses.field(default_factory=dict)  # COSTS key -> raw values
  cost_notes: dict[str, str] = dataclasses.field(default_factory=dict)  # e.g. the window size

  @property
  def status(self) -> str:
    if self.row.blocked:
      return "not run: " + self.row.blocked
    parts = []
    if self.failed:
      parts.append("failed: seed " + ", ".join(str(s) for s in sorted(self.failed)))
    if self.pending:
      parts.append("not run: seed " + ", ".join(str(s) for s in self.pending))
    return "; ".join(parts) or "ok"


def _read(path) -> dict | None:
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def metric_value(metrics: dict, name: str):
  """metrics[name], or for a dotted name the nested value ('crf.mIoU'); None when absent."""
  value = metrics
  for part in name.split("."):
    value = value.get(part) if isinstance(value, dict) else None
  return value


# Evaluation entries of steps a row may not run (psp_jax/evaluate/post_steps.py): their metrics
# ('crf.mIoU', 'refine.mIoU') are '–' in the rows without them, not a problem.
POST_STEPS = ("crf", "refine")


def not_applicable(metrics: dict, name: str) -> bool:
  """A dotted metric of a post-processing step the evaluation did not run."""
  head = name.split(".", 1)[0]
  return "." in name and head in POST_STEPS and head not in metrics


def row_result_file(evaluation: Evaluation) -> dict | None:
  """The evaluation's metrics, or None when it has none yet."""
  if evaluation.finished():
    return _read(evaluation.output)
  if evaluation.command is None and evaluation.run.finished():
    metrics = _read(evaluation.run.result_file)
    if metrics is not None:
      metrics = dict(metrics, source=str(evaluation.run.result_file))
      evaluation.output.parent.mkdir(parents=True, exist_ok=True)
      tmp = evaluation.output.with_suffix(".tmp")
      tmp.write_text(json.dumps(metrics, indent=1) + "\n")
      tmp.replace(evaluation.output)
      return metrics
  return None


def _collect_costs(evaluation: Evaluation, metrics: dict, seed: int, costs: dict[str, Cell],
                   notes: dict[str, str]) -> None:
  """The seed's cost values: the evaluation's own 'cost', the training run's 'train_cost'."""
  sources = {"cost": metrics.get("cost"),
             "train_cost": metrics.get("train_cost") or (_read(evaluation.run.result_file) or {}).get("train_cost")}
  for key, (source, field), _ in COSTS:
    value = (sources[source] or {}).get(field) if isinstance(sources[source], dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
      costs[key].values[seed] = float(value) * _COST_SCALE.get(key, 1.0)
  if isinstance(sources["cost"], dict) and sources["cost"].get("window"):
    notes["window"] = "x".join(str(v) for v in sources["cost"]["window"])
  for note, field in (("memory", "memory_measured"), ("machine", "machine")):
    if isinstance(sources["train_cost"], dict) and sources["train_cost"].get(field):
      notes[note] = str(sources["train_cost"][field])


def collect(plan: Plan) -> list[RowResult]:
  """One RowResult per row of the plan's table, in table order (collect from a plan of every
  row: rows a plan leaves out show as not run)."""
  table = plan.table
  results = []
  for row in table.rows:
    cells = {m: Cell({}) for m in table.metrics}
    costs = {key: Cell({}) for key, _, _ in COSTS} if table.costs else {}
    cost_notes: dict[str, str] = {}
    failed, pending, problems = {}, [], []
    if not row.blocked:
      by_seed = {e.seed: e for e in plan.evaluations if e.row == row.name}
      for seed in table.seeds:
        e = by_seed.get(seed)
        metrics = row_result_file(e) if e is not None else None
        if metrics is None:
          failure = _read(e.failure_file) if e is not None and e.failure_file.is_file() else None
          if failure is not None:
            failed[seed] = f"{failure.get('stage')}: {failure.get('reason')} (log {failure.get('log')})"
          else:
            pending.append(seed)
          continue
        for m in table.metrics:
          value = metric_value(metrics, m)
          if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            cells[m].values[seed] = float(value) * table.value_scale
          elif not not_applicable(metrics, m):
            problems.append(f"seed {seed}: metric {m!r} is {value!r} in {e.output}")
        if table.costs:
          _collect_costs(e, metrics, seed, costs, cost_notes)
    results.append(RowResult(row=row, cells=cells, failed=failed, pending=pending, problems=problems,
                             costs=costs, cost_notes=cost_notes))
  return results
