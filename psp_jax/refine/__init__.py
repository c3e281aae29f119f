"""CascadePSP mask refinement (inference): global and local steps, `Refiner`, `psp-jax refine`.

  masks.py    input checks: images, binary masks, label maps, boxes (NumPy)
  resize.py   PyTorch-exact resampling matrices (area, bilinear, bicubic)
  tiling.py   the local step's window layout (pure Python)
  cascade.py  the global and local steps on the device (jitted, bucketed shapes)
  api.py      `Refiner` (also `psp_jax.Refiner`), the official `refine` contract and more
  cli.py      `psp-jax refine` (one image, folders, --gt evaluation)

Modules are imported on use: `from psp_jax.refine.api import Refiner`.
"""
