"""Steps after the forward that an evaluation scores too: the DenseCRF, CascadePSP on top.

Each step maps an image and the predictor's (H, W, C) probabilities to new probabilities or
to a label map, and gets its own confusion matrix. A step may run on an evenly spaced subset
of the split (eval.crf_images, eval.refine.images: the DenseCRF at 360x480 costs seconds per
image on a CPU); then its entry also holds the numbers WITHOUT the step on the same images
(`without`), so the gain it reports is paired.

  eval.crf = "v2_resnet:xy_bi=22"     DenseCRF preset (psp_jax/postprocess/presets.py)
  eval.crf_images = 0                 0: every image; N: N evenly spaced images
  eval.refine.checkpoint = "DIR"      CascadePSP on top: psp_jax/refine/on_segmentation.py
                                      makes that step (the refine layer sits above this one);
                                      the segmentation task passes it to evaluate_split
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class PostStep:
  """One scored step. apply(rgb (H, W, 3) 0-255, probs (H, W, C)) -> (H, W, C) probabilities
  or an (H, W) label map; it runs on `count` evenly spaced images of the split (0: all; the
  config key `count_key` names it in errors); `describe`: what ran, stored in the
  evaluation's entry under `key`. `images` is set per split by `for_split`."""
  key: str
  apply: Callable[[Any, Any], Any]
  count: int
  count_key: str
  describe: dict
  images: frozenset[int] | None = None  # the split's record indices it runs on (None: all)

  def for_split(self, total: int) -> "PostStep":
    return dataclasses.replace(self, images=spaced_indices(total, self.count, self.count_key))

  def runs_on(self, index: int) -> bool:
    return self.images is None or index in self.images


def spaced_indices(total: int, count: int, what: str) -> frozenset[int] | None:
  """`count` record indices spread evenly over `total` (None: every record)."""
  if count < 0:
    raise ValueError(f"{what}={count}: must be >= 0 (0 runs it on every image)")
  if not count or count >= total:
    return None
  return frozenset((k * total) // count for k in range(count))


def crf_step(spec: str, count: int = 0) -> PostStep:
  """The DenseCRF of preset `spec` on `count` images (eval.crf, eval.crf_images)."""
  from psp_jax.postprocess import crf_probabilities  # pylint: disable=import-outside-toplevel
  from psp_jax.postprocess import resolve  # pylint: disable=import-outside-toplevel
  params = resolve(spec)
  return PostStep(key="crf", apply=lambda rgb, probs: crf_probabilities(rgb, probs, params),
                  count=count, count_key="eval.crf_images",
                  describe=dict(setting=str(spec), params=params.to_dict()))


def from_config(eval_cfg) -> list[PostStep]:
  """The steps of this layer an `eval` config section asks for (the DenseCRF)."""
  if not eval_cfg.get("crf", ""):
    return []
  return [crf_step(eval_cfg.crf, int(eval_cfg.get("crf_images", 0) or 0))]
