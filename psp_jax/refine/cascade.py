"""CascadePSP inference: the global step and the local step, on the device.

Global step: the image is resized so that its long side is L (area interpolation when
shrinking; bicubic for the image and bilinear for the mask when enlarging; PyTorch's
`scale_factor` semantics, see `resize.py`), padded bottom/right (image 0 after ImageNet
normalisation, mask -1) and refined by the full three-pass forward. It keeps the probabilities
of s1 (full resolution) and s4c (OS 4), cropped to the resized size.

Local step, at the input size: the global s1 brought to that size (bilinear) and thresholded
to +-1, and s4c as 2p - 1. L x L windows (`tiling.plan_windows`) whose thresholded s1 is more
than 90% or less than 10% foreground are skipped; the others are refined and their s1
probabilities averaged over the kept regions (16-pixel margins dropped except on the image
border); pixels no window kept take the thresholded global s1 (0 or 1).

How a window is refined (`local_mode`):
  'official' (default): as the authors' released code (`safe_forward(model, im, seg_224,
    seg_56)`): the forward is entered at pass 2 with seg = global s1 (+-1) and inter_s8 =
    global s4 (2p - 1); passes 2 and 3 run.
  'pass3': pass 3 only, input [rgb, coarse mask, global s1, global s4] (the shorter reading
    in specs/cascadepsp.md); about 35% cheaper per window.

Shapes and compilation. The model runs through two jitted functions whose input shapes are
bucketed, so nothing big is compiled per window or per image size:
  global forward: (1, Hc, Wc) with the long side padded to a multiple of 8 and the short side
    to a multiple of `bucket` (at most the long side's canvas): for L=900 and bucket=64 at
    most 15 shapes per orientation;
  window forward: (B, Hw, Ww) with B = `window_batch` (the last batch is filled with repeats of
    a window whose output is discarded) and the window canvas padded likewise; images at least
    L x L all share one L x L program.
Padding beyond the multiple of 8 the model needs changes the result slightly (the pyramid
pooling averages over the padded border): bucket=8 pads exactly as the spec says, and
bucket='official' as the released code does (`canvas_size`).
The small per-image-size programs (resizes, window gathering, accumulation) are cheap to
compile. Data stays on the device; the only transfers to the host are the per-window
foreground counts (one small vector per image, to skip windows) and the final result.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from psp_jax.constants import IMAGENET_MEAN, IMAGENET_STD
from psp_jax.refine import resize, tiling

SKIP_LOW, SKIP_HIGH = 0.1, 0.9
STAGES = ("global", "global+local", "local")
LOCAL_MODES = ("official", "pass3")


def round_up(n: int, m: int) -> int:
  return -(-n // m) * m


def canvas_size(h: int, w: int, bucket: int | str) -> tuple[int, int]:
  """Padded (Hc, Wc) of an h x w model input.

  bucket=int (a multiple of 8): the long side to a multiple of 8, the short side to a multiple
    of `bucket` but not beyond the long side's canvas; 8 is the spec's padding.
  bucket='official': exactly the released code's `safe_forward`: when either side is not a
    multiple of 8, BOTH become (n // 8 + 1) * 8, which adds 8 pixels to a side that already
    was a multiple (e.g. 648x900 -> 656x904); otherwise nothing."""
  if bucket == "official":
    if h % 8 or w % 8:
      return (h // 8 + 1) * 8, (w // 8 + 1) * 8
    return h, w
  if isinstance(bucket, str) or bucket < 8 or bucket % 8:
    raise ValueError(f"bucket must be a positive multiple of 8 or 'official', got {bucket!r}")
  if h >= w:
    hc = round_up(h, 8)
    return hc, min(round_up(w, bucket), hc)
  wc = round_up(w, 8)
  return min(round_up(h, bucket), wc), wc


@dataclasses.dataclass
class CascadeInfo:
  """What one refinement did (for logs, tests and benchmarks)."""
  stages: str
  L: int
  input_size: tuple[int, int]
  global_size: tuple[int, int] | None = None
  global_canvas: tuple[int, int] | None = None
  window_size: tuple[int, int] | None = None
  window_canvas: tuple[int, int] | None = None
  windows_total: int = 0
  windows_run: int = 0
  windows_skipped: int = 0
  batches: int = 0


# ----------------------------------------------------------------------------- small jitted ops

@jax.jit
def _normalize(image_u8: jnp.ndarray, mask: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  x = image_u8.astype(jnp.float32) / 255.0
  x = (x - jnp.asarray(IMAGENET_MEAN, jnp.float32)) / jnp.asarray(IMAGENET_STD, jnp.float32)
  return x, jnp.where(mask, 1.0, -1.0).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("canvas",))
def _pad_global(image: jnp.ndarray, seg: jnp.ndarray, canvas: tuple[int, int]):
  h, w = seg.shape
  pads = ((0, canvas[0] - h), (0, canvas[1] - w))
  image = jnp.pad(image, pads + ((0, 0),), constant_values=0.0)
  seg = jnp.pad(seg, pads, constant_values=-1.0)
  return image[None], seg[None, ..., None]


@functools.partial(jax.jit, static_argnames=("size",))
def _crop(x: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
  return x[0, :size[0], :size[1], 0]


@jax.jit
def _local_maps(s1_prob: jnp.ndarray, s4_prob: jnp.ndarray):
  """Global s1 thresholded to +-1 and s4 as 2p - 1 (already at the input size)."""
  return jnp.where(s1_prob > 0.5, 1.0, -1.0), s4_prob * 2.0 - 1.0


@functools.partial(jax.jit, static_argnames=("size",))
def _window_counts(seg: jnp.ndarray, starts: jnp.ndarray, size: tuple[int, int]) -> jnp.ndarray:
  """Foreground pixel count (seg > 0) of every window, from a summed-area table."""
  fg = (seg > 0).astype(jnp.int32)
  sat = jnp.pad(jnp.cumsum(jnp.cumsum(fg, 0), 1), ((1, 0), (1, 0)))
  y, x = starts[:, 0], starts[:, 1]
  wh, ww = size
  return sat[y + wh, x + ww] - sat[y, x + ww] - sat[y + wh, x] + sat[y, x]


@functools.partial(jax.jit, static_argnames=("size", "canvas"))
def _gather(image: jnp.ndarray, maps: jnp.ndarray, starts: jnp.ndarray, size: tuple[int, int],
            canvas: tuple[int, int]):
  """(B, Hc, Wc, 3) image windows (padded with 0) and (B, Hc, Wc, K) map windows (padded -1)."""
  pads = ((0, canvas[0] - size[0]), (0, canvas[1] - size[1]), (0, 0))

  def one(s):
    im = jax.lax.dynamic_slice(image, (s[0], s[1], 0), (size[0], size[1], image.shape[2]))
    mp = jax.lax.dynamic_slice(maps, (s[0], s[1], 0), (size[0], size[1], maps.shape[2]))
    return jnp.pad(im, pads, constant_values=0.0), jnp.pad(mp, pads, constant_values=-1.0)

  return jax.vmap(one)(starts)


@functools.partial(jax.jit, static_argnames=("size",), donate_argnums=(0, 1))
def _accumulate(total: jnp.ndarray, weight: jnp.ndarray, probs: jnp.ndarray, starts: jnp.ndarray,
                keep: jnp.ndarray, valid: jnp.ndarray, size: tuple[int, int]):
  """Add each valid window's probabilities over its kept region into (total, weight). The two
  full-size canvases are donated: updated in place, not copied per window batch (at 4K each
  is 33 MB)."""
  wh, ww = size
  probs = probs[:, :wh, :ww]
  rows = jnp.arange(wh)[None, :, None]
  cols = jnp.arange(ww)[None, None, :]
  k = keep[:, :, None, None]
  inside = ((rows >= k[:, 0]) & (rows < k[:, 1]) & (cols >= k[:, 2]) & (cols < k[:, 3])
            & valid[:, None, None])
  inside = inside.astype(jnp.float32)

  def body(i, carry):
    t, w = carry
    at = (starts[i, 0], starts[i, 1])
    t = jax.lax.dynamic_update_slice(t, jax.lax.dynamic_slice(t, at, size) + probs[i] * inside[i], at)
    w = jax.lax.dynamic_update_slice(w, jax.lax.dynamic_slice(w, at, size) + inside[i], at)
    return t, w

  return jax.lax.fori_loop(0, probs.shape[0], body, (total, weight))


@jax.jit
def _combine(total: jnp.ndarray, weight: jnp.ndarray, s1_sign: jnp.ndarray) -> jnp.ndarray:
  return jnp.where(weight == 0, s1_sign / 2.0 + 0.5, total / jnp.maximum(weight, 1.0))


@jax.jit
def to_uint8(prob: jnp.ndarray) -> jnp.ndarray:
  """floor(255 * p) as uint8 (the official output)."""
  return (jnp.clip(prob, 0.0, 1.0) * 255.0).astype(jnp.uint8)


# ----------------------------------------------------------------------------- the cascade

@functools.lru_cache(maxsize=8)
def compiled_forwards(model, local_mode: str):
  """(global_forward, window_forward) jitted functions of a model (flax modules hash by their
  configuration), shared by every Cascade of that model so that their compilations are too.

  global_forward(variables, image (1, H, W, 3), seg (1, H, W, 1)) -> (s1, s4c) probabilities.
  window_forward(variables, images (B, H, W, 3), maps (B, H, W, K)) -> s1 probabilities (B, H, W);
    maps = [s1, s4] ('official', K=2) or [coarse mask, s1, s4] ('pass3', K=3)."""

  def global_forward(v, image, seg):
    out = model.apply(v, image, seg, train=False)
    return jax.nn.sigmoid(out["s1"]), jax.nn.sigmoid(out["s4c"])

  def window_forward(v, image, maps):
    if local_mode == "official":  # enter at pass 2: seg = s1 (+-1), inter_s8 = s4 (2p - 1)
      out = model.apply(v, image, maps[..., 0:1], maps[..., 1:2], train=False)
    else:  # pass 3 only: seg = coarse mask, t8b = s1, t4b = s4
      out = model.apply(v, image, maps[..., 0:1], maps[..., 1:2], maps[..., 2:3], train=False)
    return jax.nn.sigmoid(out["s1"][..., 0])

  return jax.jit(global_forward), jax.jit(window_forward)


class Cascade:
  """A refinement module with its variables, ready to run the global and local steps.

  model: a `RefinementModule`; variables: its {'params', 'batch_stats'}.
  bucket: multiple the short side of model inputs is padded to, or 'official' (see
    `canvas_size`).
  window_batch: windows per forward of the local step (fixed shape; 1 suits CPUs).
  local_mode: 'official' or 'pass3' (module docstring).
  """

  def __init__(self, model, variables: Any, *, bucket: int | str = 64, window_batch: int = 1,
               local_mode: Literal["official", "pass3"] = "official",
               margin: int = tiling.MARGIN):
    if local_mode not in LOCAL_MODES:
      raise ValueError(f"local_mode must be one of {LOCAL_MODES}, got {local_mode!r}")
    if window_batch < 1:
      raise ValueError(f"window_batch must be >= 1, got {window_batch}")
    canvas_size(8, 8, bucket)  # validates bucket
    self.model = model
    self.variables = variables
    self.bucket = bucket
    self.window_batch = window_batch
    self.local_mode = local_mode
    self.margin = margin

    self.global_forward, self.window_forward = compiled_forwards(model, local_mode)

  # -- steps ------------------------------------------------------------------------------

  def prepare(self, image: np.ndarray, mask: np.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Device copies: the ImageNet-normalised float image (H, W, 3) and the mask as +-1 (H, W)."""
    return _normalize(jnp.asarray(image), jnp.asarray(mask))

  def global_step(self, image: jnp.ndarray, seg: jnp.ndarray, L: int, info: CascadeInfo):
    """(s1, s4c) probabilities at the global size (h', w') (long side L)."""
    h, w = seg.shape
    gh, gw, scale = resize.global_size(h, w, L)
    if max(h, w) > L:
      image_g = resize.resize2d(image, "area", (gh, gw))
      seg_g = resize.resize2d(seg, "area", (gh, gw))
    elif max(h, w) < L:
      image_g = resize.resize2d(image, "bicubic", (gh, gw), scale)
      seg_g = resize.resize2d(seg, "bilinear", (gh, gw), scale)
    else:
      image_g, seg_g = image, seg
    canvas = canvas_size(gh, gw, self.bucket)
    s1, s4 = self.global_forward(self.variables, *_pad_global(image_g, seg_g, canvas))
    info.global_size, info.global_canvas = (gh, gw), canvas
    return _crop(s1, (gh, gw)), _crop(s4, (gh, gw))

  def global_output(self, s1: jnp.ndarray, size: tuple[int, int], L: int) -> jnp.ndarray:
    """Fast mode: the global s1 brought back to the input size (area when the image was
    enlarged, bilinear with align_corners=True when it was shrunk), as the official code."""
    h, w = size
    if max(h, w) < L:
      return resize.resize2d(s1, "area", size)
    if max(h, w) > L:
      return resize.resize2d(s1, "bilinear_ac", size)
    return s1

  def local_step(self, image: jnp.ndarray, seg: jnp.ndarray, s1_sign: jnp.ndarray,
                 s4_sign: jnp.ndarray, L: int, info: CascadeInfo) -> jnp.ndarray:
    """Foreground probability (H, W): windows refined and averaged; elsewhere (s1_sign + 1) / 2.
    s1_sign: +-1 map the windows start from and are skipped by; s4_sign: OS4 map in [-1, 1]."""
    h, w = seg.shape
    plan = tiling.plan_windows(h, w, L, self.margin)
    size = plan.size
    canvas = canvas_size(*size, self.bucket)
    counts = np.asarray(_window_counts(s1_sign, jnp.asarray(plan.starts), size))  # one sync
    frac = counts.astype(np.float32) / np.float32(size[0] * size[1])
    run = ~((frac > np.float32(SKIP_HIGH)) | (frac < np.float32(SKIP_LOW)))
    idx = np.flatnonzero(run)
    info.window_size, info.window_canvas = size, canvas
    info.windows_total, info.windows_run = len(plan), int(idx.size)
    info.windows_skipped = len(plan) - int(idx.size)
    total = jnp.zeros((h, w), jnp.float32)
    weight = jnp.zeros((h, w), jnp.float32)
    if idx.size:
      parts = [s1_sign, s4_sign] if self.local_mode == "official" else [seg, s1_sign, s4_sign]
      maps = jnp.stack(parts, axis=-1)
      b = self.window_batch
      for lo in range(0, idx.size, b):
        chunk = idx[lo:lo + b]
        valid = np.zeros(b, bool)
        valid[:chunk.size] = True
        chunk = np.concatenate([chunk, np.full(b - chunk.size, chunk[0])])
        starts = jnp.asarray(plan.starts[chunk])
        images, window_maps = _gather(image, maps, starts, size, canvas)
        probs = self.window_forward(self.variables, images, window_maps)
        total, weight = _accumulate(total, weight, probs, starts, jnp.asarray(plan.keep[chunk]),
                                    jnp.asarray(valid), size)
        info.batches += 1
    return _combine(total, weight, s1_sign)

  def run_roi(self, image: np.ndarray, mask: np.ndarray, box: tuple[int, int, int, int],
              context: tuple[int, int, int, int], L: int = 900, stages: str = "global+local"
              ) -> tuple[np.ndarray, CascadeInfo]:
    """Refine only `box` (x0, y0, x1, y1), seeing the larger `context` box around it: the
    cascade runs on the context crop and its probabilities inside `box` replace the input
    mask there; elsewhere the output is the input (0 or 1). float32 (H, W) on the host."""
    x0, y0, x1, y1 = context
    sub, info = self.run(np.ascontiguousarray(image[y0:y1, x0:x1]), mask[y0:y1, x0:x1], L, stages)
    prob = mask.astype(np.float32)
    bx0, by0, bx1, by1 = box
    prob[by0:by1, bx0:bx1] = np.asarray(sub)[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0]
    return prob, info

  def run(self, image: np.ndarray, mask: np.ndarray, L: int = 900, stages: str = "global+local"
          ) -> tuple[jnp.ndarray, CascadeInfo]:
    """Foreground probability (H, W) on the device of an RGB uint8 image and a bool mask."""
    if stages not in STAGES:
      raise ValueError(f"stages must be one of {STAGES}, got {stages!r}")
    if int(L) != L or L < 8:
      raise ValueError(f"L must be an integer >= 8, got {L}")
    L = int(L)
    h, w = mask.shape
    if stages != "global":
      tiling.plan_windows(2, 2, L, self.margin)  # fail on a too-small L before any work
    info = CascadeInfo(stages=stages, L=L, input_size=(h, w))
    image_d, seg_d = self.prepare(image, mask)
    if stages == "local":
      return self.local_step(image_d, seg_d, seg_d, seg_d, L, info), info
    s1, s4 = self.global_step(image_d, seg_d, L, info)
    if stages == "global":
      return self.global_output(s1, (h, w), L), info
    # the global maps at the input size (bilinear, align_corners=False, size=(h, w))
    s1_sign, s4_sign = _local_maps(resize.resize2d(s1, "bilinear", (h, w)),
                                   resize.resize2d(s4, "bilinear", (h, w)))
    return self.local_step(image_d, seg_d, s1_sign, s4_sign, L, info), info
