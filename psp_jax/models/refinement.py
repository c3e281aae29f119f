"""CascadePSP's refinement module (Cheng et al., CVPR 2020), NHWC.

One module refines a coarse mask in three cascaded passes inside a single forward; every
pass re-runs the same backbone and pyramid pooling on a new 6-channel input:

  pass 1: [rgb, seg, seg, seg]   -> s8a (OS 8)
  pass 2: [rgb, seg, t8a, t8a]   -> s8b (OS 8), s4b (OS 4, through up_1)
  pass 3: [rgb, seg, t8b, t4b]   -> s8c, s4c, and s1 (OS 1, through up_1, up_2, up_3)

where tXX = tanh(sXX resized to the input size). The pieces are the project's own modules,
configured: `ResNet(stem='classic', output_stride=8, dilation_pattern='cascade')` and
`PyramidPooling(reduction=False, branch_bn=False, fusion='bottleneck')` (branches keep the
C = 32*width channels of layer4, no BN; concat then conv1x1 to 16*width with bias, ReLU).

Parameter names mirror the official state_dict so conversion is a rename + transpose:

  feats/...                          feats.*   (conv1, bn1, layer{k}_{i}/...)
  psp/branch{k}_conv, psp/bottleneck psp.stages.{k}.1, psp.bottleneck
  up_{n}/conv_{0,2,3,5}              up_{n}.conv.{0,2,3,5}   (BN, conv, BN, conv)
  up_{n}/conv2_{0,2,3,5}             up_{n}.conv2.{0,2,3,5}
  up_{n}/shortcut                    up_{n}.shortcut
  final_28_{0,2}, final_56_{0,2}     final_28.{0,2}, final_56.{0,2}
  final_11, final_21                 final_11, final_21

The spatial size must be a multiple of 8 (the skip connections are concatenated after x2
upsampling); pad with `pad_to_multiple` as the official inference does (image 0, masks -1).
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from psp_jax.constants import IMAGENET_MEAN, IMAGENET_STD
from psp_jax.models.contract import ModelFamily
from psp_jax.models import ops
from psp_jax.models.ops import resize_bilinear
from psp_jax.models.ppm import PyramidPooling
from psp_jax.models.resnet import BNConfig, ResNet
from psp_jax.preprocessing import Preprocessing

OUTPUT_KEYS = ("s8a", "s8b", "s8c", "s4b", "s4c", "s1")

# PyTorch's default Conv2d init (kaiming_uniform with a=sqrt(5)): U(+-1/sqrt(fan_in)) for the
# kernel and the bias. Used for the layers that CascadePSP leaves at PyTorch defaults.
_torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def _torch_bias_init(fan_in: int):
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def _make_conv(features: int, kernel: int, in_features: int, name: str, dtype: Any) -> nn.Conv:
  """PyTorch-default conv with bias and 'same' padding (kernel 1 or 3)."""
  pad = (kernel - 1) // 2
  return nn.Conv(features, (kernel, kernel), padding=((pad, pad), (pad, pad)), use_bias=True,
                 dtype=dtype, param_dtype=jnp.float32, kernel_init=_torch_kernel_init,
                 bias_init=_torch_bias_init(in_features * kernel * kernel),
                 conv_general_dilated=ops.conv_general_dilated, name=name)


def _conv(x: jnp.ndarray, features: int, kernel: int, name: str, dtype: Any) -> jnp.ndarray:
  return _make_conv(features, kernel, x.shape[-1], name, dtype)(x)


def pad_to_multiple(x: jnp.ndarray | np.ndarray, multiple: int = 8, value: float = 0.0):
  """Pad NHWC `x` at the bottom and right to the next multiple of `multiple` (as the official
  inference: sizes already divisible are left unchanged). Returns (padded, (h, w)); crop the
  outputs with `[:, :h, :w]`. Use value 0 for the normalised image and -1 for mask channels."""
  h, w = x.shape[1], x.shape[2]
  ph, pw = -h % multiple, -w % multiple
  if ph == 0 and pw == 0:
    return x, (h, w)
  lib = np if isinstance(x, np.ndarray) else jnp
  return lib.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), constant_values=value), (h, w)


class UpsampleBlock(nn.Module):
  """CascadePSP's upsampling block U(x_ch, in_ch, out_ch)(p, skip).

  p' = bilinear x2 of p (align_corners=False); q = conv(concat[p', skip]) + shortcut(p');
  out = q + conv2(q), conv = BN ReLU conv3x3 BN ReLU conv3x3 (convs with bias).
  Params: conv_{0,2,3,5}, conv2_{0,2,3,5} (BN, conv, BN, conv), shortcut (1x1 with bias).
  """
  features: int
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  def _double_conv(self, x, prefix: str, train: bool):
    y = nn.relu(self.bn.make(f"{prefix}_0", self.dtype)(x, train))
    y = _conv(y, self.features, 3, f"{prefix}_2", self.dtype)
    y = nn.relu(self.bn.make(f"{prefix}_3", self.dtype)(y, train))
    return _conv(y, self.features, 3, f"{prefix}_5", self.dtype)

  @nn.compact
  def __call__(self, p: jnp.ndarray, skip: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    _, h, w, _ = p.shape
    p = resize_bilinear(p, (2 * h, 2 * w), align_corners=False)
    if skip.shape[1:3] != p.shape[1:3]:
      raise ValueError(f"UpsampleBlock: skip of spatial size {skip.shape[1:3]} does not match the "
                       f"x2-upsampled input {p.shape[1:3]}; input sizes must be multiples of 8")
    q = self._double_conv(jnp.concatenate([p, skip.astype(p.dtype)], axis=-1), "conv", train)
    q = q + _conv(p, self.features, 1, "shortcut", self.dtype)
    return q + self._double_conv(q, "conv2", train)


def cascade_outputs(passes: int = 3) -> tuple[str, ...]:
  """The names of the outputs a cascade of `passes` passes returns (entered at pass 1)."""
  skipped = {3: (), 2: ("s8a",), 1: ("s8a", "s8b", "s4b")}[passes]
  return tuple(k for k in OUTPUT_KEYS if k not in skipped)


class RefinementModule(nn.Module):
  """The CascadePSP refinement module: three cascaded passes in one forward.

  `apply(variables, images, seg, train=False)`:
    images: (N, H, W, 3) ImageNet-normalised RGB; seg: (N, H, W, 1) coarse mask in [-1, 1].
    H and W must be multiples of 8 (see `pad_to_multiple`).
    inter_s8, inter_s4: optional (N, H, W, 1) maps in [-1, 1] of earlier passes (the official
      `forward(x, seg, inter_s8, inter_s4)`): with inter_s8 alone the forward starts at pass 2
      with t8a = inter_s8; with both it runs pass 3 only, with t8b = inter_s8, t4b = inter_s4
      (the local step of inference).
  Returns a dict of float32 LOGITS, all bilinearly resized (align_corners=False) to the input
  size (N, H, W, 1), as the official `out_*` entries:
    's8a' (pass 1, OS 8), 's8b' (pass 2, OS 8), 's4b' (pass 2, OS 4),
    's8c' (pass 3, OS 8), 's4c' (pass 3, OS 4), 's1' (pass 3, full resolution).
  Passes that were skipped are absent from the dict. Probabilities are their sigmoids.

  `passes` (3 published) is the length of the cascade for the cascade-length ablation: with 2
  the forward starts at pass 2 with t8a = seg (no s8a); with 1 it runs pass 3 only with
  t8b = t4b = seg (only s8c, s4c, s1; a given inter_s8 alone serves as both). The parameters
  are the same for every length (pass 3 uses every module), so a checkpoint loads whatever its
  `passes`.

  Attributes:
    depth: backbone depth (50 in the published model).
    width: backbone width (64 published); everything scales with it: PSP branches keep the
      layer4 channels (32*width for depth >= 50), bottleneck 16*width, up_1/up_2/up_3 8*width /
      4*width / width/2, head hidden width/2. Small widths make fast tests.
    bn: BatchNorm behaviour. dtype: compute dtype (params float32, outputs float32).
    passes: 1, 2 or 3 cascade passes (see above).
    seg_skip: 0 (published: off) or the initial value g of a learned scalar `seg_skip_gain`
      that adds g * seg (the coarse input in [-1, 1]) to every output logit, so the module
      starts at its input (sigmoid(+-g)) and its layers learn the correction. Not in the
      paper: the published module has to rebuild the input's boundary from its OS-2 features;
      this is meant to let a narrow module trained from scratch in minutes keep it (on CamVid
      objects it still did not beat its inputs; see the README). Adds one parameter.
  Params: feats, psp, up_1, up_2, up_3, final_28_{0,2}, final_56_{0,2}, final_11, final_21
    (and seg_skip_gain when seg_skip is on).
  """
  depth: int = 50
  width: int = 64
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32
  passes: int = 3
  seg_skip: float = 0.0

  @nn.compact
  def __call__(self, images: jnp.ndarray, seg: jnp.ndarray, inter_s8: jnp.ndarray | None = None,
               inter_s4: jnp.ndarray | None = None, train: bool = False) -> dict[str, jnp.ndarray]:
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"RefinementModule images must be NHWC RGB (N, H, W, 3), got {images.shape}")
    n, h, w, _ = images.shape
    if seg.shape != (n, h, w, 1):
      raise ValueError(f"RefinementModule seg must have shape {(n, h, w, 1)}, got {seg.shape}")
    if h % 8 or w % 8:
      raise ValueError(f"RefinementModule input size {(h, w)} must be a multiple of 8; pad it with "
                       "psp_jax.models.refinement.pad_to_multiple (image 0, masks -1)")
    if self.seg_skip < 0:
      raise ValueError(f"RefinementModule seg_skip must be >= 0 (0: off), got {self.seg_skip!r}")
    if self.passes not in (1, 2, 3):
      raise ValueError(f"RefinementModule passes must be 1, 2 or 3, got {self.passes!r}")
    if inter_s4 is not None and inter_s8 is None:
      raise ValueError("RefinementModule: inter_s4 needs inter_s8 (pass 3 takes both)")
    for name, m in (("inter_s8", inter_s8), ("inter_s4", inter_s4)):
      if m is not None and m.shape != (n, h, w, 1):
        raise ValueError(f"RefinementModule {name} must have shape {(n, h, w, 1)}, got {m.shape}")

    wd = self.width
    dt = self.dtype
    feats = ResNet(self.depth, stem="classic", output_stride=8, dilation_pattern="cascade",
                   width=wd, bn=self.bn, dtype=dt, name="feats")
    psp = PyramidPooling(bins=(1, 2, 3, 6), pool="avg", reduction=False, branch_bn=False,
                         fusion="bottleneck", bottleneck_features=16 * wd, align_corners=False,
                         bn=self.bn, dtype=dt, name="psp")
    up_1 = UpsampleBlock(8 * wd, bn=self.bn, dtype=dt, name="up_1")
    up_2 = UpsampleBlock(4 * wd, bn=self.bn, dtype=dt, name="up_2")
    up_3 = UpsampleBlock(wd // 2, bn=self.bn, dtype=dt, name="up_3")
    hidden = wd // 2
    heads = {  # conv1x1 -> ReLU -> conv1x1 to one logit; shared by the passes
        "final_28": (_make_conv(hidden, 1, 16 * wd, "final_28_0", dt),
                     _make_conv(1, 1, hidden, "final_28_2", dt)),
        "final_56": (_make_conv(hidden, 1, 8 * wd, "final_56_0", dt),
                     _make_conv(1, 1, hidden, "final_56_2", dt)),
    }

    def head(x, name):
      conv_a, conv_b = heads[name]
      return conv_b(nn.relu(conv_a(x))).astype(jnp.float32)

    def full(logits):
      return resize_bilinear(logits, (h, w), align_corners=False)

    def backbone(*maps):
      x = jnp.concatenate([images, seg] + [m.astype(images.dtype) for m in maps], axis=-1)
      f = feats(x, train)
      return psp(f["layer4"], train), f["stem_conv"], f["layer1"]

    # A shorter cascade: the input stands for the maps of skipped passes.
    if self.passes < 3 and inter_s8 is None:
      inter_s8 = seg
    if self.passes < 2 and inter_s4 is None:
      inter_s4 = inter_s8
    out = {}
    if inter_s8 is None:  # pass 1
      p, _, _ = backbone(seg, seg)
      out["s8a"] = full(head(p, "final_28"))
      inter_s8 = jnp.tanh(out["s8a"])
    if inter_s4 is None:  # pass 2
      p, _, f_2 = backbone(inter_s8, inter_s8)
      out["s8b"] = full(head(p, "final_28"))
      out["s4b"] = full(head(up_1(p, f_2, train), "final_56"))
      inter_s8, inter_s4 = jnp.tanh(out["s8b"]), jnp.tanh(out["s4b"])
    # pass 3
    p, f_1, f_2 = backbone(inter_s8, inter_s4)
    out["s8c"] = full(head(p, "final_28"))
    p = up_1(p, f_2, train)
    out["s4c"] = full(head(p, "final_56"))
    p = up_2(p, f_1, train)
    p = up_3(p, images.astype(dt), train)
    p = nn.relu(_conv(jnp.concatenate([p, images.astype(dt)], axis=-1), hidden, 1, "final_11", dt))
    out["s1"] = _conv(p, 1, 1, "final_21", dt).astype(jnp.float32)
    if self.seg_skip:
      gain = self.param("seg_skip_gain", lambda _: jnp.asarray(self.seg_skip, jnp.float32))
      skip = gain * seg.astype(jnp.float32)
      out = {k: v + skip for k, v in out.items()}
    return out



def _example_inputs(model: RefinementModule, size: int) -> tuple[tuple, dict]:
  del model
  size = -(-size // 8) * 8  # H, W multiples of 8
  return (jnp.zeros((1, size, size, 3)), jnp.zeros((1, size, size, 1))), {}


FAMILY = ModelFamily(
    name="cascadepsp", module=RefinementModule, task="refinement", example_inputs=_example_inputs,
    lr_modules=("feats", "psp", "up_1", "up_2", "up_3"),
    preprocessing=Preprocessing(IMAGENET_MEAN, IMAGENET_STD, 255.0, "RGB"),
    tiny=dict(depth=18, width=8, passes=1))
