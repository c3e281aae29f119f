"""Planning: rows with identical train overrides share a run; the commands are what runs."""
import shlex
import subprocess
import sys

import pytest
from ablate_fixtures import write_table

from psp_jax.ablate import cli, overrides, plan as plan_lib
from psp_jax.ablate.table import TableError, load_table


def _plan(tmp_path, **kwargs):
  return plan_lib.make_plan(load_table(write_table(tmp_path), "mini"), tmp_path / "w", **kwargs)


def test_rows_with_the_same_train_overrides_share_one_run_per_seed(tmp_path):
  plan = _plan(tmp_path)
  assert [(r.run_id.split("-")[0], r.seed, r.rows) for r in plan.runs] == [
      ("fcn", 0, ("fcn",)), ("psp", 0, ("psp", "psp_ms")),
      ("fcn", 1, ("fcn",)), ("psp", 1, ("psp", "psp_ms"))]
  by_row = {(e.row, e.seed): e for e in plan.evaluations}
  assert by_row["psp", 0].run is by_row["psp_ms", 0].run
  assert by_row["psp", 1].run is not by_row["psp", 0].run
  assert by_row["psp", 0].run.workdir == tmp_path / "w" / "runs" / plan.runs[1].run_id / "seed0"
  # a row without eval overrides takes the run's own final evaluation; the others evaluate
  assert by_row["psp", 0].command is None and by_row["fcn", 1].command is None
  ms = by_row["psp_ms", 1].command
  assert ms[1:4] == ("-m", "psp_jax", "evaluate") and "--config.eval.scales=(0.5,1.0)" in ms
  assert overrides.PROJECT_ROOT.joinpath("configs/pspnet.py").is_file()
  output = by_row["psp_ms", 1].output
  assert output.parent == tmp_path / "w" / "rows" / "psp_ms" and output.name.startswith("seed1-")
  assert [r.name for r in plan.blocked] == ["later"]
  assert not any(e.row == "later" for e in plan.evaluations)


def test_train_commands_carry_seed_and_overrides_and_run_names_are_stable(tmp_path):
  plan = _plan(tmp_path)
  fcn = plan.runs[0].command
  assert fcn[:4] == (sys.executable, "-m", "psp_jax", "train")
  assert fcn[fcn.index("--config") + 1] == "configs/pspnet.py:synthetic_mini"
  assert fcn[fcn.index("--workdir") + 1] == str(plan.runs[0].workdir)
  assert fcn[-3:] == ("--config.seed=0", "--config.train.steps=7", "--config.model.context=none")
  subset = _plan(tmp_path, rows=["psp_ms"])
  assert [r.run_id for r in subset.runs] == [plan.runs[1].run_id, plan.runs[3].run_id]
  assert subset.runs[0].rows == ("psp_ms",) and len(subset.evaluations) == 2


def test_override_values_round_trip_through_the_command_line():
  import ast
  for value in [(1,), (1, 2, 3, 6), (0.5, 1.0 / 3.0), True, False, None, 0.3, 7, "max", ("a", "b"),
                {"ppm": 10.0}]:
    text = overrides.format_value(value)
    parsed = text if isinstance(value, str) else ast.literal_eval(text)
    assert parsed == value, (value, text)
  with pytest.raises(TypeError, match="cannot write override value"):
    overrides.format_value(object())


