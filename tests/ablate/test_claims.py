"""Claims of a table: the paired difference over seeds, its 95% interval and the verdict."""
import io
import math
import textwrap

import pytest
from ablate_fixtures import FakePspJax, write_table

from psp_jax.ablate import claims, collect, plan as plan_lib, report, runner
from psp_jax.ablate.table import TableError, load_table


def test_paired_interval_by_hand():
  # d = 2, 4, 3: mean 3, sd 1, t(0.975, 2) = 4.303 -> 3 +- 4.303 / sqrt(3)
  n, mean, low, high, verdict = claims.paired_test({0: 12, 1: 14, 2: 13}, {0: 10, 1: 10, 2: 10})
  half = 4.303 / math.sqrt(3)
  assert (n, mean, verdict) == (3, 3.0, "holds")  # [0.52, 5.48]
  assert (low, high) == pytest.approx((3 - half, 3 + half))
  # d = 1, -1, 3: mean 1, sd 2 -> [1 - 4.97, 1 + 4.97] contains 0
  assert claims.paired_test({0: 11, 1: 9, 2: 13}, {0: 10, 1: 10, 2: 10})[-1] == "not resolved"
  # a consistent gap resolves; flipping the direction reverses it
  a, b = {s: 10.0 + s + 1.0 for s in range(5)}, {s: 10.0 + s + 0.01 * (s % 2) for s in range(5)}
  assert claims.paired_test(a, b)[-1] == "holds"
  assert claims.paired_test(a, b, lower_is_better=True)[-1] == "reversed"
  # pairing: only common seeds count, one pair cannot resolve anything
  assert claims.paired_test({0: 5.0, 3: 1.0}, {0: 4.0, 1: 9.0})[0::4] == (1, "not resolved")
  assert claims.t975(4) == 2.776 and claims.t975(22) == 2.086 and claims.t975(500) == 1.96


TABLE = textwrap.dedent('''
    TABLE = dict(
        title="claims",
        base={"mini": "configs/pspnet.py:synthetic_mini"},
        train={"mini": {"train.steps": 7}},
        seeds={"mini": [0, 1, 2]},
        metrics=["mIoU", "aAcc"],
        lower_is_better=["aAcc"],
        claims=[dict(better="psp", than="fcn", metric="mIoU"),
                dict(better="psp", than="fcn", metric="aAcc")],
        rows=[dict(name="fcn", train={"model.context": "none"}), dict(name="psp", train={})],
    )
''')


def test_report_states_each_claims_verdict(tmp_path):
  plan = plan_lib.make_plan(load_table(write_table(tmp_path, TABLE), "mini"), tmp_path / "w")
  runner.Runner(plan, execute_fn=FakePspJax(), out=io.StringIO()).run()
  results = collect.collect(plan)
  found = claims.evaluate_claims(plan.table, results)
  # fake metrics: PSP's mIoU is 10 points above the FCN's at every seed; aAcc is identical
  assert [(c.metric, c.n, round(c.mean, 6), c.verdict) for c in found] == [
      ("mIoU", 3, 10.0, "holds"), ("aAcc", 3, 0.0, "not resolved")]
  text = report.markdown(plan, results, "psp-jax ablate ...")
  assert "| `psp` better than `fcn` | mIoU | 3 | 10.00 | [10.00, 10.00] | **holds** |" in text


@pytest.mark.parametrize("old,new,needle", [
    ('than="fcn", metric="mIoU"', 'than="fnc", metric="mIoU"', "claims[0]: than='fnc' is not a row"),
    ('than="fcn", metric="mIoU"', 'than="fcn", metric="IoU"', "claims[0]: metric 'IoU' is not one of"),
    ('dict(better="psp", than="fcn", metric="aAcc")', 'dict(better="psp", metric="aAcc")', "claims[1]: must be dict"),
    ('lower_is_better=["aAcc"]', 'lower_is_better=["loss"]', "'lower_is_better': must list some of"),
])
def test_claim_mistakes_name_the_file_and_the_claim(tmp_path, old, new, needle):
  assert old in TABLE
  with pytest.raises(TableError, match=needle.replace("[", r"\[").replace("]", r"\]")):
    load_table(write_table(tmp_path, TABLE.replace(old, new)), "mini")


def test_a_claim_may_compare_two_metrics_of_one_row(tmp_path):
  """than_metric: `better`'s metric against `than`'s other metric, e.g. a refined IoU against
  the same row's input IoU ("refinement beats its input")."""
  text = TABLE.replace('lower_is_better=["aAcc"],\n', '').replace(
      'dict(better="psp", than="fcn", metric="aAcc")',
      'dict(better="psp", than="psp", metric="aAcc", than_metric="mIoU")')
  assert "than_metric" in text and "lower_is_better" not in text
  plan = plan_lib.make_plan(load_table(write_table(tmp_path, text), "mini"), tmp_path / "w")
  runner.Runner(plan, execute_fn=FakePspJax(), out=io.StringIO()).run()
  results = collect.collect(plan)
  found = claims.evaluate_claims(plan.table, results)
  # psp: aAcc 80 + 2 s, mIoU 60 + s -> d = 20 + s over seeds 0-2: mean 21, sd 1
  half = 4.303 / math.sqrt(3)
  assert [(c.metric, c.than_metric, c.n, c.verdict) for c in found] == [
      ("mIoU", "mIoU", 3, "holds"), ("aAcc", "mIoU", 3, "holds")]
  assert (found[1].mean, found[1].low, found[1].high) == pytest.approx((21.0, 21 - half, 21 + half))
  md = report.markdown(plan, results, "psp-jax ablate ...")
  assert "| `psp` better than `psp` | aAcc vs mIoU | 3 | 21.00 |" in md
  assert "| `psp` better than `fcn` | mIoU | 3 | 10.00 |" in md


@pytest.mark.parametrize("claim,needle", [
    ('dict(better="psp", than="psp", metric="mIoU")', "claims[0]: compares row 'psp' with itself"),
    ('dict(better="psp", than="psp", metric="mIoU", than_metric="IoU")',
     "claims[0]: than_metric 'IoU' is not one of"),
    ('dict(better="psp", than="psp", metric="mIoU", than_metric="aAcc")',
     "claims[0]: metric 'mIoU' and than_metric 'aAcc' must both be, or both not be, in lower_is_better"),
    ('dict(better="psp", than="psp", metric="mIoU", versus="aAcc")', "claims[0]: must be dict"),
])
def test_two_metric_claim_mistakes_are_named(tmp_path, claim, needle):
  text = TABLE.replace('dict(better="psp", than="fcn", metric="mIoU"),', claim + ",")
  assert claim in text
  with pytest.raises(TableError, match=needle.replace("[", r"\[").replace("]", r"\]")):
    load_table(write_table(tmp_path, text), "mini")
