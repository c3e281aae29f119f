"""`python -m psp_jax ...` is the `psp-jax` command."""
from psp_jax.main import entry_point

entry_point()
