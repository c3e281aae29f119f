"""The `psp-jax` command dispatch."""
import subprocess
import sys

from psp_jax import main


def test_usage_lists_every_command(capsys):
  assert main.run([]) == 2
  out = capsys.readouterr().out
  for name in main.COMMANDS:
    assert name in out
  assert main.run(["--help"]) == 0


def test_unknown_command_is_an_error_naming_it(capsys):
  assert main.run(["trian"]) == 2
  assert "unknown command 'trian'" in capsys.readouterr().err


def test_python_dash_m_is_the_same_program():
  out = subprocess.run([sys.executable, "-m", "psp_jax", "convert", "--help"], capture_output=True,
                       text=True, check=True).stdout
  assert "--torch" in out and "--model" in out
  out = subprocess.run([sys.executable, "-m", "psp_jax", "quickstart", "--help"],
                       capture_output=True, text=True, check=True).stdout
  assert "--steps" in out
