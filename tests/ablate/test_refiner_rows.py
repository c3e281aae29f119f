"""Rows refined by a refiner the table trains itself (`refiners` + a row's `refine`): the
refiner run comes first in its seed, the row's evaluation points at that seed's run, and a
failed refiner fails only the rows that need it. The subprocess is a fake (no training)."""
import json

import pytest

from ablate_fixtures import TABLE_TEXT, FakePspJax, flag, run_plan, write_table

from psp_jax.ablate import collect, plan as plan_lib
from psp_jax.ablate.table import TableError, load_table

REFINED_TABLE = TABLE_TEXT.replace(
    'metrics=["mIoU", "aAcc"],',
    'metrics=["mIoU", "aAcc"],\n'
    '        refiners={"mini": {"cpsp": dict(base="configs/cascadepsp.py:demo", '
    'train={"train.steps": 5})}},').replace(
    'dict(name="later",',
    'dict(name="psp_refined", label="PSP + CascadePSP", train={}, refine="cpsp", '
    'eval={"eval.refine.L": 160}),\n            dict(name="later",')


def _plan(tmp_path, text=REFINED_TABLE):
  return plan_lib.make_plan(load_table(write_table(tmp_path, text), "mini"), tmp_path / "w")


_run = run_plan


def test_the_refiner_trains_first_in_each_seed_and_the_row_evaluates_with_it(tmp_path):
  plan = _plan(tmp_path)
  for seed in (0, 1):
    runs = [r for r in plan.runs if r.seed == seed]
    refiner = runs[0]
    assert refiner.run_id.startswith("refiner.cpsp-") and refiner.rows == ("psp_refined",)
    assert flag(refiner.command, "--config") == "configs/cascadepsp.py:demo"
    assert flag(refiner.command, "--config.seed") == str(seed)
    assert flag(refiner.command, "--config.train.steps") == "5"
    e = next(e for e in plan.evaluations if e.row == "psp_refined" and e.seed == seed)
    assert e.needs == (refiner,)
    assert e.run is next(r for r in runs if "psp" in r.rows)  # it shares PSP's training run
    assert flag(e.command, "--config.eval.refine.checkpoint") == str(refiner.workdir)
    assert flag(e.command, "--config.eval.refine.L") == "160"
  # another refiner recipe is another run, and another result file for the row
  other = _plan(tmp_path, REFINED_TABLE.replace('train={"train.steps": 5}', 'train={"train.steps": 6}'))
  key = lambda p: next(e.output for e in p.evaluations if e.row == "psp_refined" and e.seed == 0)  # noqa: E731
  assert key(other) != key(plan)
  # a table without refine rows trains no refiner
  assert not any(r.run_id.startswith("refiner.") for r in _plan(tmp_path, TABLE_TEXT).runs)
  assert not any(r.run_id.startswith("refiner.")
                 for r in plan_lib.make_plan(plan.table, tmp_path / "w", rows=["fcn"]).runs)


def test_commands_and_runner_order_put_the_refiner_before_the_rows_that_need_it(tmp_path):
  plan = _plan(tmp_path)
  kinds = [(c[c.index("psp_jax") + 1], flag(c, "--config")) for c in plan.commands()]
  assert kinds[0] == ("train", "configs/cascadepsp.py:demo")
  fake = FakePspJax()  # its evaluate asserts the refiner run finished first
  summary, _ = _run(plan, fake)
  assert summary.failures == []
  results = {r.row.name: r for r in collect.collect(plan)}
  assert results["psp_refined"].cells["mIoU"].n == 2


def test_a_failed_refiner_fails_only_its_rows_and_is_retried(tmp_path):
  plan = _plan(tmp_path)
  refiner = next(r for r in plan.runs if r.seed == 1 and r.run_id.startswith("refiner."))
  fake = FakePspJax(fail={("train", f"{refiner.run_id}/seed1")})
  summary, out = _run(plan, fake)
  assert [(f.stage, f.what, f.seed) for f in summary.failures] == [("train", refiner.run_id, 1)]
  e = next(e for e in plan.evaluations if e.row == "psp_refined" and e.seed == 1)
  assert not e.finished() and json.loads(e.failure_file.read_text())["run"] == refiner.run_id
  assert not any(flag(c, "--output") == str(e.output) for c in fake.calls)  # never started
  assert "needs refiner.cpsp-" in out
  results = {r.row.name: r for r in collect.collect(plan)}
  assert results["psp_refined"].failed.keys() == {1} and results["psp"].cells["mIoU"].n == 2
  again = FakePspJax()
  summary, _ = _run(plan, again)
  assert summary.failures == [] and e.finished() and not e.failure_file.exists()
  assert [c[c.index("psp_jax") + 1] for c in again.calls] == ["train", "evaluate"]


def test_refiner_mistakes_name_the_table_and_the_row(tmp_path):
  with pytest.raises(TableError, match=r"row 'psp_refined' 'refine': refiner 'nope' is not in"):
    load_table(write_table(tmp_path, REFINED_TABLE.replace('refine="cpsp"', 'refine="nope"')), "mini")
  with pytest.raises(TableError, match="eval.refine.checkpoint comes from the row's `refine` run"):
    load_table(write_table(tmp_path, REFINED_TABLE.replace(
        '"eval.refine.L": 160', '"eval.refine.checkpoint": "x"')), "mini")
  with pytest.raises(TableError, match=r"refiners\['mini'\]\['cpsp'\]: must be dict\(base="):
    load_table(write_table(tmp_path, REFINED_TABLE.replace(
        'dict(base="configs/cascadepsp.py:demo", ', 'dict(bas="configs/cascadepsp.py:demo", ')), "mini")
  with pytest.raises(TableError, match="refiner 'cpsp' train overrides"):
    _plan(tmp_path, REFINED_TABLE.replace('"train.steps": 5', '"train.no_such_key": 5'))
