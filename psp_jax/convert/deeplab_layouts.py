"""DeepLab / VGG state_dict layouts (pure NumPy, no torch) for `psp-jax convert`.

  --model deeplabv3-torchvision   torchvision's deeplabv3_resnet{50,101} -> 'deeplabv3'
                                  (flavour 'torchvision', output stride 8, rates 12/24/36):
      backbone.<resnet>                 -> backbone/<resnet>  (conv1, bn1, layerK.i.*)
      classifier.0.convs.0.{0,1}        -> head/aspp/branch0_{conv,bn}
      classifier.0.convs.k.{0,1}        -> head/aspp/branch{k}_{conv,bn}     k = 1..n rates
      classifier.0.convs.{n+1}.{1,2}    -> head/aspp/pool_{conv,bn}
      classifier.0.project.{0,1}        -> head/aspp/project_{conv,bn}
      classifier.{1,2,4}                -> head/{conv,bn,classifier}
      aux_classifier.{0,1,4}            -> aux_head/{conv,bn,classifier}
  --model vgg16-torchvision       torchvision's ImageNet vgg16 -> 'vgg16' (VGG16Classifier):
      features.{0,2,5,7,10,12,14,17,19,21,24,26,28} -> backbone/conv{b}_{i}
      classifier.{0,3,6} (Linear)       -> head/fc{6,7,8} as convolutions (fc6 7x7 x 512 -> 4096)
    vgg_fc='largefov' decimates fc6/fc7 as DeepLab-LargeFOV describes (our reading of "subsample"):
      fc6 kernel taps 0, 3, 6 of the 7x7 grid (so 3x3 at dilation 12 = 4 * 3 spans the 7x7
      at output stride 8) and every 4th output filter (4096 -> 1024); fc7 every 4th output and
      input (1024 x 1024); fc8 every 4th input. These fc6/fc7 shapes load into DeepLab v1's head.
  --model deeplabv2-resnet101     kazuto1011/deeplab-pytorch's MSC(DeepLabV2) (its converted Caffe
                                  weights; keys under `base.`) -> 'deeplabv2' (MSRA layout, MSC
                                  1/0.75/0.5, align_corners=False as the port resizes):
      layer1.conv1.{conv,bn}            -> backbone/{conv1,bn1}
      layer{K}.block{i}.reduce.{conv,bn}   -> backbone/layer{K-1}_{i-1}/{conv1,bn1}
      layer{K}.block{i}.conv3x3.{conv,bn}  -> .../{conv2,bn2}
      layer{K}.block{i}.increase.{conv,bn} -> .../{conv3,bn3}
      layer{K}.block{i}.shortcut.{conv,bn} -> .../downsample_{conv,bn}           K = 2..5
      aspp.c{k}                         -> aspp/c{k}
"""
from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from psp_jax.convert import layouts

VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_VGG_NAMES = {str(i): f"conv{b}_{j}" for i, (b, j) in zip(
    VGG16_CONV_INDICES, [(b, j) for b, n in enumerate((2, 2, 3, 3, 3), start=1) for j in range(1, n + 1)])}
VGG_FC = ("full", "largefov")
_KAZUTO_PARTS = {"reduce.conv": "conv1", "reduce.bn": "bn1", "conv3x3.conv": "conv2",
                 "conv3x3.bn": "bn2", "increase.conv": "conv3", "increase.bn": "bn3",
                 "shortcut.conv": "downsample_conv", "shortcut.bn": "downsample_bn"}


