"""DeepLab v1 (LargeFOV), v2 (ASPP-L with multi-scale input fusion) and v3 (ASPP with image
pooling) as model families.

Every family's `apply(variables, images, train=False, return_aux=False)` takes NHWC float
images (normalised by the family's preprocessing) and returns float32 logits (N, H, W, K) at
the input size; `return_aux=True` gives `(logits, aux_logits or None)` (only v3 has an aux
head). `native=True` instead returns the recipe's training outputs at their own resolution,
a dict of (N, h, w, K) logits (psp_jax/train/deeplab_losses.py turns them into the recipes'
losses):
  v1  {'logits'}: output stride 8, compared with label_shrink(label, 8) (321 -> 41x41).
  v2  {'scale_1', 'scale_0.75', 'scale_0.5', 'max'}: one entry per input scale at that
      scale's own size, and their pixel-wise max at the 1x size.
  v3  {'logits', 'aux'?}: at output stride.

Upsampling to the input (`align_corners`): True is DeepLab's Caffe Interp, a zoom by the
output stride 8 (out = (h - 1) * 8 + 1, 41 -> 321, 65 -> 513) cropped to the input (edge
rows repeated in the rare case it falls short); False is a direct half-pixel bilinear resize
to the input (torchvision, kazuto1011/deeplab-pytorch).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal, Sequence

import flax.linen as nn
import jax.numpy as jnp

from psp_jax.constants import IMAGENET_MEAN, IMAGENET_STD
from psp_jax.models.aspp import ASPPL, DeepLabV3Head, FCHead
from psp_jax.models.contract import ModelFamily, image_inputs
from psp_jax.models.heads import SegHead
from psp_jax.models.ops import linear_interpolation_matrix, resize_bilinear
from psp_jax.models.resnet import BNConfig, ResNet
from psp_jax.models.vgg import VGG16
from psp_jax.preprocessing import Preprocessing

# DeepLab v1/v2 (Caffe): raw 0-255 BGR minus this BGR mean.
DEEPLAB_BGR_MEAN = (104.008, 116.669, 122.675)
CAFFE_PREPROCESSING = Preprocessing(DEEPLAB_BGR_MEAN, (1.0, 1.0, 1.0), 1.0, "BGR")
TORCHVISION_PREPROCESSING = Preprocessing(IMAGENET_MEAN, IMAGENET_STD, 255.0, "RGB")
OUTPUT_STRIDES = (8, 16)
V3_FLAVOURS = ("paper", "torchvision")
V3_DEFAULT_RATES = {"paper": (6, 12, 18), "torchvision": (12, 24, 36)}


def _check_images(owner: str, images: jnp.ndarray, num_classes: int) -> None:
  if images.ndim != 4:
    raise ValueError(f"{owner} images must be NHWC of rank 4, got shape {images.shape}")
  if num_classes < 1:
    raise ValueError(f"{owner}.num_classes must be >= 1, got {num_classes}")


def upsample_logits(logits: jnp.ndarray, size: Sequence[int], stride: int,
                    align_corners: bool) -> jnp.ndarray:
  """(N, h, w, K) -> (N, H, W, K) (module docstring: Caffe zoom-and-crop or direct resize)."""
  out_h, out_w = int(size[0]), int(size[1])
  if not align_corners:
    return resize_bilinear(logits, (out_h, out_w), False)
  _, h, w, _ = logits.shape
  zoomed = resize_bilinear(logits, ((h - 1) * stride + 1, (w - 1) * stride + 1), True)
  zoomed = zoomed[:, :out_h, :out_w]
  short_h, short_w = out_h - zoomed.shape[1], out_w - zoomed.shape[2]
  if short_h or short_w:
    zoomed = jnp.pad(zoomed, ((0, 0), (0, short_h), (0, short_w), (0, 0)), mode="edge")
  return zoomed


def scaled_size(length: int, scale: float, align_corners: bool) -> int:
  """Side of an input scaled by `scale`: Caffe's Interp (align_corners) floor((L - 1) s) + 1
  (321 -> 241, 161); PyTorch's scale_factor floor(L s) (321 -> 240, 160)."""
  if align_corners:
    return int((length - 1) * scale) + 1
  return int(length * scale)


