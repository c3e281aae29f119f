"""From a table to the runs it needs: shared training runs, one evaluation per row and seed.

Layout of an ablation workdir DIR:
  DIR/ablate.json                      which table and scale this DIR belongs to
  DIR/runs/<run>/seed<S>/              one `psp-jax train` workdir (checkpoints, eval/, logs);
                                       a table's refiner (rows with `refine`) is the run
                                       `refiner.<name>-<8 hex digits>`, trained before the
                                       seed's other runs;
                                       `train_result.json` there marks it finished, and
                                       `recompute_bn.done` its `psp-jax recompute-bn` (rows
                                       with recompute_bn=True: a new latest checkpoint step)
  DIR/rows/<row>/seed<S>-<key>.json    the row's evaluation (its own file: rows sharing a
                                       training run never overwrite each other)
  DIR/rows/<row>/seed<S>-<key>.failed.json  why it failed (removed on success)
  DIR/logs/                            output of every command
  DIR/<table>_<scale>.{md,csv,png}     the collected table

`<run>` is `<first row using it>-<8 hex digits>`, the digits a hash of the row's base config
name and the merged train overrides: rows with the same base and train overrides share the run, and editing a
row's train overrides gives a new run instead of silently reusing an old one. Editing the base
config FILE itself does not change the name: use a new DIR then. Likewise `<key>` hashes the
run and the row's evaluation settings, so a result never outlives an edit of its row.

A row with no evaluation overrides (and the table's checkpoint 'latest', no split) takes the
training run's own final evaluation as its result; the others get a `psp-jax evaluate`, as do
rows with recompute_bn=True (their run's final evaluation had the trained running statistics)
and rows with `refine` (their evaluation gets --config.eval.refine.checkpoint=<the seed's
refiner run>, and needs that run finished).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import sys

from psp_jax import reproducibility
from psp_jax.ablate import overrides as ov
from psp_jax.ablate.table import Row, Table, TableError
from psp_jax.constants import TRAIN_RESULT  # written by `psp-jax train` after a successful run

RECOMPUTE_DONE = "recompute_bn.done"  # written by the runner after a successful recompute-bn



@dataclasses.dataclass(frozen=True)
class TrainRun:
  """One `psp-jax train` (one seed), shared by every row with the same train overrides."""
  run_id: str
  seed: int
  overrides: dict
  rows: tuple[str, ...]
  workdir: pathlib.Path
  log: pathlib.Path
  command: tuple[str, ...]
  recompute_command: tuple[str, ...] | None = None  # `psp-jax recompute-bn` after training

  @property
  def result_file(self) -> pathlib.Path:
    return self.workdir / TRAIN_RESULT

  @property
  def recompute_marker(self) -> pathlib.Path:
    return self.workdir / RECOMPUTE_DONE

  def finished(self) -> bool:
    return self.result_file.is_file()

  def recomputed(self) -> bool:
    """True when the run needs no BN recomputation or has had it."""
    return self.recompute_command is None or self.recompute_marker.is_file()


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """The result of one row for one seed: a `psp-jax evaluate` command, or (command None) the
  training run's own final evaluation."""
  row: str
  seed: int
  run: TrainRun
  overrides: dict
  output: pathlib.Path
  log: pathlib.Path
  command: tuple[str, ...] | None
  needs: tuple[TrainRun, ...] = ()  # other runs it reads (a refiner), finished before it runs

  @property
  def failure_file(self) -> pathlib.Path:
    return self.output.with_name(self.output.stem + ".failed.json")

  def finished(self) -> bool:
    return self.output.is_file()


@dataclasses.dataclass(frozen=True)
class Plan:
  table: Table
  workdir: pathlib.Path
  runs: tuple[TrainRun, ...]          # seed-major: every run of the first seed, then the next
  evaluations: tuple[Evaluation, ...]
  blocked: tuple[Row, ...]            # rows listed in the table that cannot run yet
  portable: bool = False              # every command under psp_jax/reproducibility.py's setting

  @property
  def environment(self) -> dict[str, str]:
    """The variables set for every command (on top of the caller's environment)."""
    return reproducibility.portable_overrides() if self.portable else {}

  def shell(self, command: tuple[str, ...]) -> tuple[str, ...]:
    """`command` as one self-contained line: prefixed by `env K=V ...` under the setting."""
    return reproducibility.env_command(command, self.environment)

  def evaluations_of(self, run: TrainRun) -> list[Evaluation]:
    return [e for e in self.evaluations if e.run is run]

  def dependents(self, run: TrainRun) -> list[Evaluation]:
    """The evaluations that have no result without `run`: its own and those that need it."""
    return [e for e in self.evaluations if e.run is run or any(n is run for n in e.needs)]

  def commands(self) -> list[tuple[str, ...]]:
    """The commands still to run, in order (a training run before its evaluations)."""
    out = []
    for run in self.runs:
      if not run.finished():
        out.append(run.command)
      if not run.recomputed():
        out.append(run.recompute_command)
      out += [e.command for e in self.evaluations_of(run) if e.command and not e.finished()]
    return out


