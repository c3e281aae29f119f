"""Table files: the format's checks name the file, the row and the key; the shipped tables load."""
import importlib.util
import pathlib

import pytest
from ablate_fixtures import TABLE_TEXT, write_table

from psp_jax.ablate import plan as plan_lib
from psp_jax.ablate.table import SCALES, TableError, load_table, select, with_overrides

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _table_scales(path: pathlib.Path) -> list[str]:
  """The scales a table file has a base config for ([] for experiment scripts without TABLE)."""
  if "\nTABLE = dict(" not in path.read_text():
    return []
  spec = importlib.util.spec_from_file_location(f"_shipped_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return [s for s in SCALES if s in module.TABLE["base"]]


# every experiments/ file with a TABLE, at every scale it has a base config for
SHIPPED = [(path, scale) for path in sorted((ROOT / "experiments").glob("*.py"))
           for scale in _table_scales(path)]


def test_rows_merge_table_row_and_scale_overrides(tmp_path):
  table = load_table(write_table(tmp_path), "mini")
  assert [r.name for r in table.rows] == ["fcn", "psp", "psp_ms", "later"]  # 'big' is paper-only
  assert table.row("fcn").train == {"train.steps": 7, "model.context": "none"}
  assert table.row("psp_ms").eval == {"eval.scales": (0.5, 1.0)}
  assert table.row("later").blocked == "no key for it"
  assert table.seeds == (0, 1) and table.value_scale == 100.0 and table.label("aAcc") == "pixel acc"
  paper = load_table(write_table(tmp_path), "paper")
  assert paper.row("big").train == {"model.depth": 101} and paper.seeds == (0,)
  assert select(table, rows=["psp"], seeds=[3]).rows[0].name == "psp"
  assert select(table, seeds=[3, 4]).seeds == (3, 4)
  extra = with_overrides(table, {"data.data_dir": "/x", "model.context": "ppm"})
  assert extra.row("fcn").train["model.context"] == "none"  # the row's own override wins
  assert extra.row("psp").train["data.data_dir"] == "/x"


@pytest.mark.parametrize("old,new,needle", [
    ('metrics=["mIoU", "aAcc"]', 'metrics="mIoU"', "'metrics'"),
    ('dict(name="fcn"', 'dict(name="f cn"', "rows[0]"),
    ('dict(name="psp", label="PSP"', 'dict(name="fcn", label="PSP"', "row 'fcn': duplicate row name"),
    ('eval={"eval.scales": (0.5, 1.0)}', 'eval={"train.steps": 101}', "row 'psp_ms' 'eval': key 'train.steps'"),
    ('train={"model.context": "none"}', 'train={"seed": 3}', "row 'fcn' 'train': 'seed' comes from"),
    ('paper={"mIoU": 41.68}', 'paper={"mIOU": 41.68}', "row 'psp' 'paper': metric 'mIOU'"),
    ('paper={"mIoU": 41.68}', 'paper={"mIoU": "41.68"}', "row 'psp' 'paper': mIoU must be a number"),
    ('seeds={"mini": [0, 1]', 'seeds={"mini": [0, 0]', "seeds['mini']"),
    ('seeds={"mini": [0, 1], "paper": [0]}', 'seeds={"mini": [0, 1], "huge": [0]}', "unknown scale(s) ['huge']"),
    ('scales=("paper",)', 'scales=("papr",)', "row 'big': 'scales'"),
    ('label="FCN"', 'label="FCN", colour="red"', "row 'fcn': unknown field(s) ['colour']"),
    ('title="Test table",', '', "missing required field 'title'"),
    ('metrics=["mIoU", "aAcc"]', 'metrics=["mIoU", "aAcc"], costs="yes"', "'costs': must be True or False"),
    ('"configs/pspnet.py:synthetic_mini"', '"configs/pspnet.py"', "base['mini']"),
])
def test_format_mistakes_name_the_file_row_and_key(tmp_path, old, new, needle):
  assert old in TABLE_TEXT
  path = write_table(tmp_path, TABLE_TEXT.replace(old, new))
  with pytest.raises(TableError) as e:
    load_table(path, "mini")
  assert str(path) in str(e.value) and needle in str(e.value)


def test_unloadable_files_and_unknown_selections(tmp_path):
  with pytest.raises(TableError, match="table file not found"):
    load_table(tmp_path / "nope.py", "mini")
  with pytest.raises(TableError, match="defines no TABLE"):
    load_table(write_table(tmp_path, "X = 1\n"), "mini")
  with pytest.raises(TableError, match="cannot import the table file: SyntaxError"):
    load_table(write_table(tmp_path, "TABLE = dict(\n"), "mini")
  with pytest.raises(TableError, match="unknown scale 'huge'"):
    load_table(write_table(tmp_path), "huge")
  table = load_table(write_table(tmp_path), "mini")
  with pytest.raises(TableError, match=r"--rows \['big'\] not defined at scale 'mini'; rows: \['fcn'"):
    select(table, rows=["big"])


@pytest.mark.parametrize("override,needle", [
    ('{"model.binz": (1,)}', "unknown config key 'model.binz': model has no key 'binz'; did you mean model.bins?"),
    ('{"modl.bins": (1,)}', "unknown config key 'modl.bins': the config has no section 'modl'; did you mean model.bins?"),
    ('{"train.steps": "many"}', "train.steps takes an integer (now 150), got 'many'"),
    ('{"train.batch_size": 0}', "train.batch_size=0: must be an integer >= 1"),
])
def test_overrides_are_checked_against_the_base_config(tmp_path, override, needle):
  path = write_table(tmp_path, TABLE_TEXT.replace('train={"model.context": "none"}', f"train={override}"))
  table = load_table(path, "mini")
  with pytest.raises(TableError) as e:
    plan_lib.make_plan(table, tmp_path / "w")
  assert str(path) in str(e.value) and "row 'fcn' train overrides" in str(e.value) and needle in str(e.value)


def test_every_table_file_is_checked():
  names = {p.stem for p, _ in SHIPPED}
  assert {"pspnet_table1", "pspnet_table4", "cascadepsp_ablation", "deeplab_context", "deeplab_voc"} <= names
  assert ("deeplab_voc", "paper") in {(p.stem, s) for p, s in SHIPPED}


@pytest.mark.parametrize("path, scale", SHIPPED, ids=lambda v: getattr(v, "stem", v))
def test_shipped_tables_load_and_fit_their_base_configs(path, scale):
  table = load_table(path, scale)
  for base in {table.base, *(r.base for r in table.rows)}:
    base_file = ROOT / base.split(":")[0]
    assert base_file.is_file(), f"{path.name}: its base config {base_file} does not exist"
  plan = plan_lib.make_plan(table, "/tmp/unused")  # checks every override against the config
  assert len(table.seeds) >= (2 if scale == "mini" else 1)
  assert all(set(r.paper) <= set(table.metrics) for r in table.rows)
  # every runnable row has a result for every seed
  assert len(plan.evaluations) == len(table.seeds) * sum(not r.blocked for r in table.rows)
  if path.stem.startswith("cascadepsp_"):  # its rows without eval overrides rely on this default
    from psp_jax.ablate.overrides import load_base_config
    assert load_base_config(table.base).eval.stages == "global+local"


def test_metrics_and_claims_may_differ_by_scale(tmp_path):
  """Tables 1-3 report the look-alike mIoU at mini scale (the synthetic scenes have look-alikes)
  and mIoU at paper scale (ADE20K has none); claims are per scale too, or one list applied
  wherever its rows and metrics exist."""
  text = TABLE_TEXT.replace(
      'metrics=["mIoU", "aAcc"],',
      'metrics={"mini": ["lookalike_mIoU", "mIoU", "aAcc"], "paper": ["mIoU", "aAcc"]},\n'
      '        lower_is_better=["lookalike_mIoU"],\n'
      '        claims=[dict(better="psp", than="fcn", metric="lookalike_mIoU"),\n'
      '                dict(better="big", than="fcn", metric="mIoU")],')
  mini, paper = (load_table(write_table(tmp_path, text), s) for s in ("mini", "paper"))
  assert mini.metrics == ("lookalike_mIoU", "mIoU", "aAcc") and paper.metrics == ("mIoU", "aAcc")
  assert mini.metric_labels == {"aAcc": "pixel acc"} and paper.lower_is_better == ()
  # each scale keeps only the claims whose rows and metric it has
  assert [c["better"] for c in mini.claims] == ["psp"] and [c["better"] for c in paper.claims] == ["big"]
  strict = TABLE_TEXT.replace('rows=[', 'claims={"mini": [dict(better="big", than="fcn", metric="mIoU")]},\n    rows=[')
  with pytest.raises(TableError, match=r"claims\['mini'\]\[0\]: better='big' is not a row of the table at scale 'mini'"):
    load_table(write_table(tmp_path, strict), "mini")
  assert load_table(write_table(tmp_path, strict), "paper").claims == ()
  typo = TABLE_TEXT.replace('metrics=["mIoU", "aAcc"]', 'metrics={"mini": ["mIoU"], "papr": ["mIoU"]}')
  with pytest.raises(TableError, match="'metrics': unknown scale"):
    load_table(write_table(tmp_path, typo), "mini")
