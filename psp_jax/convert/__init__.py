"""PyTorch -> psp_jax checkpoint conversion (`psp-jax convert`, `python -m psp_jax.convert`).

torch is optional (`pip install psp_jax[convert]`) and imported only when a file is read.
"""
from psp_jax.convert.torch_checkpoint import (MODELS, ConversionError, convert_checkpoint,
                                              convert_main, read_torch_state_dict)

__all__ = ["MODELS", "ConversionError", "convert_checkpoint", "convert_main", "read_torch_state_dict"]