def rescale_images(images: jnp.ndarray, scale: float, align_corners: bool) -> jnp.ndarray:
  """Bilinear rescale of NHWC images by `scale` (see `scaled_size`). Without align_corners the
  sampling step is 1/scale, as F.interpolate(scale_factor=scale) computes it."""
  _, h, w, _ = images.shape
  oh, ow = scaled_size(h, scale, align_corners), scaled_size(w, scale, align_corners)
  if oh < 1 or ow < 1:
    raise ValueError(f"DeepLabV2.scales: scale {scale} shrinks a {h}x{w} input to nothing")
  step = None if align_corners else scale
  mh = jnp.asarray(linear_interpolation_matrix(h, oh, align_corners, step), images.dtype)
  mw = jnp.asarray(linear_interpolation_matrix(w, ow, align_corners, step), images.dtype)
  return jnp.einsum("pw,nowc->nopc", mw, jnp.einsum("oh,nhwc->nowc", mh, images))


class DeepLabV1(nn.Module):
  """DeepLab-LargeFOV: DeepLab's VGG-16 (with pool5a) -> fc6 3x3 1024 at `rate` -> fc7 -> fc8.

  Attributes:
    num_classes: output classes (21 on VOC). width: VGG width (64 published).
    rate: fc6 dilation (12). fc_features: fc6/fc7 width (1024). dropout: after fc6 and fc7.
    align_corners: Caffe zoom-and-crop upsampling (True) or a direct resize (module docstring).
    bn: unused (no BatchNorm); dtype: compute dtype.
  Params: `backbone/conv{b}_{i}`, `head/{fc6,fc7,fc8}`. 20,505,429 parameters at K=21.
  """
  num_classes: int
  width: int = 64
  rate: int = 12
  fc_features: int = 1024
  dropout: float = 0.5
  align_corners: bool = True
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  def min_input_size(self) -> int:
    """The smallest square input whose pool5 map fits fc6's rate."""
    return 8 * (int(self.rate) + 1) if self.rate > 1 else 8

  @nn.compact
  def __call__(self, images: jnp.ndarray, train: bool = False, return_aux: bool = False,
               native: bool = False):
    _check_images("DeepLabV1", images, self.num_classes)
    feats = VGG16("deeplab", pool5a=True, width=self.width, dtype=self.dtype,
                  name="backbone")(images, train)
    logits = FCHead(self.num_classes, self.fc_features, 3, self.rate, self.dropout, self.dtype,
                    name="head")(feats["out"], train)
    if native:
      return {"logits": logits}
    logits = upsample_logits(logits, images.shape[1:3], 8, self.align_corners)
    return (logits, None) if return_aux else logits


