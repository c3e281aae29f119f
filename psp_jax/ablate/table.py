"""Ablation tables as data: load `experiments/NAME.py` and check it before anything runs.

A table file is a Python module with one dict, `TABLE`:

  TABLE = dict(
      title="PSPNet Table 1: pyramid pooling",        # report heading
      notes=["...", ...],                              # optional: printed under the table
      base={"mini": "configs/pspnet.py:synthetic_mini",   # base config (FILE:NAME) per scale
            "paper": "configs/pspnet.py:ade20k_r50"},
      train={"mini": {...}, "paper": {...}},           # optional: train overrides of every row
      eval={"paper": {"eval.flip": True}},             # optional: eval overrides of every row
      seeds={"mini": [0, 1], "paper": [0]},            # the `seed` config field of each run
      metrics=["mIoU", "aAcc"],                        # keys of the evaluation JSON to report
                                                       #   (or one list per scale: {"mini": [...],
                                                       #   "paper": [...]})
      metric_labels={"aAcc": "pixel acc"},             # optional display names
      scale=100.0,                                     # optional: shown = value * scale (default
                                                       #   100: evaluations report fractions,
                                                       #   the papers percentages)
      checkpoint="latest",                             # optional: 'latest' | 'best'
      split=None,                                      # optional: evaluation split (None: the
                                                       #   config's eval.split)
      paper_source="paper_numbers.md, Table 1 ...",    # where the paper column comes from
      claims=[dict(better="b1236_avg", than="fcn", metric="mIoU")],  # optional: orderings the
                                                       #   report tests by the paired difference
                                                       #   over seeds (psp_jax/ablate/claims.py);
                                                       #   or one list per scale; than_metric=M2
                                                       #   compares `better`'s metric with `than`'s
                                                       #   M2 (e.g. a refined IoU with the same
                                                       #   row's input IoU: than=better)
      lower_is_better=["twin_rate"],                   # optional: metrics where smaller wins
      costs=True,                                      # optional: a cost section (parameters,
                                                       #   GFLOPs, train images/s, eval, CRF and
                                                       #   refinement time per image, peak
                                                       #   memory) from the same runs, and an
                                                       #   accuracy-vs-cost plot
      refiners={"mini": {"cascadepsp": dict(           # optional: refinement modules the table
          base="configs/cascadepsp.py:demo_real",      #   trains itself (one run per seed, the
          train={"train.steps": 300})}},               #   rows' seed), for rows with `refine`
      rows=[dict(
          name="b1_avg",                    # [A-Za-z0-9_.-]+, unique: file and directory names
          label="+B1+AVE",                  # optional display name (default: name)
          train={"model.bins": (1,)},       # config overrides of the TRAINING run
          eval={"eval.scales": (...)},      # optional: evaluation-only overrides (eval.* keys,
                                            #   and model.K for the family's inference_fields:
                                            #   DeepLab v3 trained at OS16, evaluated at OS8)
          at={"mini": dict(train={...}, eval={...})},  # optional: extra overrides at one scale
          scales=("paper",),                # optional: the scales the row exists at (default all)
          paper={"mIoU": 40.07, "aAcc": 79.52},        # optional: the paper's numbers
          blocked="why it cannot run yet",  # optional: listed in the report, never run
          base={"paper": "configs/deeplab.py:deeplabv3_resnet101_voc"},  # optional: this row's
                                            #   own base config (a FILE:NAME, or one per scale;
                                            #   default: the table's), e.g. another model family
          recompute_bn=True,                # optional: `psp-jax recompute-bn` after training and
                                            #   before the row's evaluation (SegNet's protocol);
                                            #   rows sharing a training run must agree on it
          refine="cascadepsp",              # optional: a refiner of the table's `refiners`; the
                                            #   row's evaluation refines every predicted class
                                            #   with that seed's refiner run (eval.refine.*:
                                            #   psp_jax/refine/on_segmentation.py), metrics
                                            #   'refine.mIoU' etc.
      ), ...],
  )

Overrides are flat `{"section.key": value}` dicts, applied in the order table scale -> row ->
row.at[scale] (later wins) on top of the base config, and passed to `psp-jax train` as
`--config.KEY=VALUE`. Rows whose merged train overrides are identical share one training run
per seed; every row with evaluation overrides gets its own `psp-jax evaluate`. `seed` is set
from `seeds` and may not be overridden. A metric may be a dotted path into the evaluation JSON
('crf.mIoU': the score after the DenseCRF of an evaluation with eval.crf set). Every mistake raises TableError naming the file, the
row and the key.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import re
from typing import Any, Mapping

SCALES = ("mini", "paper")
CHECKPOINTS = ("latest", "best")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_TABLE_KEYS = {"title", "notes", "base", "train", "eval", "seeds", "metrics", "metric_labels", "scale",
               "checkpoint", "split", "paper_source", "rows", "claims", "lower_is_better",
               "costs", "refiners"}
_CLAIM_KEYS = {"better", "than", "metric"}
_CLAIM_OPTIONAL = {"than_metric"}
_ROW_KEYS = {"name", "label", "train", "eval", "at", "scales", "paper", "blocked", "base", "recompute_bn",
             "refine"}
_REFINER_KEYS = {"base", "train"}


class TableError(ValueError):
  """A table file that does not follow the format of psp_jax/ablate/table.py."""


@dataclasses.dataclass(frozen=True)
class Row:
  """One row of a table at one scale, overrides merged (table scale -> row -> row.at[scale])."""
  name: str
  label: str
  train: dict[str, Any]
  eval: dict[str, Any]
  paper: dict[str, float]
  blocked: str = ""
  base: str = ""  # the row's base config FILE:NAME (the table's when it names none)
  recompute_bn: bool = False  # recompute BN statistics between training and evaluation
  refine: str = ""  # the name of the table's refiner whose run refines this row's predictions


@dataclasses.dataclass(frozen=True)
class Refiner:
  """A refinement module the table trains (one run per seed) for its rows with `refine`."""
  name: str
  base: str
  train: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Table:
  """A validated table at one scale."""
  path: pathlib.Path
  scale: str
  title: str
  base: str
  seeds: tuple[int, ...]
  metrics: tuple[str, ...]
  metric_labels: dict[str, str]
  value_scale: float
  checkpoint: str
  split: str | None
  paper_source: str
  notes: tuple[str, ...]
  rows: tuple[Row, ...]
  claims: tuple[dict, ...] = ()
  lower_is_better: tuple[str, ...] = ()
  costs: bool = False
  refiners: tuple[Refiner, ...] = ()

  def refiner(self, name: str) -> Refiner:
    for refiner in self.refiners:
      if refiner.name == name:
        return refiner
    raise KeyError(name)

  @property
  def stem(self) -> str:
    return self.path.stem

  def label(self, metric: str) -> str:
    return self.metric_labels.get(metric, metric)

  def row(self, name: str) -> Row:
    for row in self.rows:
      if row.name == name:
        return row
    raise KeyError(name)


def _fail(path, where: str, message: str):
  raise TableError(f"{path}: {where}: {message}")


def _check_overrides(path, where: str, value, *, eval_only: bool) -> dict[str, Any]:
  if value is None:
    return {}
  if not isinstance(value, Mapping):
    _fail(path, where, f"must be a dict of 'section.key': value, got {type(value).__name__}")
  for key in value:
    if not isinstance(key, str) or not key or key.startswith(".") or key.endswith("."):
      _fail(path, where, f"key {key!r} must be a dotted config key such as 'model.bins'")
    if key == "seed":
      _fail(path, where, "'seed' comes from the table's `seeds`; do not override it")
    if eval_only and not key.startswith(("eval.", "model.")):
      _fail(path, where, f"key {key!r}: evaluation overrides may change only eval.* keys and the "
                         "model family's inference fields such as model.output_stride (put it in "
                         "`train` if it changes the training run)")
  return dict(value)


def _per_scale(path, name: str, value, *, required: bool) -> dict:
  if value is None and not required:
    return {}
  if not isinstance(value, Mapping):
    _fail(path, name, f"must be a dict keyed by scale {SCALES}, got {value!r}")
  unknown = set(value) - set(SCALES)
  if unknown:
    _fail(path, name, f"unknown scale(s) {sorted(unknown)}; scales are {SCALES}")
  return dict(value)


def _config_spec(path, where: str, value) -> str:
  if not isinstance(value, str) or ":" not in value:
    _fail(path, where, f"must be 'FILE.py:NAME', got {value!r}")
  return value


def _refiners(path, raw, scale: str) -> dict[str, "Refiner"]:
  """The table's refiners at `scale`: {name: Refiner}."""
  at = _per_scale(path, "'refiners'", raw, required=False).get(scale) or {}
  if not isinstance(at, Mapping):
    _fail(path, f"refiners[{scale!r}]", f"must be a dict name -> dict(base=..., train={{...}}), got {at!r}")
  out = {}
  for name, spec in at.items():
    where = f"refiners[{scale!r}][{name!r}]"
    if not isinstance(name, str) or not _NAME.match(name):
      _fail(path, where, "the name must match [A-Za-z0-9_.-]+ (it names a run directory)")
    if not isinstance(spec, Mapping) or "base" not in spec or set(spec) - _REFINER_KEYS:
      _fail(path, where, f"must be dict(base='FILE.py:NAME'[, train={{...}}]), got {spec!r}")
    out[name] = Refiner(name=name, base=_config_spec(path, f"{where} 'base'", spec["base"]),
                        train=_check_overrides(path, f"{where} 'train'", spec.get("train"),
                                               eval_only=False))
  return out