def run_key(base: str, train: dict) -> str:
  """8 hex digits identifying a training run's config (the seed is a separate directory)."""
  text = json.dumps({"base": base, "train": train}, sort_keys=True, default=repr)
  return hashlib.sha1(text.encode()).hexdigest()[:8]


def eval_key(run_id: str, evals: dict, checkpoint: str, split: str | None,
             recompute_bn: bool = False, refiner: str = "") -> str:
  """8 hex digits identifying a row's evaluation: its training run and evaluation settings (and,
  only when set, the recomputed BN statistics and the refiner run: the other keys stay those of
  earlier versions)."""
  fields = {"run": run_id, "eval": evals, "checkpoint": checkpoint, "split": split}
  if recompute_bn:
    fields["recompute_bn"] = True
  if refiner:
    fields["refiner"] = refiner
  text = json.dumps(fields, sort_keys=True, default=repr)
  return hashlib.sha1(text.encode()).hexdigest()[:8]


def _python() -> list[str]:
  return [sys.executable, "-m", "psp_jax"]


def _check_eval_model_keys(table: Table, row: Row, base_cfg) -> None:
  """A row's model.* evaluation overrides must be inference fields of its family
  (psp_jax/models/contract.py): they may not change the parameters the run trained."""
  from psp_jax.models.build import get_family  # pylint: disable=import-outside-toplevel
  keys = [k for k in row.eval if k.startswith("model.")]
  if not keys:
    return
  family = get_family(base_cfg.model.name)
  allowed = {f"model.{f}" for f in family.inference_fields}
  bad = [k for k in keys if k not in allowed]
  if bad:
    raise TableError(f"{table.path}: row {row.name!r} eval overrides: {bad} would change the trained "
                     f"model; a {family.name!r} evaluation may override only "
                     f"{sorted(allowed) or 'no model field'} (put the rest in `train`)")


