"""The runner: finished runs are skipped, interrupted ones rerun (and so resume), failures are
reported and recorded while the other rows go on. The subprocess is a fake (no training)."""
import json

import pytest

from ablate_fixtures import TABLE_TEXT, FakePspJax, flag, run_plan, write_table

from psp_jax.ablate import cli, plan as plan_lib, runner
from psp_jax.ablate.table import TableError, load_table


def _plan(tmp_path):
  return plan_lib.make_plan(load_table(write_table(tmp_path), "mini"), tmp_path / "w")


_run = run_plan


def test_everything_runs_once_then_nothing_reruns(tmp_path):
  plan = _plan(tmp_path)
  fake = FakePspJax()
  summary, out = _run(plan, fake)
  kinds = [c[c.index("psp_jax") + 1] for c in fake.calls]
  assert kinds == ["train", "train", "evaluate"] * 2  # per seed: fcn, psp, then psp's MS evaluation
  assert (summary.trained, summary.evaluated, summary.failures) == (4, 2, [])
  assert "[1/6] train fcn-" in out and "seed 0 (rows: fcn)" in out and "ETA" in out
  assert "[3/6] evaluate row psp_ms seed 0 (eval.scales=(0.5, 1.0))" in out
  assert all(r.finished() for r in plan.runs) and all(
      e.finished() for e in plan.evaluations if e.command)
  again = FakePspJax()
  summary, out = _run(plan, again)
  assert again.calls == [] and (summary.train_skipped, summary.eval_skipped) == (4, 2)


def test_an_interrupted_run_fails_is_recorded_and_resumes_next_time(tmp_path):
  plan = _plan(tmp_path)
  psp0 = plan.runs[1]
  fake = FakePspJax(fail={("train", f"{psp0.run_id}/seed0")})
  summary, out = _run(plan, fake)
  assert [(f.stage, f.what, f.seed, f.returncode) for f in summary.failures] == [
      ("train", psp0.run_id, 0, 137)]
  assert "FAILED after" in out and "exit status 137" in out and "something went wrong at step 3" in out
  assert summary.trained == 3 and summary.evaluated == 1  # the other runs went on
  failed = [e for e in plan.evaluations if e.run is psp0]
  assert {e.row for e in failed} == {"psp", "psp_ms"}
  for e in failed:
    record = json.loads(e.failure_file.read_text())
    assert record["stage"] == "train" and record["returncode"] == 137 and record["log"] == str(psp0.log)
  # the next invocation runs only the interrupted run, with the same command (same workdir:
  # psp-jax train resumes from its checkpoints), then its evaluation
  again = FakePspJax()
  summary, out = _run(plan, again)
  assert again.calls == [psp0.command, next(e.command for e in failed if e.command)]
  assert "resuming from its checkpoints" in out and summary.failures == []
  assert not any(e.failure_file.exists() for e in failed)


def test_a_failed_evaluation_is_reported_and_exit_status_is_nonzero(tmp_path, monkeypatch, capsys):
  table = write_table(tmp_path)
  plan = _plan(tmp_path)
  ms = next(e for e in plan.evaluations if e.row == "psp_ms" and e.seed == 1)
  fake = FakePspJax()

  envs = []

  def execute(command, log, env=None):
    envs.append(env)
    if command == ms.command:
      log.parent.mkdir(parents=True, exist_ok=True)
      log.write_text("Traceback: out of memory\n")
      return 1
    return fake(command, log)

  monkeypatch.setattr(runner, "execute", execute)
  code = cli.ablate_main(["--table", str(table), "--scale", "mini", "--workdir", str(tmp_path / "w")])
  out = capsys.readouterr().out
  assert code == 1
  assert envs and all(e["PJRT_NPROC"] == "2" for e in envs)  # mini: the portable CPU setting
  assert "FAILED evaluate psp_ms seed 1: exit status 1" in out
  assert "failed: seed 1" in out  # the table marks the row
  md = (tmp_path / "w" / "test_table_mini.md").read_text()
  assert "| PSP+MS (`psp_ms`) | 65.00 |" in md and "`psp_ms` seed 1: evaluate: exit status 1" in md


def test_a_result_never_outlives_an_edit_of_its_row(tmp_path):
  plan = _plan(tmp_path)
  _run(plan, FakePspJax())
  edited = TABLE_TEXT.replace('eval={"eval.scales": (0.5, 1.0)}', 'eval={"eval.scales": (0.75, 1.0)}')
  edited = edited.replace('train={"model.context": "none"}', 'train={"model.context": "none", "model.pool": "max"}')
  plan2 = plan_lib.make_plan(load_table(write_table(tmp_path, edited), "mini"), tmp_path / "w")
  fake = FakePspJax()
  summary, _ = _run(plan2, fake)
  kinds = [(c[c.index("psp_jax") + 1], c[c.index("--workdir") + 1].split("/")[-2].split("-")[0]) for c in fake.calls]
  # the FCN row's training changed: retrained; the multi-scale row's evaluation changed: re-evaluated
  assert kinds == [("train", "fcn"), ("evaluate", "psp"), ("train", "fcn"), ("evaluate", "psp")]
  assert summary.train_skipped == 2


