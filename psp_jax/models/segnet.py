"""SegNet and SegNet-Basic (Badrinarayanan, Kendall, Cipolla, TPAMI 2017), as the SegNet
tutorial's Caffe prototxts define them (segnet_train.prototxt, segnet_basic_train.prototxt).

An encoder of conv -> BN (-> ReLU) blocks, each followed by 2x2 max pooling that keeps its
argmax indices, and a mirrored decoder that unpools with those indices into the encoder's
exact sizes (Caffe ceil rounding: 360x480 -> 180x240 -> 90x120 -> 45x60 -> 23x30 -> 12x15
and back), so the logits come out at the input size with no interpolation.

  SegNet        VGG-16 encoder: 3x3 convs [64, 64] [128, 128] [256 x3] [512 x3] [512 x3], a
                pool after each stage; decoder stage s unpools then mirrors encoder stage s:
                conv s_j_D outputs the input width of encoder conv s_j, i.e. [512, 512, 512],
                [512, 512, 256], [256, 256, 128], [128, 64], [64]; the last conv (conv1_1_D,
                3x3 64 -> K, bias, no BN or ReLU) is the classifier. 29,449,355 params (K=11).
  SegNet-Basic  input LRN (5 channels, alpha 1e-4, beta 0.75, k 1), 4 x [7x7 conv 64 -> BN ->
                ReLU -> pool], 4 x [unpool -> 7x7 conv 64 -> BN] with NO ReLU, then a 1x1
                classifier 64 -> K. 1,416,587 params (K=11).

Every conv has a bias (Caffe's), He-normal (Caffe "msra", fan-in) weights and zero biases;
every BN starts at scale 1, shift 0.001. Parameter names are the prototxt layer names
(conv1_1, conv1_1_bn, ..., conv1_2_D_bn, conv1_1_D; conv1, ..., conv_decode1_bn,
conv_classifier), so converting Caffe weights is a rename and a transpose. Inputs are raw
0-255 BGR without mean subtraction (`FAMILY.preprocessing`).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from psp_jax.models.contract import ModelFamily, image_inputs
from psp_jax.models.lrn import local_response_norm
from psp_jax.models.normalization import BatchNorm
from psp_jax.models.pool_indices import max_pool_with_argmax, max_unpool
from psp_jax.models.resnet import BNConfig
from psp_jax.preprocessing import Preprocessing

# VGG-16's stage widths as multiples of `width` (64): [64, 64] [128, 128] [256 x3] [512 x3] [512 x3].
VGG16_STAGES = ((1, 1), (2, 2), (4, 4, 4), (8, 8, 8), (8, 8, 8))
BASIC_STAGES = 4
BASIC_KERNEL = 7
BN_SHIFT_INIT = 0.001
LRN = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)
# Raw 0-255 BGR, no mean subtraction: what the tutorial's DenseImageData layer feeds.
SEGNET_PREPROCESSING = Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_scale=1.0,
                                     channel_order="BGR")

# Caffe's "msra" filler: N(0, 2 / fan_in).
msra_init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def _conv(features: int, kernel: int, dtype: Any, name: str) -> nn.Conv:
  pad = (kernel - 1) // 2
  return nn.Conv(features, (kernel, kernel), padding=((pad, pad), (pad, pad)), use_bias=True,
                 dtype=dtype, param_dtype=jnp.float32, kernel_init=msra_init,
                 bias_init=nn.initializers.zeros, name=name)


def _bn(bn: BNConfig, dtype: Any, name: str) -> BatchNorm:
  """`bn.make(...)` with Caffe SegNet's shift init (every BNConfig field is passed through)."""
  fields = {f.name: getattr(bn, f.name) for f in dataclasses.fields(bn)}
  return BatchNorm(**fields, bias_init=BN_SHIFT_INIT, dtype=dtype, name=name)


def _check(model: nn.Module, images: jnp.ndarray) -> None:
  cls = type(model).__name__
  if images.ndim != 4:
    raise ValueError(f"{cls} images must be NHWC of rank 4, got shape {images.shape}")
  if images.shape[-1] != model.in_channels:
    raise ValueError(f"{cls} images must have in_channels={model.in_channels} channels (NHWC), "
                     f"got shape {images.shape}")
  if model.num_classes < 1:
    raise ValueError(f"{cls} num_classes must be >= 1, got {model.num_classes}")
  if model.width < 1:
    raise ValueError(f"{cls} width must be >= 1, got {model.width}")