def _row(path, index: int, raw, scale: str, table_train: dict, table_eval: dict,
         metrics: tuple[str, ...], table_base: str, refiners: Mapping[str, "Refiner"]) -> Row | None:
  """The row at `scale` (None when the row does not exist at that scale)."""
  if not isinstance(raw, Mapping):
    _fail(path, f"rows[{index}]", f"must be a dict, got {type(raw).__name__}")
  name = raw.get("name")
  if not isinstance(name, str) or not _NAME.match(name):
    _fail(path, f"rows[{index}]", f"'name' must match [A-Za-z0-9_.-]+ (it names files), got {name!r}")
  where = f"row {name!r}"
  unknown = set(raw) - _ROW_KEYS
  if unknown:
    _fail(path, where, f"unknown field(s) {sorted(unknown)}; a row has {sorted(_ROW_KEYS)}")
  scales = raw.get("scales", SCALES)
  if isinstance(scales, str) or not set(scales) <= set(SCALES) or not scales:
    _fail(path, where, f"'scales' must be a non-empty tuple of {SCALES}, got {scales!r}")
  at = _per_scale(path, f"{where} 'at'", raw.get("at"), required=False)
  for s, extra in at.items():
    if not isinstance(extra, Mapping) or set(extra) - {"train", "eval"}:
      _fail(path, f"{where} at[{s!r}]", "must be dict(train={...}, eval={...})")
  train = _check_overrides(path, f"{where} 'train'", raw.get("train"), eval_only=False)
  evals = _check_overrides(path, f"{where} 'eval'", raw.get("eval"), eval_only=True)
  extra = at.get(scale, {})
  extra_train = _check_overrides(path, f"{where} at[{scale!r}]['train']", extra.get("train"), eval_only=False)
  extra_eval = _check_overrides(path, f"{where} at[{scale!r}]['eval']", extra.get("eval"), eval_only=True)
  paper = raw.get("paper") or {}
  if not isinstance(paper, Mapping):
    _fail(path, f"{where} 'paper'", f"must be a dict metric -> number, got {paper!r}")
  for metric, number in paper.items():
    if metric not in metrics:
      _fail(path, f"{where} 'paper'", f"metric {metric!r} is not one of the table's metrics {list(metrics)}")
    if not isinstance(number, (int, float)) or isinstance(number, bool):
      _fail(path, f"{where} 'paper'", f"{metric} must be a number, got {number!r}")
  blocked = raw.get("blocked", "")
  if not isinstance(blocked, str):
    _fail(path, f"{where} 'blocked'", "must be a string saying why the row cannot run")
  base = raw.get("base")
  if isinstance(base, Mapping):
    base = _per_scale(path, f"{where} 'base'", base, required=False).get(scale)
  base = table_base if base is None else _config_spec(path, f"{where} 'base'", base)
  recompute_bn = raw.get("recompute_bn", False)
  if not isinstance(recompute_bn, bool):
    _fail(path, f"{where} 'recompute_bn'", f"must be True or False, got {recompute_bn!r}")
  refine = raw.get("refine", "")
  if not isinstance(refine, str):
    _fail(path, f"{where} 'refine'", f"must name one of the table's refiners, got {refine!r}")
  if scale not in scales:
    return None
  if refine and refine not in refiners and not blocked:
    _fail(path, f"{where} 'refine'", f"refiner {refine!r} is not in the table's refiners at scale "
          f"{scale!r} (has {sorted(refiners) or 'none'})")
  if refine and any(k.startswith("eval.refine.checkpoint") for k in {**evals, **extra_eval}):
    _fail(path, f"{where} 'eval'", "eval.refine.checkpoint comes from the row's `refine` run; do "
          "not set it")
  return Row(name=name, label=str(raw.get("label") or name), base=base,
             train={**table_train, **train, **extra_train},
             eval={**table_eval, **evals, **extra_eval},
             paper={k: float(v) for k, v in paper.items()}, blocked=blocked,
             recompute_bn=recompute_bn, refine=refine)