RECOMPUTE_TABLE = TABLE_TEXT.replace(
    'dict(name="psp", label="PSP", train={}, paper={"mIoU": 41.68}),',
    'dict(name="psp", label="PSP", train={}, paper={"mIoU": 41.68}, recompute_bn=True),').replace(
    'dict(name="psp_ms", label="PSP+MS", train={},', 'dict(name="psp_ms", label="PSP+MS", train={}, recompute_bn=True,')


def test_recompute_bn_rows_get_the_pass_between_training_and_their_own_evaluation(tmp_path):
  table = load_table(write_table(tmp_path, RECOMPUTE_TABLE), "mini")
  plan = plan_lib.make_plan(table, tmp_path / "w")
  psp_run = next(r for r in plan.runs if r.rows == ("psp", "psp_ms") and r.seed == 0)
  assert psp_run.recompute_command[psp_run.recompute_command.index("psp_jax") + 1] == "recompute-bn"
  assert flag(psp_run.recompute_command, "--workdir") == str(psp_run.workdir) == flag(psp_run.command, "--workdir")
  assert next(r for r in plan.runs if r.rows == ("fcn",)).recompute_command is None
  psp_eval = next(e for e in plan.evaluations if e.row == "psp" and e.seed == 0)
  assert psp_eval.command is not None  # not the run's own final evaluation (running statistics)
  plain = plan_lib.make_plan(load_table(write_table(tmp_path), "mini"), tmp_path / "w")
  assert psp_eval.output != next(e for e in plain.evaluations if e.row == "psp" and e.seed == 0).output
  fake = FakePspJax()
  summary, out = _run(plan, fake)
  kinds = [c[c.index("psp_jax") + 1] for c in fake.calls]
  assert kinds == ["train", "train", "recompute-bn", "evaluate", "evaluate"] * 2
  assert "recompute-bn psp-" in out and summary.failures == []
  assert "4 training runs (0 finished), 2 BN recomputations (0 finished), 4 separate" in out
  from psp_jax.ablate import collect, report  # pylint: disable=import-outside-toplevel
  md = report.markdown(plan, collect.collect(plan), "psp-jax ablate ...")
  assert f"`runs/{psp_run.run_id}`, then `psp-jax recompute-bn` |" in md
  assert psp_run.recompute_marker.is_file() and psp_run.recomputed()
  again = FakePspJax()
  _run(plan, again)
  assert again.calls == []  # the pass ran once


def test_a_failed_recompute_is_recorded_and_rerun_next_time(tmp_path):
  plan = plan_lib.make_plan(load_table(write_table(tmp_path, RECOMPUTE_TABLE), "mini"), tmp_path / "w")
  psp_run = next(r for r in plan.runs if r.rows == ("psp", "psp_ms") and r.seed == 1)
  fake = FakePspJax(fail={("recompute-bn", f"{psp_run.run_id}/seed1")})
  summary, out = _run(plan, fake)
  assert [(f.stage, f.seed) for f in summary.failures] == [("recompute-bn", 1)]
  assert not psp_run.recomputed()
  for e in (e for e in plan.evaluations if e.run is psp_run):
    assert json.loads(e.failure_file.read_text())["stage"] == "recompute-bn" and not e.finished()
  again = FakePspJax()
  _run(plan, again)
  assert [c[c.index("psp_jax") + 1] for c in again.calls] == ["recompute-bn", "evaluate", "evaluate"]


def test_rows_sharing_a_run_must_agree_on_recompute_bn(tmp_path):
  text = TABLE_TEXT.replace('dict(name="psp", label="PSP", train={}, paper={"mIoU": 41.68}),',
                            'dict(name="psp", label="PSP", train={}, paper={"mIoU": 41.68}, recompute_bn=True),')
  with pytest.raises(TableError, match=r"rows \['psp', 'psp_ms'\] share one training run .* recompute_bn"):
    plan_lib.make_plan(load_table(write_table(tmp_path, text), "mini"), tmp_path / "w")
  with pytest.raises(TableError, match="'recompute_bn': must be True or False"):
    load_table(write_table(tmp_path, text.replace("recompute_bn=True", "recompute_bn=1")), "mini")
