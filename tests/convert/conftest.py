"""Conversion tests: make tests/torch_reference importable as `torch_reference`."""
import pathlib
import sys

_TESTS = str(pathlib.Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
  sys.path.insert(0, _TESTS)