def test_print_commands_prints_exactly_the_commands_to_run(tmp_path, capsys):
  table = write_table(tmp_path)
  args = ["--table", str(table), "--scale", "mini", "--workdir", str(tmp_path / "w"), "--print-commands"]
  assert cli.ablate_main(args) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  plan = _plan(tmp_path, portable=True)  # the mini default: each line sets the CPU setting itself
  assert [shlex.split(line) for line in lines] == [list(plan.shell(c)) for c in plan.commands()]
  for line in lines:
    words = shlex.split(line)
    assert words[0] == "env" and words[1].startswith("XLA_FLAGS=") and words[1].endswith(
        " --xla_cpu_max_isa=AVX2") and words[2:4] == ["PJRT_NPROC=2", "OPENCV_CPU_DISABLE=AVX512-SKX"]
  assert len(lines) == 4 + 2  # 2 runs x 2 seeds, 1 multi-scale evaluation x 2 seeds
  assert cli.ablate_main(args + ["--no-portable-cpu"]) == 0
  native = capsys.readouterr().out.strip().splitlines()
  assert [shlex.split(line) for line in native] == [list(c) for c in plan.commands()]
  assert not (tmp_path / "w").exists()  # printing creates nothing
  (plan.runs[0].workdir).mkdir(parents=True)
  (plan.runs[0].workdir / "train_result.json").write_text("{}")
  assert cli.ablate_main(args) == 0
  assert len(capsys.readouterr().out.strip().splitlines()) == 5  # the finished run is left out
  assert cli.ablate_main(args + ["--seeds", "1", "--rows", "psp_ms"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 2 and "seed1" in lines[0] and "--output" in lines[1]


def test_cli_errors_and_workdir_ownership(tmp_path, capsys):
  table = write_table(tmp_path)
  base = ["--table", str(table), "--scale", "mini", "--workdir", str(tmp_path / "w")]
  assert cli.ablate_main(base + ["--rows", "nope", "--print-commands"]) == 2
  assert "--rows ['nope'] not defined" in capsys.readouterr().err
  assert cli.ablate_main(base + ["--print-commands", "--bogus=1"]) == 2
  assert "unrecognized argument '--bogus=1'" in capsys.readouterr().err
  assert cli.ablate_main(base + ["--print-commands", "--config.data.data_dir=/x"]) == 0
  assert "--config.data.data_dir=/x" in capsys.readouterr().out
  plan = _plan(tmp_path)
  plan_lib.check_workdir(plan, claim=True)
  other = plan_lib.make_plan(load_table(write_table(tmp_path, name="other.py"), "mini"), tmp_path / "w")
  with pytest.raises(TableError, match="holds table 'test_table' at scale 'mini', not 'other'"):
    plan_lib.check_workdir(other, claim=True)


def test_a_workdir_keeps_one_cpu_setting(tmp_path, monkeypatch):
  """Runs made natively and under the portable setting never mix in one table; a marker from
  before the setting existed counts as native."""
  import json
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
  portable = _plan(tmp_path, portable=True)
  assert portable.environment == {
      "XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_cpu_experimental_ynn_fusion_type"
                   "=reduce,individual_dot,individual_convolution --xla_cpu_max_isa=AVX2",
      "PJRT_NPROC": "2", "OPENCV_CPU_DISABLE": "AVX512-SKX"}
  assert _plan(tmp_path).environment == {}
  plan_lib.check_workdir(portable, claim=True)
  assert json.loads((tmp_path / "w" / "ablate.json").read_text())["cpu"] == "portable"
  plan_lib.check_workdir(portable, claim=True)  # the same setting continues
  with pytest.raises(TableError, match="made with the portable CPU setting, not native.*--portable-cpu"):
    plan_lib.check_workdir(_plan(tmp_path), claim=True)
  marker = tmp_path / "w" / "ablate.json"
  marker.write_text(json.dumps({"table": "test_table", "scale": "mini"}))
  plan_lib.check_workdir(_plan(tmp_path), claim=True)
  with pytest.raises(TableError, match="made with the native CPU setting, not portable.*--no-portable-cpu"):
    plan_lib.check_workdir(portable, claim=True)


def test_the_runner_launches_every_command_under_the_plan_environment(tmp_path):
  from psp_jax.ablate import runner
  log = tmp_path / "x.log"
  code = "import os; print('seen', os.environ['PJRT_NPROC'], os.environ['XLA_FLAGS'])"
  assert runner.execute((sys.executable, "-c", code), log, env={"PJRT_NPROC": "2", "XLA_FLAGS": "-a"}) == 0
  text = log.read_text()
  assert "$ env PJRT_NPROC=2 XLA_FLAGS=-a " in text and "seen 2 -a" in text
  plan = _plan(tmp_path, portable=True)
  assert runner.Runner(plan).execute.keywords["env"] == plan.environment


def test_ablate_help_lists_the_flags():
  out = subprocess.run([sys.executable, "-m", "psp_jax", "ablate", "--help"], capture_output=True,
                       text=True, check=True, timeout=120).stdout
  for name in ("--table", "--scale", "--workdir", "--print-commands", "--seeds", "--rows",
               "--collect-only", "--portable-cpu", "--no-portable-cpu", "mini", "paper"):
    assert name in out


def test_evaluate_help_lists_the_output_flag():
  out = subprocess.run([sys.executable, "-m", "psp_jax", "evaluate", "--help"], capture_output=True,
                       text=True, check=True, timeout=120).stdout
  assert "--output" in out and "train_result.json" in out
