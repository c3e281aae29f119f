"""Dilated ResNet backbones (NHWC) for PSPNet and CascadePSP.

Parameter names mirror the PyTorch checkpoints so conversion is a rename + transpose:
`conv1/bn1[/conv2/bn2/conv3/bn3]` for the stem, `layer{1..4}/{i}/conv{1,2,3}`,
`bn{1,2,3}` and `downsample_conv/downsample_bn` in the blocks.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

import flax.linen as nn
import jax.numpy as jnp

from psp_jax.constants import IMAGENET_MEAN, IMAGENET_STD
from psp_jax.models import ops
from psp_jax.models.contract import ModelFamily, image_inputs
from psp_jax.models.normalization import BatchNorm
from psp_jax.models.pooling import max_pool
from psp_jax.preprocessing import Preprocessing

# Blocks per stage and block type for each supported depth.
RESNET_LAYOUTS: dict[int, tuple[str, tuple[int, int, int, int]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    269: ("bottleneck", (3, 30, 48, 8)),
}
STAGE_PLANES = (64, 128, 256, 512)
EXPANSION = {"basic": 1, "bottleneck": 4}

# PyTorch ResNets initialise convs with kaiming_normal_(mode='fan_out', nonlinearity='relu').
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


@dataclasses.dataclass(frozen=True)
class BNConfig:
  """How every BatchNorm of a model behaves (see `psp_jax.models.normalization`)."""
  momentum: float = 0.9
  epsilon: float = 1e-5
  axis_name: str | None = None
  group_size: int | None = None
  frozen: bool = False

  def make(self, name: str, dtype: Any) -> BatchNorm:
    return BatchNorm(momentum=self.momentum, epsilon=self.epsilon, axis_name=self.axis_name,
                     group_size=self.group_size, frozen=self.frozen, dtype=dtype, name=name)


def conv(features: int, kernel: int, *, stride: int = 1, dilation: int = 1, use_bias: bool = False,
         dtype: Any = jnp.float32, name: str | None = None, padding: int | None = None) -> nn.Conv:
  """PyTorch-style conv: explicit symmetric padding (default dilation*(k-1)/2), float32 params."""
  pad = dilation * (kernel - 1) // 2 if padding is None else padding
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                 kernel_dilation=(dilation, dilation), use_bias=use_bias, dtype=dtype,
                 param_dtype=jnp.float32, kernel_init=conv_init,
                 conv_general_dilated=ops.conv_general_dilated, name=name)


DILATION_PATTERNS = ("semseg", "cascade", "torchvision")
BLOCK_LAYOUTS = ("torchvision", "msra")


def stage_dilations(output_stride: int, pattern: str, blocks: tuple[int, ...],
                    multi_grid: tuple[int, ...] = ()) -> list[tuple[int, list[int]]]:
  """(stride, per-block dilations) of layer1..layer4.

  pattern 'semseg': every block of a dilated stage uses its dilation (hszhao/semseg, and the
    DeepLab v2/v3 ResNets: layer3 at 2, layer4 at 4 for output stride 8).
  pattern 'cascade': the first block of a dilated stage keeps dilation 1 (CascadePSP).
  pattern 'torchvision': the first block of a dilated stage keeps the previous stage's
    dilation (torchvision's `replace_stride_with_dilation`: layer4 at OS 8 is 2, 4, 4).
  multi_grid (DeepLab v3): layer4's block i gets the stage's rate times multi_grid[i]
    (OS 16: 2 * (1, 2, 4)); one factor per layer4 block, () for none.
  """
  if output_stride == 8:
    strides, dil = (1, 2, 1, 1), (1, 1, 2, 4)
  elif output_stride == 16:
    strides, dil = (1, 2, 2, 1), (1, 1, 1, 2)
  elif output_stride == 32:
    strides, dil = (1, 2, 2, 2), (1, 1, 1, 1)
  else:
    raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
  if pattern not in DILATION_PATTERNS:
    raise ValueError(f"dilation_pattern must be one of {DILATION_PATTERNS}, got {pattern!r}")
  multi_grid = tuple(int(m) for m in multi_grid)
  if multi_grid and (len(multi_grid) != blocks[3] or min(multi_grid) < 1):
    raise ValueError(f"multi_grid={multi_grid} needs one positive factor per layer4 block; this "
                     f"depth has {blocks[3]} layer4 blocks")
  out = []
  previous = 1
  for stage, (stride, d, n) in enumerate(zip(strides, dil, blocks)):
    per_block = [d] * n
    if pattern == "cascade" and d > 1:
      per_block[0] = 1
    elif pattern == "torchvision":
      per_block[0] = previous
    if stage == 3 and multi_grid:
      per_block = [d * m for m in multi_grid]
    out.append((stride, per_block))
    previous = d
  return out


class BasicBlock(nn.Module):
  """Two 3x3 convs (ResNet-18/34); both carry the dilation, the first the stride."""
  planes: int
  stride: int = 1
  dilation: int = 1
  downsample: bool = False
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    y = conv(self.planes, 3, stride=self.stride, dilation=self.dilation, dtype=self.dtype, name="conv1")(x)
    y = nn.relu(self.bn.make("bn1", self.dtype)(y, train))
    y = conv(self.planes, 3, dilation=self.dilation, dtype=self.dtype, name="conv2")(y)
    y = self.bn.make("bn2", self.dtype)(y, train)
    if self.downsample:
      x = conv(self.planes, 1, stride=self.stride, dtype=self.dtype, name="downsample_conv")(x)
      x = self.bn.make("downsample_bn", self.dtype)(x, train)
    return ops.materialize(nn.relu(y + x))


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (dilation) -> 1x1 (x4 channels), identity or projected shortcut.

  The stride sits on the 3x3 conv (torchvision, semseg) or, with stride_in_1x1, on the first
  1x1 conv (the original MSRA/Caffe ResNet of DeepLab v2). Same parameters either way.
  """
  planes: int
  stride: int = 1
  dilation: int = 1
  downsample: bool = False
  stride_in_1x1: bool = False
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    s1, s3 = (self.stride, 1) if self.stride_in_1x1 else (1, self.stride)
    y = conv(self.planes, 1, stride=s1, dtype=self.dtype, name="conv1")(x)
    y = nn.relu(self.bn.make("bn1", self.dtype)(y, train))
    y = conv(self.planes, 3, stride=s3, dilation=self.dilation, dtype=self.dtype, name="conv2")(y)
    y = nn.relu(self.bn.make("bn2", self.dtype)(y, train))
    y = conv(self.planes * 4, 1, dtype=self.dtype, name="conv3")(y)
    y = self.bn.make("bn3", self.dtype)(y, train)
    if self.downsample:
      x = conv(self.planes * 4, 1, stride=self.stride, dtype=self.dtype, name="downsample_conv")(x)
      x = self.bn.make("downsample_bn", self.dtype)(x, train)
    return ops.materialize(nn.relu(y + x))


class ResNet(nn.Module):
  """Dilated ResNet returning intermediate features.

  Attributes:
    depth: 18, 34, 50, 101, 152 or 269.
    stem: 'deep' (three 3x3 convs, 128 channels: semseg/PSPNet) or 'classic' (one 7x7 conv,
      64 channels: torchvision/CascadePSP).
    output_stride: 8, 16 or 32.
    dilation_pattern: 'semseg', 'cascade' or 'torchvision' (see `stage_dilations`).
    width: channels of layer1's 3x3 convs (64 in every published model); the stem and all
      stages scale with it. Small widths make fast tests and CPU experiments.
    layout: where the blocks stride and how the stem pools. 'torchvision' (semseg, CascadePSP,
      torchvision, DeepLab v3): stride on the bottleneck's 3x3 conv, stem max pool 3x3/2 pad 1
      with floor rounding. 'msra' (the original Caffe ResNet of DeepLab v2): stride on the
      first 1x1 conv and the stem pool with ceil rounding (321 -> 161 -> 81 -> 41).
      Parameters are identical; bottleneck depths only.
    multi_grid: DeepLab v3's per-block factors of layer4's rate, e.g. (1, 2, 4); () = none.
    bn: BatchNorm behaviour. dtype: compute dtype (params stay float32).

  Returns a dict of NHWC features: 'stem_conv' (first conv output before its BN, /2),
  'stem' (after max-pool, /4), 'layer1' (/4), 'layer2' (/8), 'layer3', 'layer4'.
  """
  depth: int = 50
  stem: Literal["deep", "classic"] = "deep"
  output_stride: int = 8
  dilation_pattern: Literal["semseg", "cascade", "torchvision"] = "semseg"
  width: int = 64
  layout: Literal["torchvision", "msra"] = "torchvision"
  multi_grid: tuple[int, ...] = ()
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> dict[str, jnp.ndarray]:
    if self.depth not in RESNET_LAYOUTS:
      raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYOUTS)}, got {self.depth}")
    if self.stem not in ("deep", "classic"):
      raise ValueError(f"ResNet stem must be 'deep' or 'classic', got {self.stem!r}")
    if x.ndim != 4:
      raise ValueError(f"ResNet input must be NHWC of rank 4, got shape {x.shape}")
    if self.width < 1:
      raise ValueError(f"ResNet width must be >= 1, got {self.width}")
    w = self.width
    block_type, blocks = RESNET_LAYOUTS[self.depth]
    if self.layout not in BLOCK_LAYOUTS:
      raise ValueError(f"ResNet layout must be one of {BLOCK_LAYOUTS}, got {self.layout!r}")
    if self.layout == "msra" and block_type != "bottleneck":
      raise ValueError(f"ResNet layout='msra' needs a bottleneck depth (50, 101, 152, 269), "
                       f"got depth={self.depth}")
    block_cls = Bottleneck if block_type == "bottleneck" else BasicBlock
    block_kw = {"stride_in_1x1": True} if self.layout == "msra" else {}
    expansion = EXPANSION[block_type]
    x = x.astype(self.dtype)
    feats = {}
    if self.stem == "deep":
      y = conv(w, 3, stride=2, dtype=self.dtype, name="conv1")(x)
      feats["stem_conv"] = y
      y = nn.relu(self.bn.make("bn1", self.dtype)(y, train))
      y = conv(w, 3, dtype=self.dtype, name="conv2")(y)
      y = nn.relu(self.bn.make("bn2", self.dtype)(y, train))
      y = conv(2 * w, 3, dtype=self.dtype, name="conv3")(y)
      y = nn.relu(self.bn.make("bn3", self.dtype)(y, train))
      channels = 2 * w
    else:
      y = conv(w, 7, stride=2, dtype=self.dtype, name="conv1")(x)
      feats["stem_conv"] = y
      y = nn.relu(self.bn.make("bn1", self.dtype)(y, train))
      channels = w
    if self.layout == "msra":
      y = max_pool(y, 3, 2, padding=1, ceil=True)
    else:
      y = max_pool(y, 3, 2, padding=1)
    feats["stem"] = y

    stage_planes = [p * w // 64 for p in STAGE_PLANES]
    for stage, (planes, (stride, dilations)) in enumerate(
        zip(stage_planes, stage_dilations(self.output_stride, self.dilation_pattern, blocks,
                                          tuple(self.multi_grid))), start=1):
      for i, dilation in enumerate(dilations):
        s = stride if i == 0 else 1
        needs_proj = i == 0 and (s != 1 or channels != planes * expansion)
        y = block_cls(planes, stride=s, dilation=dilation, downsample=needs_proj, bn=self.bn,
                      dtype=self.dtype, name=f"layer{stage}_{i}", **block_kw)(y, train)
        channels = planes * expansion
      feats[f"layer{stage}"] = y
    return feats


# A backbone-only model: converted ImageNet weights meant for `train.init_checkpoint`.
FAMILY = ModelFamily(name="resnet", module=ResNet, task="backbone", example_inputs=image_inputs(),
                     preprocessing=Preprocessing(IMAGENET_MEAN, IMAGENET_STD, 255.0, "RGB"),
                     tiny=dict(depth=18, stem="classic", width=8))
