"""The collected table as Markdown, CSV and a PNG bar chart, with the paper's numbers beside ours.

Markdown: one line per row, `mean ± std` over seeds per metric with the paper's number in the
next column, the number of seeds, the status (failed / not run seeds); then each row's
overrides and training run, the notes, and the exact command that produced the file.
CSV: the same plus every seed's value (`<metric>_seed<S>`), for other tools.
PNG: one panel per metric, bars = our mean with the std as error bar and each seed as a dot,
a diamond = the paper's number.
"""
from __future__ import annotations

import csv
import math
import pathlib

from psp_jax import reproducibility
from psp_jax.ablate import claims as claims_lib
from psp_jax.ablate.collect import COSTS, RowResult
from psp_jax.ablate import plan as plan_lib
from psp_jax.ablate.plan import Plan
from psp_jax.ablate.table import Table

MINI_NOTE = ("Mini scale: a small network on small data so the whole table runs on a CPU in "
             "minutes. Its values are not comparable with the paper's (other data, model and "
             "schedule); compare how the rows order and differ.")


def _num(x: float | None, digits: int = 2) -> str:
  return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _cell(result: RowResult, metric: str) -> str:
  cell = result.cells[metric]
  if cell.n == 0:
    return "–"
  if cell.n == 1:
    return _num(cell.mean)
  return f"{_num(cell.mean)} ± {_num(cell.std)}"


def _n(result: RowResult) -> int:
  return max((c.n for c in result.cells.values()), default=0)


def _overrides(d: dict) -> str:
  return ", ".join(f"`{k}={v!r}`" for k, v in d.items()) or "–"


def paths(plan: Plan) -> dict[str, pathlib.Path]:
  stem = plan.workdir / f"{plan.table.stem}_{plan.table.scale}"
  out = {"md": stem.with_suffix(".md"), "csv": stem.with_suffix(".csv"), "png": stem.with_suffix(".png")}
  if plan.table.costs:
    out["cost_png"] = stem.with_name(stem.name + "_cost.png")
  return out


def markdown(plan: Plan, results: list[RowResult], command: str) -> str:
  t = plan.table
  own_base = any(r.row.base != t.base for r in results)
  lines = [f"# {t.title} ({t.scale} scale)", "",
           f"Made by: `{command}`", "",
           f"CPU setting of every run: {reproducibility.describe(plan.portable)}.", "",
           f"Base config `{t.base}`" + (" (rows naming their own base are listed below)" if own_base else "") + f"; seeds {', '.join(map(str, t.seeds))}; checkpoint `{t.checkpoint}`"
           + (f", split `{t.split}`" if t.split else "")
           + ". Values are the mean ± sample standard deviation over seeds"
           + {100.0: ", in % (the evaluation's fractions x 100)", 1.0: ""}.get(
               t.value_scale, f", x{t.value_scale:g}") + "; "
           + "`n` is the number of seeds with a result.", ""]
  if t.scale == "mini":
    lines += [MINI_NOTE, ""]
  lines.append(f"Paper column: {t.paper_source or 'the table file'}.")
  lines.append("")
  header = ["row"]
  for m in t.metrics:
    header += [t.label(m), f"paper {t.label(m)}"]
  header += ["n", "status"]
  lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (2 * len(t.metrics) + 1) + ["---"]) + "|"]
  for r in results:
    cells = [f"{r.row.label} (`{r.row.name}`)"]
    for m in t.metrics:
      cells += [_cell(r, m), _num(r.row.paper.get(m))]
    cells += [str(_n(r)), r.status]
    lines.append("| " + " | ".join(cells) + " |")
  run_of = {}
  for e in plan.evaluations:
    run_of.setdefault(e.row, e.run.run_id)
  lines += ["", "| row |" + (" base config |" if own_base else "") + " train overrides | eval overrides "
            "| training run |", "|---|" + ("---|" if own_base else "") + "---|---|---|"]
  for r in results:
    lines.append(f"| `{r.row.name}` | " + (f"`{r.row.base}` | " if own_base else "")
                 + f"{_overrides(r.row.train)} | {_overrides(r.row.eval)} | "
                 f"{'`runs/' + run_of[r.row.name] + '`' if r.row.name in run_of else '–'}"
                 + (", then `psp-jax recompute-bn`" if r.row.recompute_bn else "") + " |")
  lines += claims_markdown(t, results)
  lines += costs_markdown(t, results)
  details = [f"- `{r.row.name}` seed {s}: {why}" for r in results for s, why in sorted(r.failed.items())]
  details += [f"- `{r.row.name}` {p}" for r in results for p in r.problems]
  if details:
    lines += ["", "Failures and problems:", *details]
  if t.notes:
    lines += ["", "Notes:", *[f"- {n}" for n in t.notes]]
  return "\n".join(lines) + "\n"


