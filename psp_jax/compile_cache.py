"""JAX's persistent compilation cache for the `psp-jax` commands.

A `psp-jax refine` call on one image spends 3-8 s of its time compiling the refinement module
for the image's size (CPU); `train`, `evaluate` and `predict` compile their steps the same
way. With the cache, a later call with the same shapes, model and devices loads the compiled
program from disk instead (the 968x648 sample's first refine on a 2-core CPU: 24.8 s -> 22.1 s,
`experiments/benchmark_refine.py --sizes native --modes fast --repeats 1 --compile-cache C`
run twice).

Where: $PSP_JAX_COMPILATION_CACHE, or ~/.cache/psp_jax/xla ($XDG_CACHE_HOME respected) when
unset. Set it to 'off' (or '0', 'none', '') to disable. Entries are keyed by JAX on the program,
the compile options and the devices, so a stale entry is never used for another model.
"""
from __future__ import annotations

import os
import pathlib
import sys

ENV = "PSP_JAX_COMPILATION_CACHE"
OFF = ("off", "0", "none", "")


def cache_dir(environ: dict[str, str] | None = None) -> pathlib.Path | None:
  """The cache folder the environment asks for, or None when the cache is turned off."""
  environ = os.environ if environ is None else environ
  if ENV in environ:
    value = environ[ENV].strip()
    return None if value.lower() in OFF else pathlib.Path(value).expanduser()
  base = environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
  return pathlib.Path(base) / "psp_jax" / "xla"


def enable(environ: dict[str, str] | None = None) -> pathlib.Path | None:
  """Point JAX's persistent compilation cache at `cache_dir()`; returns the folder (None when
  off). A folder that cannot be created is reported on stderr and the command goes on
  without a cache."""
  path = cache_dir(environ)
  if path is None:
    return None
  try:
    path.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    print(f"psp-jax: compilation cache disabled: cannot create {path} ({e}); "
          f"set {ENV}=off to silence this", file=sys.stderr)
    return None
  import jax
  jax.config.update("jax_compilation_cache_dir", str(path))
  return path
