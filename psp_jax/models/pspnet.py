"""PSPNet: dilated ResNet -> pyramid pooling (or none) -> main head, plus the auxiliary head.

`context` also takes DeepLab's heads (LargeFOV, ASPP-L, ASPP with or without image pooling) on
this same backbone, so context modules can be compared with nothing else changed
(experiments/deeplab_context.py); the DeepLab families themselves are psp_jax/models/deeplab.py.
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import flax.linen as nn
import jax.numpy as jnp

from psp_jax.constants import IMAGENET_MEAN, IMAGENET_STD
from psp_jax.models.aspp import ASPPL, DeepLabV3Head, FCHead
from psp_jax.models.contract import ModelFamily, image_inputs
from psp_jax.models.heads import SegHead
from psp_jax.models.ops import resize_bilinear
from psp_jax.models.ppm import PyramidPooling
from psp_jax.models.resnet import BNConfig, ResNet
from psp_jax.preprocessing import Preprocessing

CONTEXT_MODULES = ("ppm", "none", "largefov", "aspp_l", "aspp")
# DeepLab's rates for its heads, at this network's output stride 8 (v3's (6, 12, 18) are at 16).
DEEPLAB_RATES = {"largefov": (12,), "aspp_l": (6, 12, 18, 24), "aspp": (12, 24, 36)}


class PSPNet(nn.Module):
  """Pyramid Scene Parsing Network (Zhao et al., CVPR 2017), semseg layout.

  `apply(variables, images, train=False)` takes NHWC float images (normalised as in training)
  and returns float32 logits (N, H, W, num_classes) at the input size. With
  `return_aux=True` it returns `(logits, aux_logits)`; aux_logits is None when `aux=False`.

  Attributes:
    num_classes: output classes.
    in_channels: channels of the input images (3 for RGB); checked on every call.
    depth, stem, output_stride, dilation_pattern, width: the backbone (see `ResNet`).
    context: 'ppm' (PSPNet) or 'none' (the dilated-FCN baseline: the head sees layer4), or a
      DeepLab head replacing pyramid pooling and the main head (one context-module axis on one
      backbone): 'largefov' (v1's fc6-fc8, fc6 3x3 at rate context_rates[0] with
      2 * head_features channels), 'aspp_l' (v2's ResNet ASPP-L: a 3x3 conv to the classes per
      rate, summed), 'aspp' (v3's ASPP, head_features // 2 channels, then the classifier).
    context_rates: the DeepLab heads' atrous rates as used; () = DEEPLAB_RATES (DeepLab's).
    image_pooling: the 'aspp' head's global branch (False: the ablation without it).
    bins, pool, reduction: pyramid pooling ablation axes (see `PyramidPooling`).
    aux: build the auxiliary head on layer3 (used in training only).
    head_features / aux_features: hidden widths of the heads (512 / 256).
    dropout: channel-dropout rate of both heads (element-wise in the DeepLab heads, as theirs).
    align_corners: resize convention for the PPM and the logits (semseg: True).
    bn: BatchNorm behaviour (sync axis, groups, frozen). dtype: compute dtype.
  Params: `backbone`, `ppm`, `head`, `aux_head`.
  """
  num_classes: int
  in_channels: int = 3
  depth: int = 50
  stem: Literal["deep", "classic"] = "deep"
  output_stride: int = 8
  dilation_pattern: Literal["semseg", "cascade"] = "semseg"
  width: int = 64
  context: Literal["ppm", "none", "largefov", "aspp_l", "aspp"] = "ppm"
  context_rates: Sequence[int] = ()
  image_pooling: bool = True
  bins: Sequence[int] = (1, 2, 3, 6)
  pool: Literal["avg", "max"] = "avg"
  reduction: bool = True
  aux: bool = True
  head_features: int = 512
  aux_features: int = 256
  dropout: float = 0.1
  align_corners: bool = True
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  def min_input_size(self) -> int:
    """The smallest square input whose layer4 map fits a DeepLab head's rates (else 1)."""
    if self.context not in DEEPLAB_RATES:
      return 1
    return int(self.output_stride) * (max(self.deeplab_rates()) + 1)

  def deeplab_rates(self) -> tuple[int, ...]:
    """The DeepLab head's atrous rates: context_rates, or DeepLab's own (DEEPLAB_RATES)."""
    return tuple(int(r) for r in (self.context_rates or DEEPLAB_RATES[self.context]))

  @nn.compact
  def __call__(self, images: jnp.ndarray, train: bool = False, return_aux: bool = False):
    if images.ndim != 4:
      raise ValueError(f"PSPNet images must be NHWC of rank 4, got shape {images.shape}")
    if images.shape[-1] != self.in_channels:
      raise ValueError(f"PSPNet images must have in_channels={self.in_channels} channels (NHWC), "
                       f"got shape {images.shape}")
    if self.num_classes < 1:
      raise ValueError(f"PSPNet num_classes must be >= 1, got {self.num_classes}")
    if self.context not in CONTEXT_MODULES:
      raise ValueError(f"PSPNet context must be one of {CONTEXT_MODULES}, got {self.context!r}")
    size = images.shape[1:3]
    feats = ResNet(self.depth, self.stem, self.output_stride, self.dilation_pattern, self.width, bn=self.bn,
                   dtype=self.dtype, name="backbone")(images, train)
    x = feats["layer4"]
    if self.context in DEEPLAB_RATES:
      logits = self._deeplab_head(x, train)
    else:
      if self.context == "ppm":
        x = PyramidPooling(bins=tuple(self.bins), pool=self.pool, reduction=self.reduction,
                           align_corners=self.align_corners, bn=self.bn, dtype=self.dtype,
                           name="ppm")(x, train)
      logits = SegHead(self.num_classes, self.head_features, self.dropout, bn=self.bn,
                       dtype=self.dtype, name="head")(x, train)
    logits = resize_bilinear(logits, size, self.align_corners)
    if not return_aux:
      return logits
    aux_logits = None
    if self.aux:
      aux_logits = SegHead(self.num_classes, self.aux_features, self.dropout, bn=self.bn,
                           dtype=self.dtype, name="aux_head")(feats["layer3"], train)
      aux_logits = resize_bilinear(aux_logits, size, self.align_corners)
    return logits, aux_logits

  def _deeplab_head(self, x: jnp.ndarray, train: bool) -> jnp.ndarray:
    """layer4 (N, h, w, C) -> logits (N, h, w, K) through the `context` DeepLab head."""
    rates = self.deeplab_rates()
    if self.context == "largefov":
      if len(rates) != 1:
        raise ValueError(f"PSPNet.context_rates={rates}: context='largefov' takes one rate (fc6's)")
      return FCHead(self.num_classes, 2 * self.head_features, 3, rates[0], self.dropout,
                    self.dtype, name="head")(x, train)
    if self.context == "aspp_l":
      return ASPPL(self.num_classes, rates, "resnet", dtype=self.dtype, name="head")(x, train)
    return DeepLabV3Head(self.num_classes, rates, self.head_features // 2, self.image_pooling,
                         self.dropout, bn=self.bn, dtype=self.dtype, name="head")(x, train)


FAMILY = ModelFamily(
    name="pspnet", module=PSPNet, task="segmentation",
    example_inputs=image_inputs("in_channels", return_aux=True),
    lr_modules=("backbone", "ppm", "head", "aux_head"),
    inference_fields=("output_stride",),
    preprocessing=Preprocessing(IMAGENET_MEAN, IMAGENET_STD, 255.0, "RGB"),
    tiny=dict(num_classes=3, depth=18, stem="classic", width=8, bins=(1, 2), head_features=8,
              aux_features=8))
