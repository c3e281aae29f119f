"""Steps after the forward that an evaluation scores too: the DenseCRF and CascadePSP refinement.

Each step maps an image and the predictor's (H, W, C) probabilities to new probabilities or
to a label map, and gets its own confusion matrix. A step may run on an evenly spaced subset
of the split (eval.crf_images, eval.refine.images: the DenseCRF at 360x480 costs seconds per
image on a CPU); then its entry also holds the numbers WITHOUT the step on the same images
(`without`), so the gain it reports is paired.

  eval.crf = "v2_resnet:xy_bi=22"     DenseCRF preset (psp_jax/postprocess/presets.py)
  eval.crf_images = 0                 0: every image; N: N evenly spaced images
  eval.refine.checkpoint = "DIR"      a 'cascadepsp' checkpoint (a training workdir): every
                                      class present in the prediction is refined as a binary
                                      mask (psp_jax.Refiner.refine_labels with background=None)
  eval.refine.L, .stages, .images     the refinement's L, its stages, and its subset
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class PostStep:
  """One scored step. apply(rgb (H, W, 3) 0-255, probs (H, W, C)) -> (H, W, C) probabilities
  or an (H, W) label map; `images`: the split's record indices it runs on (None: all);
  `describe`: what ran, stored in the evaluation's entry under `key`."""
  key: str
  apply: Callable[[np.ndarray, Any], Any]
  images: frozenset[int] | None
  describe: dict

  def runs_on(self, index: int) -> bool:
    return self.images is None or index in self.images


def spaced_indices(total: int, count: int, what: str) -> frozenset[int] | None:
  """`count` record indices spread evenly over `total` (None: every record)."""
  if count < 0:
    raise ValueError(f"{what}={count}: must be >= 0 (0 runs it on every image)")
  if not count or count >= total:
    return None
  return frozenset((k * total) // count for k in range(count))


def crf_step(spec: str, count: int, total: int) -> PostStep:
  """The DenseCRF of eval.crf on eval.crf_images images."""
  from psp_jax.postprocess import crf_probabilities  # pylint: disable=import-outside-toplevel
  from psp_jax.postprocess import resolve  # pylint: disable=import-outside-toplevel
  params = resolve(spec)
  return PostStep(key="crf", apply=lambda rgb, probs: crf_probabilities(rgb, probs, params),
                  images=spaced_indices(total, count, "eval.crf_images"),
                  describe=dict(setting=str(spec), params=params.to_dict()))


def refine_step(refine_cfg, count_total: int) -> PostStep:
  """CascadePSP per-class refinement with eval.refine.* (checkpoint, L, stages, images)."""
  from psp_jax.refine.api import Refiner  # pylint: disable=import-outside-toplevel
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

  return PostStep(key="refine", apply=apply,
                  images=spaced_indices(count_total, int(refine_cfg.get("images", 0) or 0),
                                        "eval.refine.images"),
                  describe=dict(setting=f"CascadePSP {checkpoint} (L={L}, {stages})",
                                checkpoint=checkpoint, L=L, stages=stages))


def from_config(eval_cfg, total: int) -> list[PostStep]:
  """The steps an `eval` config section asks for, in the order they are reported."""
  steps = []
  if eval_cfg.get("crf", ""):
    steps.append(crf_step(eval_cfg.crf, int(eval_cfg.get("crf_images", 0) or 0), total))
  refine = eval_cfg.get("refine")
  if refine is not None and refine.get("checkpoint", ""):
    steps.append(refine_step(refine, total))
  return steps
