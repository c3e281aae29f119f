"""`psp-jax ablate`: run an ablation table (experiments/NAME.py) and collect it.

  psp-jax ablate --table experiments/pspnet_table1.py --scale mini --workdir runs/ablate/t1_mini
  psp-jax ablate --table ... --scale paper --workdir DIR --print-commands > commands.txt
  psp-jax ablate --table ... --scale mini --workdir DIR --seeds 0,1,2 --rows fcn,psp

Each training run is `python -m psp_jax train ...` and each separate evaluation
`python -m psp_jax evaluate ... --output DIR/rows/<row>/seed<S>-<key>.json`, one subprocess at a
time. At mini scale every command runs under the portable CPU setting
(psp_jax/reproducibility.py: XLA capped to AVX2, 2 XLA threads, OpenCV's AVX2 paths), so that the
table comes out the same on any x86-64 CPU with AVX2; --no-portable-cpu runs natively,
--portable-cpu applies the setting at paper scale too. Finished runs are skipped and interrupted
ones resume, so rerunning the same command continues; a failed run is reported, the others go
on, and the exit status is 1 at the end.
Extra --config.KEY=VALUE flags (e.g. --config.data.manual_dir=/data/ade) apply to every run
under the rows' own overrides; they are part of the runs' identity, so pass the same ones each
time. --print-commands prints the commands still to run, one per line (run them anywhere, e.g. on a
cluster, in order: a training run before the evaluations that follow it), then run this
command with --collect-only to make the table. Results: DIR/<table>_<scale>.{md,csv,png}.
"""
from __future__ import annotations

import argparse
import ast
import shlex
import sys

from psp_jax import cli_checks
from psp_jax.ablate import collect, plan as plan_lib, report, runner, table as table_lib


def _ints(text: str) -> list[int]:
  try:
    return [int(x) for x in text.split(",") if x.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> list[str]:
  return [x.strip() for x in text.split(",") if x.strip()]


def config_flags(extra: list[str]) -> dict:
  """['--config.KEY=VALUE', ...] -> {KEY: value} (Python literals, else the text)."""
  out = {}
  for arg in extra:
    if not arg.startswith("--config.") or "=" not in arg:
      raise table_lib.TableError(f"unrecognized argument {arg!r} (extra flags must be "
                                 "--config.KEY=VALUE)")
    key, text = arg[len("--config."):].split("=", 1)
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    out[key] = value
  return out


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="psp-jax ablate", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--table", required=True, help="table file, e.g. experiments/pspnet_table1.py")
  p.add_argument("--scale", required=True, choices=table_lib.SCALES,
                 help="'mini' (CPU, minutes) or 'paper' (the paper's recipe)")
  p.add_argument("--workdir", required=True, help="ablation directory (runs, row results, tables)")
  p.add_argument("--print-commands", action="store_true",
                 help="print the commands still to run, one per line, and exit")
  p.add_argument("--collect-only", action="store_true",
                 help="run nothing: collect what is finished into the Markdown/CSV/PNG table")
  p.add_argument("--seeds", type=_ints, default=None,
                 help="comma-separated seeds (default: the table's seeds for the scale)")
  p.add_argument("--portable-cpu", action=argparse.BooleanOptionalAction, default=None,
                 help="run every command under the portable CPU setting (psp_jax/reproducibility.py) "
                      "so that results are the same bits on any AVX2 CPU (default: on at mini "
                      "scale, off at paper scale)")
  p.add_argument("--rows", type=_names, default=None,
                 help="comma-separated row names to run (default: all; the table lists all rows)")
  return p


def ablate_main(argv: list[str]) -> int:
  args, extra = build_parser().parse_known_args(argv)
  command = "psp-jax ablate " + shlex.join(argv)
  cli_checks.check_dir(args.workdir, "--workdir")
  try:
    table = table_lib.select(table_lib.load_table(args.table, args.scale), seeds=args.seeds)
    table = table_lib.with_overrides(table, config_flags(extra))
    if args.rows:
      table_lib.select(table, rows=args.rows)  # unknown names: an error listing the rows
    portable = args.scale == "mini" if args.portable_cpu is None else args.portable_cpu
    full = plan_lib.make_plan(table, args.workdir, portable=portable)
    todo = plan_lib.make_plan(table, args.workdir, rows=args.rows, check_config=False,
                              portable=portable)
    plan_lib.check_workdir(full, claim=not args.print_commands)
  except table_lib.TableError as e:
    print(f"psp-jax ablate: error: {e}", file=sys.stderr)
    return 2
  if args.print_commands:
    for cmd in todo.commands():
      print(shlex.join(todo.shell(cmd)))
    return 0
  summary = None
  if not args.collect_only:
    summary = runner.Runner(todo).run()
  results = collect.collect(full)
  out = report.write_reports(full, results, command)
  print(report.markdown(full, results, command))
  if summary is not None:
    print(f"[ablate] finished in {runner.duration(summary.seconds)}: {summary.trained} training runs "
          f"({summary.train_skipped} already finished), {summary.evaluated} evaluations "
          f"({summary.eval_skipped} already finished), {len(summary.failures)} failed")
    for f in summary.failures:
      print(f"[ablate]   FAILED {f.stage} {f.what} seed {f.seed}: {f.reason}; log {f.log}")
  print(f"[ablate] table: {out['md']}\n[ablate] csv:   {out['csv']}\n[ablate] plot:  {out['png']}")
  return 1 if summary is not None and summary.failures else 0
