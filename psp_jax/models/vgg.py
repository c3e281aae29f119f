"""VGG-16 backbones (NHWC, no BatchNorm): DeepLab's dilated variant and the plain ImageNet one.

Conv blocks 2x64, 2x128, 3x256, 3x512, 3x512; every conv 3x3, padding = dilation, bias, ReLU.
Params `conv{b}_{i}` (the Caffe names; torchvision's `features.{0,2,5,...,28}`).

layout='deeplab' (DeepLab v1 LargeFOV / v2-VGG, output stride 8):
  pool1-3  max 3x3, stride 2, padding 1, ceil rounding   (321 -> 161 -> 81 -> 41)
  pool4    max 3x3, stride 1, padding 1
  conv5_*  dilation 2
  pool5    max 3x3, stride 1, padding 1
  pool5a   average 3x3, stride 1, padding 1 (LargeFOV only: `pool5a=True`)
layout='imagenet' (torchvision's VGG-16 features, output stride 32): max 2x2 stride 2 after
  every block.

`VGG16` returns a dict: 'conv{b}' (block b's last ReLU), 'pool{b}', 'out' (what the head
reads: pool5a, else pool5). `VGG16Classifier` is the ImageNet network as convolutions
(backbone + fc6 7x7 4096 -> fc7 1x1 4096 -> fc8 1x1 1000): the target of
`psp-jax convert --model vgg16-torchvision`, whose params load into DeepLab v1 by
`train.init_checkpoint` (conv layers always; fc6/fc7 when converted with decimation to
3x3 x 1024, the LargeFOV shapes).
"""
from __future__ import annotations

from typing import Any, Literal

import flax.linen as nn
import jax.numpy as jnp

from psp_jax.constants import IMAGENET_MEAN, IMAGENET_STD
from psp_jax.models.aspp import FCHead
from psp_jax.models.contract import ModelFamily, image_inputs
from psp_jax.models.pooling import avg_pool, max_pool
from psp_jax.models.resnet import BNConfig, conv
from psp_jax.preprocessing import Preprocessing

VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
VGG_LAYOUTS = ("deeplab", "imagenet")


class VGG16(nn.Module):
  """VGG-16 convolutional body (module docstring).

  Attributes:
    layout: 'deeplab' (output stride 8, dilated conv5) or 'imagenet' (output stride 32).
    pool5a: LargeFOV's extra 3x3 average pool after pool5 (deeplab layout only).
    width: channels of block 1 (64 in the published model); all blocks scale with it.
    bn: unused (VGG-16 has no BatchNorm); kept so every backbone takes the same fields.
    dtype: compute dtype (params float32).
  """
  layout: Literal["deeplab", "imagenet"] = "deeplab"
  pool5a: bool = False
  width: int = 64
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> dict[str, jnp.ndarray]:
    del train  # no BatchNorm, no dropout
    if self.layout not in VGG_LAYOUTS:
      raise ValueError(f"VGG16.layout must be one of {VGG_LAYOUTS}, got {self.layout!r}")
    if self.pool5a and self.layout != "deeplab":
      raise ValueError("VGG16.pool5a=True needs layout='deeplab' (LargeFOV's pool5a)")
    if x.ndim != 4:
      raise ValueError(f"VGG16 input must be NHWC of rank 4, got shape {x.shape}")
    if self.width < 1:
      raise ValueError(f"VGG16.width must be >= 1, got {self.width}")
    deeplab = self.layout == "deeplab"
    y = x.astype(self.dtype)
    feats = {}
    for b, (n, channels) in enumerate(VGG16_BLOCKS, start=1):
      dilation = 2 if deeplab and b == 5 else 1
      for i in range(1, n + 1):
        y = nn.relu(conv(channels * self.width // 64, 3, dilation=dilation, use_bias=True,
                         dtype=self.dtype, name=f"conv{b}_{i}")(y))
      feats[f"conv{b}"] = y
      if not deeplab:
        y = max_pool(y, 2, 2)
      elif b <= 3:
        y = max_pool(y, 3, 2, padding=1, ceil=True)
      else:
        y = max_pool(y, 3, 1, padding=1)
      feats[f"pool{b}"] = y
    if self.pool5a:
      y = avg_pool(y, 3, 1, padding=1)
      feats["pool5a"] = y
    feats["out"] = y
    return feats


class VGG16Classifier(nn.Module):
  """The ImageNet VGG-16 as a fully convolutional network (for weight conversion).

  fc6 is a 7x7 conv padded by 3 (the centre of a 7x7 map is torchvision's Linear fc6 on a
  224 image); `fc_kernel=3, fc_features=1024` holds LargeFOV's decimated fc6/fc7.
  Returns VGG16's features plus 'logits' (N, H/32, W/32, num_classes).
  Params: `backbone/conv*`, `head/{fc6,fc7,fc8}`, as DeepLab v1's.
  """
  num_classes: int = 1000
  fc_kernel: int = 7
  fc_features: int = 4096
  width: int = 64
  dropout: float = 0.5
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jnp.ndarray, train: bool = False) -> dict[str, jnp.ndarray]:
    feats = VGG16("imagenet", width=self.width, dtype=self.dtype, name="backbone")(images, train)
    logits = FCHead(self.num_classes, self.fc_features, self.fc_kernel, 1, self.dropout,
                    self.dtype, name="head")(feats["out"], train)
    return {**feats, "logits": logits}


# torchvision's ImageNet weights: RGB inputs normalised with the ImageNet mean/std.
FAMILY = ModelFamily(name="vgg16", module=VGG16Classifier, task="backbone",
                     example_inputs=image_inputs(),
                     preprocessing=Preprocessing(IMAGENET_MEAN, IMAGENET_STD, 255.0, "RGB"),
                     tiny=dict(num_classes=10, fc_features=8, width=4))