def parse_table(raw: Mapping[str, Any], path: str | pathlib.Path, scale: str) -> Table:
  """Validate a TABLE dict and return it at `scale` (rows not defined there are left out)."""
  path = pathlib.Path(path)
  if scale not in SCALES:
    raise TableError(f"{path}: unknown scale {scale!r}; choose one of {SCALES}")
  if not isinstance(raw, Mapping):
    raise TableError(f"{path}: TABLE must be a dict, got {type(raw).__name__}")
  unknown = set(raw) - _TABLE_KEYS
  if unknown:
    _fail(path, "TABLE", f"unknown field(s) {sorted(unknown)}; a table has {sorted(_TABLE_KEYS)}")
  for key in ("title", "base", "seeds", "metrics", "rows"):
    if key not in raw:
      _fail(path, "TABLE", f"missing required field {key!r}")
  base = _per_scale(path, "'base'", raw["base"], required=True)
  if scale not in base:
    _fail(path, "'base'", f"no base config for scale {scale!r} (has {sorted(base)})")
  _config_spec(path, f"base[{scale!r}]", base[scale])
  seeds = _per_scale(path, "'seeds'", raw["seeds"], required=True).get(scale)
  if (not isinstance(seeds, (list, tuple)) or not seeds
      or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
      or len(set(seeds)) != len(seeds)):
    _fail(path, f"seeds[{scale!r}]", f"must be a non-empty list of distinct ints >= 0, got {seeds!r}")
  metrics = raw["metrics"]
  if isinstance(metrics, Mapping):
    metrics = _per_scale(path, "'metrics'", metrics, required=True).get(scale)
  if (isinstance(metrics, str) or not isinstance(metrics, (list, tuple)) or not metrics
      or not all(isinstance(m, str) and m for m in metrics)):
    _fail(path, "'metrics'", f"must be a non-empty list of metric names, got {metrics!r}")
  metrics = tuple(metrics)
  labels = raw.get("metric_labels") or {}
  all_metrics = set(metrics)
  if isinstance(raw["metrics"], Mapping):
    all_metrics = {m for ms in raw["metrics"].values() if isinstance(ms, (list, tuple)) for m in ms}
  if not isinstance(labels, Mapping) or set(labels) - all_metrics:
    _fail(path, "'metric_labels'", f"must map some of {sorted(all_metrics)} to display names, got {labels!r}")
  labels = {k: v for k, v in labels.items() if k in metrics}
  value_scale = raw.get("scale", 100.0)
  if not isinstance(value_scale, (int, float)) or isinstance(value_scale, bool) or value_scale <= 0:
    _fail(path, "'scale'", f"must be a positive number, got {value_scale!r}")
  checkpoint = raw.get("checkpoint", "latest")
  if checkpoint not in CHECKPOINTS:
    _fail(path, "'checkpoint'", f"must be one of {CHECKPOINTS}, got {checkpoint!r}")
  split = raw.get("split")
  if split is not None and (not isinstance(split, str) or not split):
    _fail(path, "'split'", f"must be a split name or None, got {split!r}")
  notes = raw.get("notes") or ()
  if isinstance(notes, str) or not all(isinstance(n, str) for n in notes):
    _fail(path, "'notes'", "must be a list of strings")
  table_train = _check_overrides(path, f"train[{scale!r}]",
                                 _per_scale(path, "'train'", raw.get("train"), required=False).get(scale),
                                 eval_only=False)
  table_eval = _check_overrides(path, f"eval[{scale!r}]",
                                _per_scale(path, "'eval'", raw.get("eval"), required=False).get(scale),
                                eval_only=True)
  rows_raw = raw["rows"]
  if not isinstance(rows_raw, (list, tuple)) or not rows_raw:
    _fail(path, "'rows'", "must be a non-empty list of row dicts")
  refiners = _refiners(path, raw.get("refiners"), scale)
  rows, seen = [], set()
  for i, r in enumerate(rows_raw):
    row = _row(path, i, r, scale, table_train, table_eval, metrics, base[scale], refiners)
    name = r["name"]
    if name in seen:
      _fail(path, f"row {name!r}", "duplicate row name")
    seen.add(name)
    if row is not None:
      rows.append(row)
  if not rows:
    _fail(path, "'rows'", f"no row is defined at scale {scale!r}")
  lower = raw.get("lower_is_better") or ()
  if isinstance(lower, str) or not set(lower) <= all_metrics:
    _fail(path, "'lower_is_better'", f"must list some of the metrics {sorted(all_metrics)}, got {lower!r}")
  lower = tuple(m for m in lower if m in metrics)
  claims = []
  # A list applies at every scale where its rows exist; a dict keyed by scale lists each
  # scale's own claims, and their rows must exist there.
  raw_claims = raw.get("claims") or ()
  per_scale = isinstance(raw_claims, Mapping)
  if per_scale:
    raw_claims = _per_scale(path, "'claims'", raw_claims, required=False).get(scale) or ()
  at_scale = {r.name for r in rows}
  for i, claim in enumerate(raw_claims):
    if not isinstance(claim, Mapping) or not _CLAIM_KEYS <= set(claim) <= _CLAIM_KEYS | _CLAIM_OPTIONAL:
      _fail(path, f"claims[{i}]", "must be dict(better=ROW, than=ROW, metric=METRIC[, than_metric="
            f"METRIC]), got {claim!r}")
    claim = {"than_metric": claim["metric"], **claim}
    if claim["better"] == claim["than"] and claim["than_metric"] == claim["metric"]:
      _fail(path, f"claims[{i}]", f"compares row {claim['better']!r} with itself on one metric; "
            "give than_metric= to compare two of its metrics")
    for key in ("better", "than"):
      if claim[key] not in seen:
        _fail(path, f"claims[{i}]", f"{key}={claim[key]!r} is not a row of the table")
      if per_scale and claim[key] not in at_scale:
        _fail(path, f"claims[{scale!r}][{i}]",
              f"{key}={claim[key]!r} is not a row of the table at scale {scale!r}")
    pair = {claim["metric"], claim["than_metric"]}
    if not {claim["better"], claim["than"]} <= at_scale or (
        not per_scale and pair & (all_metrics - set(metrics))):
      continue  # a claim of the other scale
    for key in ("metric", "than_metric"):
      if claim[key] not in metrics:
        _fail(path, f"claims[{i}]", f"{key} {claim[key]!r} is not one of {list(metrics)}")
    if (claim["metric"] in lower) != (claim["than_metric"] in lower):
      _fail(path, f"claims[{i}]", f"metric {claim['metric']!r} and than_metric "
            f"{claim['than_metric']!r} must both be, or both not be, in lower_is_better")
    claims.append(dict(claim))
  costs = raw.get("costs", False)
  if not isinstance(costs, bool):
    _fail(path, "'costs'", f"must be True or False, got {costs!r}")
  return Table(path=path, scale=scale, title=str(raw["title"]), base=base[scale],
               seeds=tuple(seeds), metrics=metrics, metric_labels=dict(labels),
               value_scale=float(value_scale), checkpoint=checkpoint, split=split,
               paper_source=str(raw.get("paper_source", "")), notes=tuple(notes), rows=tuple(rows),
               claims=tuple(claims), lower_is_better=tuple(lower), costs=costs,
               refiners=tuple(r for r in refiners.values()
                              if any(row.refine == r.name and not row.blocked for row in rows)))


