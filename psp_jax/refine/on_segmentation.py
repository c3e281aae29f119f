"""CascadePSP on top of a semantic segmentation model: the evaluation step of eval.refine.*.

  eval.refine.checkpoint = "DIR"      a 'cascadepsp' checkpoint (a training workdir)
  eval.refine.L = 900, .stages = "global+local"
  eval.refine.images = 0              0: every image; N: N evenly spaced images

Every class present in the model's prediction is refined as a binary mask
(psp_jax.Refiner.refine_labels with background=None: each pixel takes the class of highest
refined probability where one reaches 0.5, else keeps its predicted label), scored by the
evaluator as the `refine` entry (psp_jax/evaluate/post_steps.py).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from psp_jax.evaluate.post_steps import PostStep
from psp_jax.refine.api import Refiner


def refine_step(refine_cfg) -> PostStep:
  """The step of an eval.refine section (checkpoint, L, stages, images)."""
  checkpoint = str(refine_cfg.checkpoint)
  L, stages = int(refine_cfg.get("L", 900)), str(refine_cfg.get("stages", "global+local"))
  try:
    refiner = Refiner(checkpoint)
  except (FileNotFoundError, ValueError) as e:
    raise ValueError(f"eval.refine.checkpoint={checkpoint!r}: {e}") from e

  def apply(rgb, probs):
    labels = np.asarray(jnp.argmax(probs, axis=-1)).astype(np.int32)
    image = np.clip(np.rint(np.asarray(rgb, np.float32)), 0, 255).astype(np.uint8)
    return refiner.refine_labels(image, labels, L=L, stages=stages, background=None)

  return PostStep(key="refine", apply=apply, count=int(refine_cfg.get("images", 0) or 0),
                  count_key="eval.refine.images",
                  describe=dict(setting=f"CascadePSP {checkpoint} (L={L}, {stages})",
                                checkpoint=checkpoint, L=L, stages=stages))


def segmentation_steps(eval_cfg) -> list[PostStep]:
  """Every post-processing step an `eval` section asks for: the DenseCRF, then CascadePSP."""
  from psp_jax.evaluate import post_steps  # pylint: disable=import-outside-toplevel
  steps = post_steps.from_config(eval_cfg)
  refine = eval_cfg.get("refine")
  if refine is not None and refine.get("checkpoint", ""):
    steps.append(refine_step(refine))
  return steps