class SegNet(nn.Module):
  """SegNet with the VGG-16 encoder (module docstring).

  `apply(variables, images, train=False)`: images (N, H, W, in_channels) raw 0-255 BGR, any
  H, W >= 1 -> float32 logits (N, H, W, num_classes). With return_aux=True, (logits, None).
  The pooled sizes are sown as 'intermediates' `pool{s}` (apply with mutable=['intermediates']).

  Attributes:
    num_classes: output classes (the classifier conv1_1_D's width).
    in_channels: image channels (3).
    width: the first stage's width (64); stage widths are 1, 2, 4, 8, 8 times it.
    bn: BatchNorm behaviour (sync axis, groups, frozen). dtype: compute dtype.
  """
  num_classes: int
  in_channels: int = 3
  width: int = 64
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  def _block(self, x, features: int, name: str, train: bool, classifier: bool = False):
    x = _conv(features, 3, self.dtype, name)(x)
    if classifier:
      return x
    return nn.relu(_bn(self.bn, self.dtype, f"{name}_bn")(x, train))

  @nn.compact
  def __call__(self, images: jnp.ndarray, train: bool = False, return_aux: bool = False):
    _check(self, images)
    x = images.astype(self.dtype)
    widths = [[m * self.width for m in stage] for stage in VGG16_STAGES]
    pools = []
    for s, stage in enumerate(widths, start=1):
      for j, features in enumerate(stage, start=1):
        x = self._block(x, features, f"conv{s}_{j}", train)
      x, idx, size = max_pool_with_argmax(x)
      self.sow("intermediates", f"pool{s}", x)
      pools.append((idx, size))
    for s in range(len(widths), 0, -1):
      idx, size = pools[s - 1]
      x = max_unpool(x, idx, size)
      stage = widths[s - 1]
      for j in range(len(stage), 0, -1):
        # conv s_j_D outputs what encoder conv s_j took in: the previous stage's width for
        # j = 1, this stage's otherwise; conv1_1_D (the image's side) is the classifier.
        if j > 1:
          x = self._block(x, stage[j - 2], f"conv{s}_{j}_D", train)
        elif s > 1:
          x = self._block(x, widths[s - 2][-1], f"conv{s}_{j}_D", train)
        else:
          x = self._block(x, self.num_classes, "conv1_1_D", train, classifier=True)
    logits = x.astype(jnp.float32)
    return (logits, None) if return_aux else logits


class SegNetBasic(nn.Module):
  """SegNet-Basic (module docstring): the tutorial's small CamVid model.

  `apply(variables, images, train=False)`: images (N, H, W, in_channels) raw 0-255 BGR ->
  float32 logits (N, H, W, num_classes); with return_aux=True, (logits, None). Pooled sizes
  are sown as 'intermediates' `pool{s}`.

  Attributes:
    num_classes: output classes. in_channels: image channels (3).
    width: channels of every conv but the classifier (64).
    bn: BatchNorm behaviour. dtype: compute dtype.
  """
  num_classes: int
  in_channels: int = 3
  width: int = 64
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jnp.ndarray, train: bool = False, return_aux: bool = False):
    _check(self, images)
    x = local_response_norm(images.astype(jnp.float32), **LRN).astype(self.dtype)
    pools = []
    for s in range(1, BASIC_STAGES + 1):
      x = _conv(self.width, BASIC_KERNEL, self.dtype, f"conv{s}")(x)
      x = nn.relu(_bn(self.bn, self.dtype, f"conv{s}_bn")(x, train))
      x, idx, size = max_pool_with_argmax(x)
      self.sow("intermediates", f"pool{s}", x)
      pools.append((idx, size))
    for s in range(BASIC_STAGES, 0, -1):
      x = max_unpool(x, *pools[s - 1])
      x = _conv(self.width, BASIC_KERNEL, self.dtype, f"conv_decode{s}")(x)
      x = _bn(self.bn, self.dtype, f"conv_decode{s}_bn")(x, train)  # no ReLU in the decoder
    logits = _conv(self.num_classes, 1, self.dtype, "conv_classifier")(x).astype(jnp.float32)
    return (logits, None) if return_aux else logits


FAMILY = ModelFamily(
    name="segnet", module=SegNet, task="segmentation",
    example_inputs=image_inputs("in_channels", return_aux=True),
    preprocessing=SEGNET_PREPROCESSING, tiny=dict(num_classes=3, width=4))

BASIC_FAMILY = ModelFamily(
    name="segnet_basic", module=SegNetBasic, task="segmentation",
    example_inputs=image_inputs("in_channels", return_aux=True),
    preprocessing=SEGNET_PREPROCESSING, tiny=dict(num_classes=3, width=4))