class DeepLabV2(nn.Module):
  """DeepLab v2: an output-stride-8 backbone -> ASPP-L (rates summed), with multi-scale inputs.

  MSC: the network runs on the input at every scale in `scales` (which must contain 1.0);
  each smaller scale's logits are resized to the 1x logits and the pixel-wise max is the
  output, in training and at test.

  Attributes:
    num_classes: output classes.
    backbone_type: 'resnet' (MSRA-layout ResNet, stride on the first 1x1, ceil stem pool,
      layer3/4 at dilation 2/4; `depth`) or 'vgg' (DeepLab's VGG-16 without pool5a).
    depth, width: the backbone. rates: ASPP-L rates (6, 12, 18, 24).
    fc_features, dropout: the VGG branches' fc6/fc7 width and dropout.
    scales: MSC input scales; (1.0,) runs one scale.
    align_corners: Caffe (True) or PyTorch-port (False) resizing of the scaled inputs, the
      scale fusion and the final upsampling.
    bn: BatchNorm behaviour (the recipe freezes it: train.frozen_bn). dtype: compute dtype.
  Params: `backbone/...`, `aspp/c{k}` (resnet) or `aspp/branch{k}/fc{6,7,8}` (vgg).
  ResNet-101, K=21: 44,048,532 parameters; VGG: 37,877,652.
  """
  num_classes: int
  backbone_type: Literal["resnet", "vgg"] = "resnet"
  depth: int = 101
  width: int = 64
  rates: Sequence[int] = (6, 12, 18, 24)
  fc_features: int = 1024
  dropout: float = 0.5
  scales: Sequence[float] = (1.0, 0.75, 0.5)
  align_corners: bool = True
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  def min_input_size(self) -> int:
    """The smallest square input whose 1x feature map fits the ASPP-L rates."""
    return 8 * (max(int(r) for r in self.rates) + 1) if self.rates else 8

  def _single_scale(self, backbone: nn.Module, aspp: nn.Module, x: jnp.ndarray, train: bool,
                    check: bool):
    feats = backbone(x, train)
    return aspp(feats["out" if self.backbone_type == "vgg" else "layer4"], train, check)

  @nn.compact
  def __call__(self, images: jnp.ndarray, train: bool = False, return_aux: bool = False,
               native: bool = False):
    _check_images("DeepLabV2", images, self.num_classes)
    if self.backbone_type not in ("resnet", "vgg"):
      raise ValueError(f"DeepLabV2.backbone_type must be 'resnet' or 'vgg', got {self.backbone_type!r}")
    scales = tuple(float(s) for s in self.scales)
    if 1.0 not in scales or any(s <= 0 for s in scales) or len(set(scales)) != len(scales):
      raise ValueError(f"DeepLabV2.scales={scales}: distinct positive scales including 1.0 expected")
    if self.backbone_type == "vgg":
      backbone = VGG16("deeplab", pool5a=False, width=self.width, dtype=self.dtype, name="backbone")
    else:
      backbone = ResNet(self.depth, "classic", 8, "semseg", self.width, layout="msra", bn=self.bn,
                        dtype=self.dtype, name="backbone")
    aspp = ASPPL(self.num_classes, tuple(self.rates), self.backbone_type, self.fc_features,
                 self.dropout, self.dtype, name="aspp")
    outputs = {}
    for s in scales:
      x = images if s == 1.0 else rescale_images(images, s, self.align_corners)
      # The rates must fit the 1x features; shrunk scales may degenerate (the recipe's 0.5x).
      outputs[f"scale_{s:g}"] = self._single_scale(backbone, aspp, x, train, check=s == 1.0)
    full = outputs["scale_1"]
    if len(scales) > 1:
      size = full.shape[1:3]
      fused = jnp.stack([resize_bilinear(o, size, self.align_corners) for o in outputs.values()])
      outputs["max"] = jnp.max(fused, axis=0)
    if native:
      return outputs
    logits = upsample_logits(outputs.get("max", full), images.shape[1:3], 8, self.align_corners)
    return (logits, None) if return_aux else logits


