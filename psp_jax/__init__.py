"""psp_jax: PSPNet and CascadePSP in JAX/Flax.

  model, variables = psp_jax.load(CKPT)         # any checkpoint: training workdir or converted
  logits = model.apply(variables, images, train=False)
  labels = psp_jax.predict(CKPT, image_uint8)    # (H, W) label map, the checkpoint's protocol

Heavy modules are imported on first use, so `import psp_jax` stays fast.
"""
from __future__ import annotations

from psp_jax.constants import VERSION as __version__  # noqa: F401


def load(path, step=None, **kwargs):
  """(model, variables) of a checkpoint (see `psp_jax.checkpoint.load`)."""
  from psp_jax import checkpoint  # pylint: disable=import-outside-toplevel
  return checkpoint.load(path, step, **kwargs)


def predict(checkpoint, image):
  """Label map (H, W) of an RGB uint8 image (see `psp_jax.segment.predict`)."""
  from psp_jax import segment  # pylint: disable=import-outside-toplevel
  return segment.predict(checkpoint, image)


def Refiner(checkpoint, dtype=None, **kwargs):  # pylint: disable=invalid-name
  """CascadePSP mask refiner of a checkpoint (see `psp_jax.refine.api.Refiner`)."""
  from psp_jax.refine import api  # pylint: disable=import-outside-toplevel
  return api.Refiner(checkpoint, dtype=dtype, **kwargs)
