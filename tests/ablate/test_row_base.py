"""Rows with their own base config (another model family) and dotted metrics ('crf.mIoU')."""
import io
import json
import textwrap

import pytest
from ablate_fixtures import FakePspJax, flag, write_table

from psp_jax.ablate import collect, plan as plan_lib, report, runner
from psp_jax.ablate.table import TableError, load_table

TWO_FAMILIES = textwrap.dedent('''
    TABLE = dict(
        title="Two families",
        base={"mini": "configs/pspnet.py:synthetic_mini"},
        seeds={"mini": [0]},
        metrics=["mIoU", "crf.mIoU"],
        rows=[
            dict(name="psp", train={}),
            dict(name="v3", base="configs/deeplab.py:deeplabv3_synthetic_mini",
                 train={"model.image_pooling": False}),
            dict(name="v3_crf", base={"mini": "configs/deeplab.py:deeplabv3_synthetic_mini"},
                 train={"model.image_pooling": False}, eval={"eval.crf": "v2_resnet"}),
        ],
    )
''')


def test_a_row_base_names_the_config_its_commands_train_and_evaluate(tmp_path):
  plan = plan_lib.make_plan(load_table(write_table(tmp_path, TWO_FAMILIES), "mini"), tmp_path / "w")
  configs = {r.run_id.split("-")[0]: flag(r.command, "--config") for r in plan.runs}
  # v3 and v3_crf share one training run (same base, same train overrides); psp has its own
  assert configs == {"psp": "configs/pspnet.py:synthetic_mini",
                     "v3": "configs/deeplab.py:deeplabv3_synthetic_mini"}
  crf = next(e for e in plan.evaluations if e.row == "v3_crf")
  assert crf.run.run_id.startswith("v3-") and flag(crf.command, "--config") == configs["v3"]
  # the same overrides on another base are another run
  assert plan_lib.run_key("configs/pspnet.py:synthetic_mini", {}) != plan_lib.run_key(
      "configs/deeplab.py:deeplabv3_synthetic_mini", {})


def test_row_overrides_are_checked_against_the_rows_own_base(tmp_path):
  # model.image_pooling is a DeepLabV3 field; on the PSPNet base it would also exist, but
  # model.multi_grid does not: the error names the row
  text = TWO_FAMILIES.replace('dict(name="psp", train={})', 'dict(name="psp", train={"model.multi_grid": (1,)})')
  with pytest.raises(TableError, match=r"row 'psp'.*model\.multi_grid"):
    plan_lib.make_plan(load_table(write_table(tmp_path, text), "mini"), tmp_path / "w")
  bad = TWO_FAMILIES.replace('base="configs/deeplab.py:deeplabv3_synthetic_mini"', 'base="configs/deeplab.py"')
  with pytest.raises(TableError, match=r"row 'v3' 'base': must be 'FILE.py:NAME'"):
    load_table(write_table(tmp_path, bad), "mini")


class _WithCRF(FakePspJax):
  """The fake executor, plus a 'crf' section in evaluations that set eval.crf."""

  def __call__(self, command, log):
    rc = super().__call__(command, log)
    if flag(command, "--config.eval.crf"):
      out = flag(command, "--output")
      data = json.loads(open(out).read())
      data["crf"] = {"mIoU": data["mIoU"] + 0.02}
      with open(out, "w") as f:
        json.dump(data, f)
    return rc


def test_dotted_metrics_read_nested_values_and_the_report_lists_row_bases(tmp_path):
  plan = plan_lib.make_plan(load_table(write_table(tmp_path, TWO_FAMILIES), "mini"), tmp_path / "w")
  runner.Runner(plan, execute_fn=_WithCRF(), out=io.StringIO()).run()
  results = {r.row.name: r for r in collect.collect(plan)}
  crf = results["v3_crf"]
  assert crf.cells["crf.mIoU"].values[0] == pytest.approx(crf.cells["mIoU"].values[0] + 2.0)
  # no CRF in that row's evaluation: its CRF column is empty ('–'), which is not a problem
  assert results["v3"].cells["crf.mIoU"].n == 0 and results["v3"].problems == []
  assert collect.not_applicable({"mIoU": 1}, "crf.mIoU") and collect.not_applicable({}, "refine.mIoU")
  # ... but a CRF entry without the metric, or a missing plain metric, is one
  assert not collect.not_applicable({"crf": {}}, "crf.mIoU") and not collect.not_applicable({}, "mIoU")
  assert not collect.not_applicable({}, "cost.params")
  text = report.markdown(plan, list(results.values()), "psp-jax ablate ...")
  assert "| `v3` | `configs/deeplab.py:deeplabv3_synthetic_mini` |" in text
  assert "rows naming their own base are listed below" in text
  assert collect.metric_value({"a": {"b": 3}}, "a.b") == 3 and collect.metric_value({}, "a.b") is None


def test_evaluation_may_change_only_a_familys_inference_fields(tmp_path):
  ok = TWO_FAMILIES.replace('eval={"eval.crf": "v2_resnet"}', 'eval={"model.output_stride": 8}')
  plan = plan_lib.make_plan(load_table(write_table(tmp_path, ok), "mini"), tmp_path / "w")
  os8 = next(e for e in plan.evaluations if e.row == "v3_crf")
  assert os8.command[-1] == "--config.model.output_stride=8" and os8.run.run_id.startswith("v3-")
  depth = TWO_FAMILIES.replace('eval={"eval.crf": "v2_resnet"}', 'eval={"model.depth": 50}')
  with pytest.raises(TableError, match=r"row 'v3_crf' eval overrides: \['model.depth'\] would change "
                                       r"the trained model; a 'deeplabv3' evaluation may override only "
                                       r"\['model.output_stride'\]"):
    plan_lib.make_plan(load_table(write_table(tmp_path, depth), "mini"), tmp_path / "w")
  steps = TWO_FAMILIES.replace('eval={"eval.crf": "v2_resnet"}', 'eval={"train.steps": 5}')
  with pytest.raises(TableError, match="evaluation overrides may change only eval.* keys"):
    load_table(write_table(tmp_path, steps), "mini")
