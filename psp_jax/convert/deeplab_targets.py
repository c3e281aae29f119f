"""The flax targets of the DeepLab / VGG converters: architecture fields read from the
state_dict (layouts and key maps: psp_jax/convert/deeplab_layouts.py).

  deeplabv3-torchvision  DeepLabV3(flavour='torchvision', output_stride=8, multi_grid=(),
                         rates=(12, 24, 36), dropout=0.5, align_corners=False); depth from
                         backbone.layer3 (or --layers 50|101), width from backbone.conv1, classes
                         from classifier.4, aux head iff aux_classifier.* keys exist.
  vgg16-torchvision      VGG16Classifier (ImageNet, 1000 classes); vgg_fc='largefov' gives
                         fc_kernel 3 and fc_features 1024 (decimated).
  deeplabv2-resnet101    DeepLabV2(backbone_type='resnet', MSRA layout, scales (1, 0.75, 0.5),
                         rates (6, 12, 18, 24), align_corners=False: the PyTorch port resizes with
                         align_corners=False); depth from layer4's blocks (the port names our
                         layer3 `layer4`).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from psp_jax.convert import deeplab_layouts
from psp_jax.convert.layouts import strip_prefix
from psp_jax.convert.state_dict_facts import ConversionError, _blocks, _depth, _require
from psp_jax.models.deeplab import DeepLabV2, DeepLabV3
from psp_jax.models.vgg import VGG16Classifier

MODELS = ("deeplabv3-torchvision", "vgg16-torchvision", "deeplabv2-resnet101")
V2_RATES = (6, 12, 18, 24)
# meta['preprocessing'] extras (beyond the family's normalisation) per converter.
PREPROCESSING_EXTRAS = {"deeplabv3-torchvision": {"align_corners": False},
                        "vgg16-torchvision": {"align_corners": False},
                        "deeplabv2-resnet101": {"align_corners": False}}


def prepare(model: str, sd: Mapping[str, np.ndarray], vgg_fc: str = "full") -> dict[str, np.ndarray]:
  """The state_dict renamed/reshaped so that the layout's module map applies."""
  if model == "deeplabv3-torchvision":
    return deeplab_layouts.rename_pool_branch(sd)
  if model == "vgg16-torchvision":
    return deeplab_layouts.vgg16_fc_as_conv(sd, vgg_fc)
  if model == "deeplabv2-resnet101":
    return strip_prefix(sd, "base.")  # the MSC wrapper's `base.` prefix
  return dict(sd)


def build_target(model: str, sd: Mapping[str, np.ndarray], layers: int | None = None,
                 num_classes: int | None = None):
  """(flax module, layout) for `model` (module docstring); `sd` as returned by `prepare`."""
  # pylint: disable=import-outside-toplevel
  if model == "deeplabv3-torchvision":
    if "backbone.conv1.weight" not in sd and "conv1.weight" in sd:
      raise ConversionError("this is a plain ResNet (conv1.* keys, no backbone.*): use "
                            "--model resnet-torchvision")
    width = int(_require(sd, "backbone.conv1.weight", "torchvision DeepLabV3").shape[0])
    classes = _require(sd, "classifier.4.weight", "torchvision DeepLabV3").shape[0]
    n_rates = _blocks(sd, "classifier.0.convs") - 1
    if n_rates != 3:
      raise ConversionError(f"{n_rates} atrous ASPP branches under classifier.0.convs; torchvision's "
                            "DeepLabHead has 3 (rates 12, 24, 36)")
    net = DeepLabV3(num_classes=int(num_classes if num_classes is not None else classes),
                    depth=_depth(sd, "backbone.layer3", layers), width=width, output_stride=8,
                    multi_grid=(), flavour="torchvision", rates=(12, 24, 36),
                    aspp_features=int(sd["classifier.0.convs.0.0.weight"].shape[0]), dropout=0.5,
                    aux=any(k.startswith("aux_classifier.") for k in sd), align_corners=False)
    return net, deeplab_layouts.LAYOUTS["torchvision-deeplabv3"]
  if model == "vgg16-torchvision":
    if any(k.startswith("features.") and k.endswith("running_mean") for k in sd):
      raise ConversionError("this VGG has BatchNorm (vgg16_bn); only the plain vgg16 is supported")
    width = int(_require(sd, "features.0.weight", "torchvision VGG-16").shape[0])
    fc6 = _require(sd, "classifier.0.weight", "torchvision VGG-16")
    net = VGG16Classifier(num_classes=int(_require(sd, "classifier.6.weight", "VGG-16").shape[0]),
                          fc_kernel=int(fc6.shape[2]), fc_features=int(fc6.shape[0]), width=width)
    return net, deeplab_layouts.LAYOUTS["torchvision-vgg16"]
  if model == "deeplabv2-resnet101":
    width = int(_require(sd, "layer1.conv1.conv.weight", "deeplab-pytorch DeepLabV2").shape[0])
    classes = _require(sd, "aspp.c0.weight", "deeplab-pytorch DeepLabV2").shape[0]
    n_rates = len({k.split(".")[1] for k in sd if k.startswith("aspp.c")})
    if n_rates != len(V2_RATES):
      raise ConversionError(f"{n_rates} ASPP branches (aspp.c*); DeepLab v2's ASPP-L has 4 "
                            f"(rates {V2_RATES})")
    n3 = len({k.split(".")[1] for k in sd if k.startswith("layer4.block")})
    depth = int(layers) if layers is not None else {6: 50, 23: 101, 36: 152}.get(n3)
    if depth is None:
      raise ConversionError(f"cannot tell the ResNet depth from {n3} blocks under 'layer4'; pass --layers")
    net = DeepLabV2(num_classes=int(num_classes if num_classes is not None else classes),
                    backbone_type="resnet", depth=depth, width=width, rates=V2_RATES,
                    scales=(1.0, 0.75, 0.5), align_corners=False)
    return net, deeplab_layouts.LAYOUTS["deeplab-pytorch-v2"]
  raise ConversionError(f"not a DeepLab converter: {model!r} (known: {MODELS})")