def claims_markdown(table: Table, results: list[RowResult]) -> list[str]:
  """The table's claims with the paired difference over seeds, its 95% interval and the verdict."""
  found = claims_lib.evaluate_claims(table, results)
  if not found:
    return []
  lines = ["", "Claims, tested by the paired difference over seeds (A - B, sign-flipped where lower "
           "is better, so > 0 means A is better; 95% Student-t interval; psp_jax/ablate/claims.py):",
           "", "| claim | metric | paired seeds | difference | 95% interval | verdict |",
           "|---|---|---:|---:|---|---|"]
  for c in found:
    interval = f"[{_num(c.low)}, {_num(c.high)}]" if c.n > 1 else "–"
    metric = table.label(c.metric)
    if c.than_metric != c.metric:
      metric = f"{metric} vs {table.label(c.than_metric)}"
    lines.append(f"| `{c.better}` better than `{c.than}` | {metric} | {c.n} | "
                 f"{_num(c.mean)} | {interval} | **{c.verdict}** |")
  return lines


_COST_DIGITS = {"params_M": 3, "gflops": 3, "train_images_per_s": 1, "forward_ms": 1, "crf_ms": 0, "refine_ms": 0,
                "train_memory_mb": 0}


def costs_markdown(table: Table, results: list[RowResult]) -> list[str]:
  """The cost section of a table with `costs=True`: each row's mean over its seeds."""
  if not table.costs:
    return []
  windows = sorted({r.cost_notes["window"] for r in results if "window" in r.cost_notes})
  memory = sorted({r.cost_notes["memory"] for r in results if "memory" in r.cost_notes})
  lines = ["", "Cost, measured in the same runs (mean over the seeds; timings are of the machine "
           "that ran them, named below; GFLOPs are XLA's count of one forward at batch 1, "
           f"window {', '.join(windows) or '?'}; memory: {', '.join(memory) or '?'}; '–' not "
           "measured, e.g. no CRF in that evaluation):", "",
           "| row | " + " | ".join(label for _, _, label in COSTS) + " |",
           "|---|" + "---:|" * len(COSTS)]
  for r in results:
    cells = [_num(r.costs[key].mean, _COST_DIGITS[key]) if r.costs[key].n else "–" for key, _, _ in COSTS]
    lines.append(f"| `{r.row.name}` | " + " | ".join(cells) + " |")
  machines = sorted({r.cost_notes["machine"] for r in results if "machine" in r.cost_notes})
  lines += ["", "Machine of the timings: " + ("; ".join(machines) or "not recorded")
            + ("" if len(machines) < 2 else " (rows ran on different machines: compare timings "
               "only within one)")]
  return lines


