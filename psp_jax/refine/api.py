"""`psp_jax.Refiner`: CascadePSP mask refinement with the official `refine` contract.

  refiner = psp_jax.Refiner(CKPT)                      # a 'cascadepsp' checkpoint (convert/train)
  soft = refiner.refine(image, mask)                   # uint8 HxW, threshold at 127
  soft = refiner.refine(image, mask, fast=True)        # global step only
  res = refiner.refine_result(image, mask)             # res.probability (float32), res.mask (bool)
  labels = refiner.refine_labels(image, label_map)     # several objects at once

Inputs: `image` (H, W, 3) uint8, RGB unless color_order='BGR' (OpenCV arrays); `mask` (H, W),
(H, W, 1) or (H, W, C) with equal channels, bool / uint8 (foreground > 127; a 0/1 integer mask
is taken as is) / float (foreground > 0.5). A mask that is not two-level (JPEG noise, soft
masks) is thresholded with a `NonBinaryMaskWarning`.

Output (`refine`): the foreground probability p at the input size as uint8 floor(255 p), as the
official segmentation-refinement package; `return_soft=False` returns the binary mask as
uint8 0/255 (p > 127 / 255) instead.

Stages: stages='global' (= fast=True) runs the global step only; 'global+local' (default) adds
the local step; 'local' skips the global step and starts the windows from the input mask.

L (default 900): the long side of the global step and the window size of the local step.
Larger L gives the global step more resolution and context and the local step fewer windows,
at a memory cost growing as L^2 (one full-width float32 forward at L=900 peaks near 2.5 GB of
host memory on CPU; the local step adds window_batch windows of L x L). Smaller L uses less
memory and makes fast mode faster (~L^2), but the global step sees a coarser image, and the
local step needs L >= 66 (its window step is L // 2 - 32). The model was trained on 224x224
crops; 900 is the published default.

Compilation: model inputs are padded to bucketed shapes (see `cascade.py`), so a folder of
images of many sizes compiles a handful of programs, and refiners of the same model share
them. Setting JAX_COMPILATION_CACHE_DIR=DIR (JAX's persistent cache, works on CPU too) reuses
them across processes: the first full-width refine on this 2-core CPU drops from about 26 s
to 20 s. Nothing is ever downloaded: the weights
come from the checkpoint (`psp-jax convert --model cascadepsp` of the official file).
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Literal, Sequence

import jax
import numpy as np

from psp_jax import checkpoint as ckpt_lib
from psp_jax.models import build
from psp_jax.refine import cascade, masks


@dataclasses.dataclass
class RefineResult:
  """One refinement. probability: float32 (H, W) in [0, 1]; soft: uint8 (H, W) = floor(255 p)
  (what `refine` returns); mask: bool (H, W) = soft > 127, the binary mask users threshold
  the soft output to; info: what ran (stages, sizes, windows run and skipped)."""
  probability: np.ndarray
  soft: np.ndarray
  mask: np.ndarray
  info: cascade.CascadeInfo | None = None


def _default_bucket() -> int:
  # CPUs compile the model in seconds and pay for every padded pixel: pad as little as the
  # model needs. Accelerators compile for much longer: bucket the short side.
  return 8 if jax.default_backend() == "cpu" else 64


def _default_window_batch() -> int:
  return 1 if jax.default_backend() == "cpu" else 4


class Refiner:
  """CascadePSP refinement with a checkpoint (see the module docstring).

  checkpoint: a 'cascadepsp' checkpoint directory (root, step or training workdir).
  dtype: compute dtype override, e.g. 'bfloat16' on GPU/TPU (slower on CPUs); None keeps the
    checkpoint's (float32 for converted weights).
  bucket: the short side of model inputs is padded to a multiple of this (default 8 on CPU,
    i.e. exactly the spec's padding, 64 on accelerators to bound compilations), or 'official'
    for the released code's padding (bit-for-bit comparisons with it).
  window_batch: local-step windows per forward (default 1 on CPU, 4 on accelerators).
  local_mode: 'official' (the released code: windows enter the forward at pass 2) or 'pass3'.
  """

  def __init__(self, checkpoint: str | pathlib.Path, dtype: str | None = None, *,
               bucket: int | str | None = None, window_batch: int | None = None,
               local_mode: Literal["official", "pass3"] = "official"):
    meta = ckpt_lib.read_meta(checkpoint)
    family = build.family_of(meta.get("model", {}))
    if family.task != "refinement":
      raise ValueError(f"{checkpoint}: a {family.name!r} checkpoint ({family.task}) cannot refine "
                       "masks; Refiner needs a refinement checkpoint such as 'cascadepsp' "
                       "(psp-jax convert --model cascadepsp ...)")
    model, variables = ckpt_lib.load(checkpoint, dtype=dtype)
    self.checkpoint = str(checkpoint)
    self.meta = meta
    self.cascade = cascade.Cascade(
        model, variables, bucket=bucket or _default_bucket(),
        window_batch=window_batch or _default_window_batch(), local_mode=local_mode)

  # -- the official contract ---------------------------------------------------------------

  def refine(self, image, mask, fast: bool = False, L: int = 900, *, stages: str | None = None,
             color_order: str = "RGB", roi: Sequence[int] | None = None, roi_margin: float = 0.25,
             return_soft: bool = True) -> np.ndarray:
    """uint8 (H, W) refined mask of the input size: floor(255 p) (threshold it at 127), or
    0/255 when return_soft=False. fast=True: global step only. roi=(x0, y0, x1, y1): refine
    only that box (with roi_margin x its longer side of context) and keep the input mask
    elsewhere."""
    res = self.refine_result(image, mask, fast, L, stages=stages, color_order=color_order,
                             roi=roi, roi_margin=roi_margin)
    return res.soft if return_soft else (res.mask.astype(np.uint8) * 255)

  # -- richer results ----------------------------------------------------------------------

  def refine_result(self, image, mask, fast: bool = False, L: int = 900, *,
                    stages: str | None = None, color_order: str = "RGB",
                    roi: Sequence[int] | None = None, roi_margin: float = 0.25) -> RefineResult:
    """Like `refine`, returning the float probability, the uint8 soft mask and the binary mask."""
    image = masks.check_image(image, "image", color_order)
    binary = masks.to_binary(mask, "mask", image.shape)
    stages = self._stages(fast, stages)
    h, w = binary.shape
    if roi is None:
      prob, info = self.cascade.run(image, binary, L, stages)
      soft = np.asarray(cascade.to_uint8(prob))
      prob = np.asarray(prob)
    else:
      box = masks.check_box(roi, h, w)
      prob, info = self.cascade.run_roi(image, binary, box, masks.context_box(box, h, w, roi_margin),
                                        L, stages)
      soft = np.asarray(cascade.to_uint8(prob))
    return RefineResult(probability=prob, soft=soft, mask=soft > 127, info=info)

  def refine_labels(self, image, labels, fast: bool = False, L: int = 900, *,
                    background: int | None = 0, stages: str | None = None, color_order: str = "RGB",
                    return_probabilities: bool = False):
    """Refine a multi-class label map (H, W) of integers: every class other than `background`
    present is refined as a binary mask; each pixel takes the class of highest refined
    probability when that probability is >= 0.5, else `background`. background=None (semantic
    segmentation, where every class is an object: CamVid, ADE20K): every class present is
    refined, and a pixel no refined class claims keeps its input label. Returns the label map
    (the input's dtype), and with return_probabilities=True also {class: probability}."""
    image = masks.check_image(image, "image", color_order)
    labels = masks.to_labels(labels, "labels", image.shape)
    stages = self._stages(fast, stages)
    classes = [int(c) for c in np.unique(labels) if c != background]
    probs = {}
    for c in classes:
      prob, _ = self.cascade.run(image, labels == c, L, stages)
      probs[c] = np.asarray(prob)
    out = labels.copy() if background is None else np.full(labels.shape, background, labels.dtype)
    if classes:
      stack = np.stack([probs[c] for c in classes])
      best = stack.argmax(0)
      fg = stack.max(0) >= 0.5
      out[fg] = np.asarray(classes, labels.dtype)[best[fg]]
    return (out, probs) if return_probabilities else out

  @staticmethod
  def _stages(fast: bool, stages: str | None) -> str:
    if stages is None:
      return "global" if fast else "global+local"
    if stages not in cascade.STAGES:
      raise ValueError(f"stages must be one of {cascade.STAGES}, got {stages!r}")
    if fast and stages != "global":
      raise ValueError(f"fast=True means stages='global'; got stages={stages!r}")
    return stages