def make_plan(table: Table, workdir: str | pathlib.Path, *, rows: list[str] | None = None,
              check_config: bool = True, portable: bool = False) -> Plan:
  """The runs and evaluations of `table` (only `rows` when given, all by default).

  Run names come from the whole table, so running a subset (--rows) reuses the same runs.
  check_config: load each row's base config and check its overrides against it (TableError).
  portable: run every command under the portable CPU setting (psp_jax/reproducibility.py).
  """
  workdir = pathlib.Path(workdir)
  runnable = [r for r in table.rows if not r.blocked]
  specs = {b: ov.resolve_config_spec(b) for b in {r.base for r in runnable}}
  if check_config:
    base_cfgs = {b: ov.load_base_config(b) for b in specs}
    for row in runnable:
      ov.check_overrides(base_cfgs[row.base], row.train, f"{table.path}: row {row.name!r} train overrides")
      ov.check_overrides(base_cfgs[row.base], {**row.train, **row.eval},
                         f"{table.path}: row {row.name!r} eval overrides")
      _check_eval_model_keys(table, row, base_cfgs[row.base])
  refiner_specs = {r.name: ov.resolve_config_spec(r.base) for r in table.refiners}
  if check_config:
    for r in table.refiners:
      ov.check_overrides(ov.load_base_config(r.base), r.train,
                         f"{table.path}: refiner {r.name!r} train overrides")
  keys: dict[str, str] = {}   # run key -> run id (named after the first row using it)
  users: dict[str, list[str]] = {}
  recompute: dict[str, bool] = {}
  for row in runnable:
    key = run_key(row.base, row.train)
    keys.setdefault(key, f"{row.name}-{key}")
    users.setdefault(key, []).append(row.name)
    if recompute.setdefault(key, row.recompute_bn) != row.recompute_bn:
      raise TableError(f"{table.path}: rows {users[key]} share one training run (same base and train "
                       "overrides) but not the same recompute_bn: set it on all of them or none")
  wanted = set(rows) if rows else {r.name for r in runnable}
  runs, evaluations = [], []
  for seed in table.seeds:
    made: dict[str, TrainRun] = {}
    refiner_runs: dict[str, TrainRun] = {}
    for refiner in table.refiners:  # before the seed's other runs: its rows' evaluations need it
      using = tuple(r.name for r in runnable if r.refine == refiner.name and r.name in wanted)
      if not using:
        continue
      run_id = f"refiner.{refiner.name}-{run_key(refiner.base, refiner.train)}"
      run_dir = workdir / "runs" / run_id / f"seed{seed}"
      refiner_runs[refiner.name] = TrainRun(
          run_id=run_id, seed=seed, overrides=dict(refiner.train), rows=using, workdir=run_dir,
          log=workdir / "logs" / f"{run_id}-seed{seed}.train.log",
          command=(*_python(), "train", "--config", refiner_specs[refiner.name], "--workdir",
                   str(run_dir), f"--config.seed={seed}", *ov.override_flags(refiner.train)))
      runs.append(refiner_runs[refiner.name])
    for row in runnable:
      if row.name not in wanted:
        continue
      key = run_key(row.base, row.train)
      spec = specs[row.base]
      if key not in made:
        run_id = keys[key]
        run_dir = workdir / "runs" / run_id / f"seed{seed}"
        flags = [f"--config.seed={seed}", *ov.override_flags(row.train)]
        made[key] = TrainRun(
            run_id=run_id, seed=seed, overrides=dict(row.train),
            rows=tuple(r for r in users[key] if r in wanted), workdir=run_dir,
            log=workdir / "logs" / f"{run_id}-seed{seed}.train.log",
            command=(*_python(), "train", "--config", spec, "--workdir", str(run_dir), *flags),
            recompute_command=(*_python(), "recompute-bn", "--config", spec, "--workdir", str(run_dir),
                               *flags) if row.recompute_bn else None)
        runs.append(made[key])
      run = made[key]
      refiner = refiner_runs.get(row.refine)
      key = eval_key(run.run_id, row.eval, table.checkpoint, table.split, row.recompute_bn,
                     refiner.run_id if refiner else "")
      output = workdir / "rows" / row.name / f"seed{seed}-{key}.json"
      own_eval = (bool(row.eval) or table.checkpoint != "latest" or table.split is not None
                  or row.recompute_bn or refiner is not None)
      evals = dict(row.eval)
      if refiner is not None:
        evals["eval.refine.checkpoint"] = str(refiner.workdir)
      command = None
      if own_eval:
        command = (*_python(), "evaluate", "--config", spec, "--workdir", str(run.workdir),
                   "--checkpoint", table.checkpoint, "--output", str(output),
                   *(["--split", table.split] if table.split else []),
                   f"--config.seed={seed}", *ov.override_flags(row.train), *ov.override_flags(evals))
      evaluations.append(Evaluation(row=row.name, seed=seed, run=run, overrides=evals,
                                    output=output, command=command,
                                    log=workdir / "logs" / f"{row.name}-seed{seed}.eval.log",
                                    needs=(refiner,) if refiner is not None else ()))
  return Plan(table=table, workdir=workdir, runs=tuple(runs), evaluations=tuple(evaluations),
              blocked=tuple(r for r in table.rows if r.blocked), portable=portable)


def cpu_setting(portable: bool) -> str:
  return "portable" if portable else "native"


def check_workdir(plan: Plan, *, claim: bool) -> None:
  """DIR belongs to one table at one scale and one CPU setting (row files of two tables, or runs
  made under two settings, would mix): raise TableError when DIR/ablate.json names another;
  write it when `claim`. A marker without a CPU setting predates it: its runs were native."""
  marker = plan.workdir / "ablate.json"
  identity = {"table": plan.table.stem, "scale": plan.table.scale}
  cpu = cpu_setting(plan.portable)
  if marker.is_file():
    found = json.loads(marker.read_text())
    if {k: found.get(k) for k in identity} != identity:
      raise TableError(f"--workdir {plan.workdir} holds table {found.get('table')!r} at scale "
                       f"{found.get('scale')!r}, not {identity['table']!r} at {identity['scale']!r}: "
                       "use another --workdir")
    made = found.get("cpu", "native")
    if made != cpu:
      flag = "--portable-cpu" if made == "portable" else "--no-portable-cpu"
      raise TableError(f"--workdir {plan.workdir} holds runs made with the {made} CPU setting, "
                       f"not {cpu} (psp_jax/reproducibility.py): pass {flag} to continue it, "
                       "or use another --workdir")
  elif claim:
    plan.workdir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({**identity, "cpu": cpu, "table_file": str(plan.table.path)},
                                 indent=1) + "\n")