def load_table(path: str | pathlib.Path, scale: str) -> Table:
  """Import the table file at `path` and validate its TABLE at `scale`."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise TableError(f"{path}: table file not found")
  spec = importlib.util.spec_from_file_location(f"_psp_jax_table_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # a table with a syntax or import error: say which file
    raise TableError(f"{path}: cannot import the table file: {type(e).__name__}: {e}") from e
  if not hasattr(module, "TABLE"):
    raise TableError(f"{path}: defines no TABLE dict (see psp_jax/ablate/table.py for the format)")
  return parse_table(module.TABLE, path, scale)


def select(table: Table, *, rows: list[str] | None = None, seeds: list[int] | None = None) -> Table:
  """The table restricted to the named rows (in table order) and/or with other seeds."""
  chosen = table.rows
  if rows:
    known = [r.name for r in table.rows]
    unknown = [r for r in rows if r not in known]
    if unknown:
      raise TableError(f"{table.path}: --rows {unknown} not defined at scale {table.scale!r}; "
                       f"rows: {known}")
    chosen = tuple(r for r in table.rows if r.name in rows)
  if seeds is not None:
    if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
      raise TableError(f"--seeds must be distinct ints >= 0, got {seeds}")
  return dataclasses.replace(table, rows=chosen, seeds=tuple(seeds) if seeds is not None else table.seeds)


def with_overrides(table: Table, train: dict[str, Any]) -> Table:
  """Every row's train overrides on top of `train` (the command line's --config.KEY=VALUE:
  dataset paths and the like; the rows' own overrides win)."""
  where = "--config overrides"
  _check_overrides(table.path, where, train, eval_only=False)
  rows = tuple(dataclasses.replace(r, train={**train, **r.train}) for r in table.rows)
  return dataclasses.replace(table, rows=rows)

