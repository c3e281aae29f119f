"""Where the commands' persistent compilation cache goes, and turning it off."""
from __future__ import annotations

import pathlib

from psp_jax import compile_cache


def test_default_folder_under_the_user_cache(tmp_path):
  assert compile_cache.cache_dir({}) == pathlib.Path.home() / ".cache/psp_jax/xla"
  assert (compile_cache.cache_dir({"XDG_CACHE_HOME": str(tmp_path)})
          == tmp_path / "psp_jax" / "xla")


def test_environment_chooses_or_disables(tmp_path):
  env = compile_cache.ENV
  assert compile_cache.cache_dir({env: str(tmp_path / "c")}) == tmp_path / "c"
  for off in ("off", "OFF", "0", "none", " "):
    assert compile_cache.cache_dir({env: off}) is None
    assert compile_cache.enable({env: off}) is None


def test_uncreatable_folder_warns_and_goes_on(tmp_path, capsys):
  blocker = tmp_path / "file"
  blocker.write_text("x")
  assert compile_cache.enable({compile_cache.ENV: str(blocker / "sub")}) is None
  err = capsys.readouterr().err
  assert str(blocker / "sub") in err and compile_cache.ENV in err