def write_csv(plan: Plan, results: list[RowResult], path: pathlib.Path) -> None:
  t = plan.table
  header = ["row", "label", "status", "n", "cpu_setting"]
  for m in t.metrics:
    header += [f"{m}_mean", f"{m}_std", f"{m}_n", *[f"{m}_seed{s}" for s in t.seeds], f"{m}_paper"]
  if t.costs:
    header += [f"cost_{key}_mean" for key, _, _ in COSTS]
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(header)
    for r in results:
      line = [r.row.name, r.row.label, r.status, _n(r), plan_lib.cpu_setting(plan.portable)]
      for m in t.metrics:
        c = r.cells[m]
        line += [_num(c.mean, 4) if c.n else "", _num(c.std, 4) if c.n > 1 else "", c.n,
                 *[_num(c.values[s], 4) if s in c.values else "" for s in t.seeds],
                 _num(r.row.paper[m]) if m in r.row.paper else ""]
      if t.costs:
        line += [_num(r.costs[key].mean, 4) if r.costs[key].n else "" for key, _, _ in COSTS]
      w.writerow(line)


def write_png(plan: Plan, results: list[RowResult], path: pathlib.Path) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  t: Table = plan.table
  n = len(results)
  fig, axes = plt.subplots(1, len(t.metrics), figsize=(max(4.0, 0.75 * n + 1.5) * len(t.metrics), 4.6),
                           squeeze=False)
  xs = list(range(n))
  for ax, m in zip(axes[0], t.metrics):
    means = [r.cells[m].mean if r.cells[m].n else 0.0 for r in results]
    errs = [r.cells[m].std if r.cells[m].n > 1 else 0.0 for r in results]
    ax.bar(xs, means, yerr=errs, capsize=3, color="#4c72b0", alpha=0.8, label=f"ours ({t.scale})")
    for x, r in zip(xs, results):
      seeds = list(r.cells[m].values.values())
      ax.plot([x] * len(seeds), seeds, "o", color="black", markersize=3,
              label="seeds" if x == 0 and seeds else None)
      if r.cells[m].n == 0:
        ax.text(x, 0.02, "no result", rotation=90, ha="center", va="bottom", fontsize=7,
                transform=ax.get_xaxis_transform())
    paper = [(x, r.row.paper[m]) for x, r in zip(xs, results) if m in r.row.paper]
    if paper:
      ax.plot([p[0] for p in paper], [p[1] for p in paper], "D", color="#dd8452", label="paper")
    values = [v for r in results for v in r.cells[m].values.values()] + [p[1] for p in paper]
    if values:
      lo, hi = min(values), max(values)
      pad = max((hi - lo) * 0.15, 1.0)
      ax.set_ylim(max(lo - pad, 0.0), hi + pad)
    ax.set_xticks(xs, [r.row.name for r in results], rotation=35, ha="right", fontsize=8)
    ax.set_title(t.label(m))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
  fig.suptitle(f"{t.title} ({t.scale}, seeds {', '.join(map(str, t.seeds))})", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_cost_png(plan: Plan, results: list[RowResult], path: pathlib.Path) -> None:
  """Accuracy (the table's first metric, mean ± std over seeds) against GFLOPs per window and
  against eval forward time, one point per row with a result."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  t: Table = plan.table
  metric = t.metrics[0]
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), squeeze=False)
  for ax, (key, label) in zip(axes[0], (("gflops", "GFLOPs per window (XLA)"),
                                        ("forward_ms", "eval forward ms/image (this machine)"))):
    for r in results:
      if not r.cells[metric].n or not r.costs[key].n:
        continue
      x, y = r.costs[key].mean, r.cells[metric].mean
      err = r.cells[metric].std if r.cells[metric].n > 1 else 0.0
      ax.errorbar([x], [y], yerr=[err], fmt="o", capsize=3)
      ax.annotate(r.row.name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel(t.label(metric))
    ax.grid(alpha=0.3)
  fig.suptitle(f"{t.title} ({t.scale}): {t.label(metric)} against cost", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_reports(plan: Plan, results: list[RowResult], command: str) -> dict[str, pathlib.Path]:
  """Write the Markdown, CSV and PNG into the ablation workdir; return their paths."""
  out = paths(plan)
  plan.workdir.mkdir(parents=True, exist_ok=True)
  out["md"].write_text(markdown(plan, results, command))
  write_csv(plan, results, out["csv"])
  write_png(plan, results, out["png"])
  if "cost_png" in out:
    write_cost_png(plan, results, out["cost_png"])
  return out
