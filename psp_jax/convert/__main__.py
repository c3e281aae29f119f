"""`python -m psp_jax.convert --torch FILE --model ... --out DIR` (see --help)."""
import sys

from psp_jax.convert.torch_checkpoint import convert_main

if __name__ == "__main__":
  sys.exit(convert_main(sys.argv[1:]))
