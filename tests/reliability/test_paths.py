"""Class 6 (issue 13): every path argument is checked up front and said what it is and what
was expected (psp_jax.cli_checks), instead of a FileExistsError traceback."""
import pytest

from cli_fixtures import CONFIG
from psp_jax import cli_checks, main
from psp_jax.cli_errors import UsageError


@pytest.fixture
def a_file(tmp_path):
  path = tmp_path / "notes.txt"
  path.write_text("not a folder\n")
  return path


def test_output_and_workdir_paths_that_are_or_run_through_a_file(tmp_path, a_file, capsys):
  cases = [  # (argv, the message after `psp-jax <cmd>: error: `)
      (["train", "--config", CONFIG, "--workdir", a_file],
       f"--workdir {a_file}: is a file; expected a folder (created if missing)"),
      (["train", "--config", CONFIG, "--workdir", a_file / "run"],
       f"--workdir {a_file / 'run'}: {a_file} is a file, so nothing can be created inside it"),
      (["evaluate", "--config", CONFIG, "--workdir", tmp_path / "no_run"],
       f"--workdir {tmp_path / 'no_run'}: does not exist; expected a folder"),
      (["evaluate", "--config", CONFIG, "--workdir", tmp_path, "--output", tmp_path],
       f"--output {tmp_path}: is a folder; expected a file name to write"),
      (["predict", "--checkpoint", tmp_path, "--input", a_file, "--output", a_file / "out"],
       f"--output {a_file / 'out'}: {a_file} is a file, so nothing can be created inside it"),
      (["predict", "--checkpoint", tmp_path / "ckpt", "--input", a_file, "--output", tmp_path / "o"],
       f"--checkpoint {tmp_path / 'ckpt'}: does not exist; expected a file or a folder"),
      (["refine", "--checkpoint", tmp_path, "--image", a_file / "x.png", "--mask", a_file, "--output", "o.png"],
       f"--image {a_file / 'x.png'}: {a_file} is a file, not a folder; expected a file or a folder"),
      (["convert", "--torch", a_file, "--model", "pspnet", "--out", a_file / "ckpt"],
       f"--out {a_file / 'ckpt'}: {a_file} is a file, so nothing can be created inside it"),
      (["ablate", "--table", "experiments/pspnet_table1.py", "--scale", "mini", "--workdir", a_file],
       f"--workdir {a_file}: is a file; expected a folder (created if missing)"),
  ]
  for argv, message in cases:
    assert main.run([str(a) for a in argv]) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith(f"psp-jax {argv[0]}: error: {message}"), (argv, err)
    assert "Traceback" not in err
  assert a_file.read_text() == "not a folder\n"  # nothing was written over it


def test_the_checks_themselves(tmp_path, a_file):
  assert cli_checks.check_dir(tmp_path / "new" / "deeper", "--workdir") == tmp_path / "new" / "deeper"
  assert cli_checks.check_output_file(tmp_path / "out.json", "--output") == tmp_path / "out.json"
  assert cli_checks.check_output(a_file, "--output") == a_file  # an existing file to replace
  with pytest.raises(UsageError, match="is a folder; expected a file"):
    cli_checks.check_existing(tmp_path, "--torch", "file")
  with pytest.raises(UsageError, match="is a file; expected a folder"):
    cli_checks.check_existing(a_file, "--mask", "dir")
  (tmp_path / "link").symlink_to(tmp_path / "gone")
  with pytest.raises(UsageError, match="is a broken link; expected a folder"):
    cli_checks.check_dir(tmp_path / "link", "--workdir")