class DeepLabV3(nn.Module):
  """DeepLab v3: ResNet at output stride 16 or 8 -> ASPP with image pooling -> classifier.

  flavour 'paper' (Chen et al. 2017 / TF): dilated layer3/4 with every block at the stage rate,
    layer4's rates times `multi_grid`, ASPP rates (6, 12, 18) * 16 / output_stride, dropout 0.1.
  flavour 'torchvision' (torchvision's deeplabv3_resnet*): torchvision's dilation pattern, no
    multi-grid (multi_grid=()), rates used as given (12, 24, 36), an extra 3x3 conv + BN + ReLU
    before the classifier; its recipe uses dropout 0.5 and align_corners=False.
  The parameters do not depend on output_stride: train at 16, evaluate at 8 (rates double).

  Attributes:
    num_classes; depth, width: the ResNet; output_stride: 8 or 16; multi_grid: layer4 factors.
    flavour: see above. rates: ASPP rates ((): the flavour's default), at output stride 16 for
      the paper flavour. aspp_features: 256. image_pooling: the ASPP's global branch.
    dropout: after the ASPP projection. aux: torchvision's FCN head on layer3 (loss weight 0.5
      in its recipe). align_corners: the final resize to the input.
    bn_momentum: running-statistics momentum of every BN (TF: 0.9997); None keeps `bn`'s.
    bn, dtype.
  Params: `backbone`, `head/aspp/...`, `head/{conv,bn}` (torchvision), `head/classifier`,
  `aux_head`. torchvision ResNet-50 K=21: 42,004,074 with aux, 39,638,869 without.
  """
  num_classes: int
  depth: int = 101
  width: int = 64
  output_stride: int = 16
  multi_grid: Sequence[int] = (1, 2, 4)
  flavour: Literal["paper", "torchvision"] = "paper"
  rates: Sequence[int] = ()
  aspp_features: int = 256
  image_pooling: bool = True
  dropout: float = 0.1
  aux: bool = False
  align_corners: bool = True
  bn_momentum: float | None = None
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  def min_input_size(self) -> int:
    """The smallest square input whose layer4 map fits the ASPP rates."""
    return int(self.output_stride) * (max(self.effective_rates(), default=1) + 1)

  def effective_rates(self) -> tuple[int, ...]:
    """The ASPP rates used at this output stride (module docstring)."""
    if self.flavour not in V3_FLAVOURS:
      raise ValueError(f"DeepLabV3.flavour must be one of {V3_FLAVOURS}, got {self.flavour!r}")
    if self.output_stride not in OUTPUT_STRIDES:
      raise ValueError(f"DeepLabV3.output_stride must be one of {OUTPUT_STRIDES}, "
                       f"got {self.output_stride}")
    rates = tuple(int(r) for r in (self.rates or V3_DEFAULT_RATES[self.flavour]))
    if self.flavour == "paper":
      rates = tuple(r * 16 // self.output_stride for r in rates)
    return rates

  @nn.compact
  def __call__(self, images: jnp.ndarray, train: bool = False, return_aux: bool = False,
               native: bool = False):
    _check_images("DeepLabV3", images, self.num_classes)
    rates = self.effective_rates()
    torchvision = self.flavour == "torchvision"
    if torchvision and tuple(self.multi_grid):
      raise ValueError(f"DeepLabV3.multi_grid={tuple(self.multi_grid)}: the torchvision flavour has "
                       "no multi-grid; set multi_grid=()")
    bn = self.bn if self.bn_momentum is None else dataclasses.replace(self.bn, momentum=self.bn_momentum)
    feats = ResNet(self.depth, "classic", self.output_stride,
                   "torchvision" if torchvision else "semseg", self.width,
                   multi_grid=tuple(self.multi_grid), bn=bn, dtype=self.dtype,
                   name="backbone")(images, train)
    logits = DeepLabV3Head(self.num_classes, rates, self.aspp_features, self.image_pooling,
                           self.dropout, extra_conv=torchvision, bn=bn, dtype=self.dtype,
                           name="head")(feats["layer4"], train)
    aux_logits = None
    if self.aux and (return_aux or native or self.is_initializing()):
      c3 = feats["layer3"].shape[-1]
      aux_logits = SegHead(self.num_classes, c3 // 4, 0.1, channel_dropout=False, bn=bn,
                           dtype=self.dtype, name="aux_head")(feats["layer3"], train)
    if native:
      return {"logits": logits, **({"aux": aux_logits} if aux_logits is not None else {})}
    size = images.shape[1:3]
    logits = resize_bilinear(logits, size, self.align_corners)
    if not return_aux:
      return logits
    if aux_logits is not None:
      aux_logits = resize_bilinear(aux_logits, size, self.align_corners)
    return logits, aux_logits


# `tiny` instances work at 32 px and compile quickly: v1's 5x5 pool5 takes rate 2, v2 (VGG,
# two scales) rates 1-2, v3 at output stride 8 a 4x4 layer4 with rate 1 * 16 / 8 = 2.
FAMILY_V1 = ModelFamily(name="deeplabv1", module=DeepLabV1, task="segmentation",
                        example_inputs=image_inputs(), lr_modules=("backbone", "head"),
                        preprocessing=CAFFE_PREPROCESSING,
                        tiny=dict(num_classes=3, width=4, rate=2, fc_features=8),
                        native_loss="psp_jax.train.deeplab_losses:v1_objective")
FAMILY_V2 = ModelFamily(name="deeplabv2", module=DeepLabV2, task="segmentation",
                        example_inputs=image_inputs(), lr_modules=("backbone", "aspp"),
                        preprocessing=CAFFE_PREPROCESSING,
                        tiny=dict(num_classes=3, backbone_type="vgg", width=4, fc_features=4,
                                  rates=(1, 2), scales=(1.0, 0.5)),
                        native_loss="psp_jax.train.deeplab_losses:msc_objective")
FAMILY = ModelFamily(name="deeplabv3", module=DeepLabV3, task="segmentation",
                     example_inputs=image_inputs(return_aux=True),
                     lr_modules=("backbone", "head", "aux_head"),
                     inference_fields=("output_stride",),
                     preprocessing=TORCHVISION_PREPROCESSING,
                     tiny=dict(num_classes=3, depth=18, width=8, output_stride=8, multi_grid=(1, 2),
                               rates=(1,), aspp_features=8, aux=True))
FAMILIES = (FAMILY_V1, FAMILY_V2, FAMILY)
