"""Collecting finished runs into Markdown, CSV and PNG: mean ± std over seeds, n, paper column."""
import csv
import io
import math

import cv2
import pytest
from ablate_fixtures import FakePspJax, write_table

from psp_jax.ablate import cli, collect, plan as plan_lib, report, runner
from psp_jax.ablate.table import load_table, select


@pytest.fixture
def finished(tmp_path):
  """A table whose runs all finished (fake runs, seeds 0 and 1)."""
  table = write_table(tmp_path)
  plan = plan_lib.make_plan(load_table(table, "mini"), tmp_path / "w")
  runner.Runner(plan, execute_fn=FakePspJax(), out=io.StringIO()).run()
  return table, plan


def test_mean_std_n_per_row_and_status(finished):
  _, plan = finished
  results = {r.row.name: r for r in collect.collect(plan)}
  fcn = results["fcn"].cells["mIoU"]
  assert fcn.values == pytest.approx({0: 50.0, 1: 51.0})  # fractions x 100
  assert fcn.mean == pytest.approx(50.5) and fcn.std == pytest.approx(math.sqrt(0.5)) and fcn.n == 2
  assert results["psp_ms"].cells["mIoU"].mean == pytest.approx(65.5)
  assert results["psp"].cells["aAcc"].values == pytest.approx({0: 80.0, 1: 82.0})
  assert results["psp"].status == "ok" and results["later"].status == "not run: no key for it"
  # the row that takes the training run's own evaluation now has its own file too
  psp = next(e for e in plan.evaluations if e.row == "psp" and e.seed == 1)
  assert psp.command is None and psp.output.is_file() and "train_result.json" in psp.output.read_text()


def test_missing_seeds_show_as_not_run(finished):
  _, plan = finished
  more = plan_lib.make_plan(select(plan.table, seeds=[0, 1, 2]), plan.workdir)
  results = {r.row.name: r for r in collect.collect(more)}
  assert results["fcn"].pending == [2] and results["fcn"].status == "not run: seed 2"
  assert results["fcn"].cells["mIoU"].n == 2


def test_markdown_csv_png_carry_the_numbers_and_the_command(finished, capsys):
  table, plan = finished
  argv = ["--table", str(table), "--scale", "mini", "--workdir", str(plan.workdir), "--collect-only"]
  assert cli.ablate_main(argv) == 0
  out = capsys.readouterr().out
  paths = report.paths(plan)
  assert str(paths["md"]) in out and str(paths["png"]) in out
  md = paths["md"].read_text()
  assert f"Made by: `psp-jax ablate --table {table} --scale mini --workdir {plan.workdir} --collect-only`" in md
  assert "| row | mIoU | paper mIoU | pixel acc | paper pixel acc | n | status |" in md
  assert "| FCN (`fcn`) | 50.50 ± 0.71 | 37.23 | 81.00 ± 1.41 | 78.01 | 2 | ok |" in md
  assert "| PSP (`psp`) | 60.50 ± 0.71 | 41.68 | 81.00 ± 1.41 | – | 2 | ok |" in md
  assert "| not yet (`later`) | – | – | – | – | 0 | not run: no key for it |" in md
  assert "Mini scale" in md and "made up for the test" in md and "- a note" in md
  rows = {r["row"]: r for r in csv.DictReader(paths["csv"].open())}
  assert rows["fcn"]["mIoU_seed0"] == "50.0000" and rows["fcn"]["mIoU_seed1"] == "51.0000"
  assert rows["fcn"]["mIoU_mean"] == "50.5000" and rows["fcn"]["mIoU_std"] == "0.7071"
  assert rows["fcn"]["mIoU_n"] == "2" and rows["fcn"]["mIoU_paper"] == "37.23"
  assert rows["psp"]["aAcc_paper"] == "" and rows["psp_ms"]["mIoU_mean"] == "65.5000"
  image = cv2.imread(str(paths["png"]))
  assert image is not None and image.shape[0] > 200 and image.shape[1] > 400


def test_a_metric_missing_from_a_result_is_named(finished):
  _, plan = finished
  e = next(e for e in plan.evaluations if e.row == "psp_ms" and e.seed == 0)
  e.output.write_text('{"mIoU": 0.7}')
  results = {r.row.name: r for r in collect.collect(plan)}
  assert results["psp_ms"].cells["aAcc"].n == 1
  assert results["psp_ms"].problems == [f"seed 0: metric 'aAcc' is None in {e.output}"]
