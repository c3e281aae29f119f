"""A table's claims ("row A beats row B on metric M"), tested by the paired difference over seeds.

A table file lists them (psp_jax/ablate/table.py):

  claims=[dict(better="ppm", than="fcn", metric="lookalike_mIoU"),
          dict(better="refined", than="refined", metric="IoU", than_metric="IoU_input"), ...],
  lower_is_better=["twin_rate"],     # metrics where smaller wins (default: larger wins)

For each claim, over the seeds both rows have: d_s = (A_s - B_s) (A's `metric`, B's
`than_metric`, which defaults to the same metric), sign-flipped for a
lower-is-better metric so that d > 0 always means "A is better"; the mean of d, its 95%
Student-t interval (n - 1 degrees of freedom), and a verdict:
  holds         the whole interval is above 0
  reversed      the whole interval is below 0 (B is better)
  not resolved  the interval contains 0, or fewer than 2 paired seeds
Pairing by seed removes what the rows share per seed (the data order and initialisation).
"""
from __future__ import annotations

import dataclasses
import math
import statistics

# two-sided 95% Student-t quantiles t_{0.975, df}
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
         9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
         17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000,
         120: 1.980}

HOLDS, REVERSED, UNRESOLVED = "holds", "reversed", "not resolved"


def t975(df: int) -> float:
  """The 0.975 quantile of Student's t with df degrees of freedom (table; conservative between
  entries: the next smaller df's value; 1.96 beyond 120)."""
  if df < 1:
    raise ValueError(f"degrees of freedom must be >= 1, got {df}")
  known = [k for k in _T975 if k <= df]
  return _T975[max(known)] if df <= 120 else 1.96


@dataclasses.dataclass(frozen=True)
class ClaimResult:
  better: str
  than: str
  metric: str
  than_metric: str       # B's metric (== metric unless the claim compares two metrics)
  n: int                 # paired seeds
  mean: float            # mean paired difference, > 0: `better` is better
  low: float             # 95% interval
  high: float
  verdict: str


def paired_test(a: dict[int, float], b: dict[int, float], lower_is_better: bool = False
                ) -> tuple[int, float, float, float, str]:
  """(n, mean, low, high, verdict) of the paired difference a - b over their common seeds."""
  seeds = sorted(set(a) & set(b))
  sign = -1.0 if lower_is_better else 1.0
  d = [sign * (a[s] - b[s]) for s in seeds]
  if not d:
    return 0, math.nan, math.nan, math.nan, UNRESOLVED
  mean = statistics.fmean(d)
  if len(d) < 2:
    return 1, mean, math.nan, math.nan, UNRESOLVED
  half = t975(len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))
  low, high = mean - half, mean + half
  verdict = HOLDS if low > 0 else REVERSED if high < 0 else UNRESOLVED
  return len(d), mean, low, high, verdict


def evaluate_claims(table, results) -> list[ClaimResult]:
  """Every claim of `table` on the collected `results` (psp_jax.ablate.collect.RowResult)."""
  by_row = {r.row.name: r for r in results}
  out = []
  for claim in table.claims:
    if claim["better"] not in by_row or claim["than"] not in by_row:
      continue  # a row not at this scale or not selected
    a = by_row[claim["better"]].cells[claim["metric"]].values
    than_metric = claim.get("than_metric", claim["metric"])
    b = by_row[claim["than"]].cells[than_metric].values
    n, mean, low, high, verdict = paired_test(a, b, claim["metric"] in table.lower_is_better)
    out.append(ClaimResult(claim["better"], claim["than"], claim["metric"], than_metric, n, mean,
                           low, high, verdict))
  return out