def rename_pool_branch(sd: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """torchvision's image-pooling branch is the last `classifier.0.convs.{n}`, with its conv and
  BN at indices 1 and 2 (0 is the pooling): rename it `classifier.0.pool.{1,2}` first, so the
  other indices all mean (conv, BN) of an atrous branch."""
  idx = {int(m.group(1)) for k in sd for m in [re.match(r"classifier\.0\.convs\.(\d+)\.", k)] if m}
  if not idx:
    return dict(sd)
  last = max(idx)
  out = {}
  for k, v in sd.items():
    m = re.match(rf"classifier\.0\.convs\.{last}\.([12])\.(.*)", k)
    out[f"classifier.0.pool.{m.group(1)}.{m.group(2)}" if m else k] = v
  return out


def deeplabv3_module(module: str) -> tuple[str, ...] | None:
  """torchvision DeepLabV3 module path (after `rename_pool_branch`) -> ours (module docstring)."""
  if module.startswith("backbone."):
    body = layouts.resnet_module(module[len("backbone."):])
    return ("backbone",) + body if body else None
  m = re.fullmatch(r"classifier\.0\.convs\.(\d+)\.([01])", module)
  if m:
    return ("head", "aspp", f"branch{m.group(1)}_" + ("conv" if m.group(2) == "0" else "bn"))
  m = re.fullmatch(r"classifier\.0\.(pool|project)\.([012])", module)
  if m:
    first = "1" if m.group(1) == "pool" else "0"
    if m.group(2) in (first, str(int(first) + 1)):
      return ("head", "aspp", f"{m.group(1)}_" + ("conv" if m.group(2) == first else "bn"))
    return None
  m = re.fullmatch(r"classifier\.([124])", module)
  if m:
    return ("head", {"1": "conv", "2": "bn", "4": "classifier"}[m.group(1)])
  m = re.fullmatch(r"aux_classifier\.([014])", module)
  if m:
    return ("aux_head", {"0": "conv", "1": "bn", "4": "classifier"}[m.group(1)])
  return None


def vgg16_module(module: str) -> tuple[str, ...] | None:
  m = re.fullmatch(r"features\.(\d+)", module)
  if m:
    return ("backbone", _VGG_NAMES[m.group(1)]) if m.group(1) in _VGG_NAMES else None
  m = re.fullmatch(r"classifier\.([036])", module)
  return ("head", {"0": "fc6", "3": "fc7", "6": "fc8"}[m.group(1)]) if m else None


def kazuto_v2_module(module: str) -> tuple[str, ...] | None:
  if module == "layer1.conv1.conv":
    return ("backbone", "conv1")
  if module == "layer1.conv1.bn":
    return ("backbone", "bn1")
  m = re.fullmatch(r"layer([2-5])\.block(\d+)\.(\w+\.(?:conv|bn))", module)
  if m and m.group(3) in _KAZUTO_PARTS:
    return ("backbone", f"layer{int(m.group(1)) - 1}_{int(m.group(2)) - 1}", _KAZUTO_PARTS[m.group(3)])
  m = re.fullmatch(r"aspp\.(c\d+)", module)
  return ("aspp", m.group(1)) if m else None


def vgg16_fc_as_conv(sd: Mapping[str, np.ndarray], vgg_fc: str = "full") -> dict[str, np.ndarray]:
  """torchvision VGG-16's Linear classifier as conv weights (module docstring), optionally
  decimated to LargeFOV's 3x3 x 1024 fc6 and 1024 x 1024 fc7."""
  if vgg_fc not in VGG_FC:
    raise ValueError(f"--vgg-fc must be one of {VGG_FC}, got {vgg_fc!r}")
  out = dict(sd)
  if "classifier.0.weight" not in sd or "features.28.weight" not in sd:
    return out  # the strict loader names what is missing
  channels = sd["features.28.weight"].shape[0]
  fc6 = np.asarray(sd["classifier.0.weight"])
  if fc6.ndim != 2 or fc6.shape[1] != channels * 49:
    raise ValueError(f"classifier.0.weight has shape {fc6.shape}; a VGG-16 fc6 is "
                     f"(features, {channels} * 7 * 7)")
  fc6 = fc6.reshape(fc6.shape[0], channels, 7, 7)
  fc7 = np.asarray(sd["classifier.3.weight"])[:, :, None, None]
  fc8 = np.asarray(sd["classifier.6.weight"])[:, :, None, None]
  b6, b7 = np.asarray(sd["classifier.0.bias"]), np.asarray(sd["classifier.3.bias"])
  if vgg_fc == "largefov":
    fc6, b6 = fc6[::4][:, :, ::3, ::3], b6[::4]
    fc7, b7 = fc7[::4, ::4], b7[::4]
    fc8 = fc8[:, ::4]
  out.update({"classifier.0.weight": fc6, "classifier.0.bias": b6, "classifier.3.weight": fc7,
              "classifier.3.bias": b7, "classifier.6.weight": fc8})
  return out


LAYOUTS = {
    "torchvision-deeplabv3": layouts.Layout("torchvision-deeplabv3", deeplabv3_module),
    "torchvision-vgg16": layouts.Layout("torchvision-vgg16", vgg16_module),
    "deeplab-pytorch-v2": layouts.Layout("deeplab-pytorch-v2", kazuto_v2_module),
}
