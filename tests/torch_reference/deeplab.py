"""DeepLab in PyTorch, written from shared/specs/deeplab_segnet.md with the state_dict key names
of the published checkpoints (for parity tests only; torchvision is not installed here).

  TorchvisionDeepLabV3   torchvision's deeplabv3_resnet{50,101}: `backbone.*` (a ResNet with
                         replace_stride_with_dilation=[False, True, True]), `classifier.*`
                         (ASPP 12/24/36 + image pooling, project, 3x3 conv, classifier) and
                         `aux_classifier.*` (FCN head on layer3); logits resized to the input
                         with align_corners=False.
  KazutoDeepLabV2        kazuto1011/deeplab-pytorch's MSC(DeepLabV2): `base.layer1.conv1.{conv,bn}`,
                         `base.layer{2..5}.block{i}.{reduce,conv3x3,increase,shortcut}.{conv,bn}`
                         (MSRA bottleneck: stride on `reduce`), `base.aspp.c{k}`; inputs rescaled
                         by scale_factor (align_corners=False), scale logits max-fused.
  TorchvisionVGG16       torchvision's vgg16: `features.{0,2,...,28}`, `classifier.{0,3,6}` (Linear).
`width` scales every channel count (64 = the published models).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_reference.common import BLOCKS, make_stage


def _conv_bn_relu(cin: int, cout: int, k: int, dilation: int = 1) -> list[nn.Module]:
  pad = dilation * (k - 1) // 2
  return [nn.Conv2d(cin, cout, k, padding=pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout),
          nn.ReLU()]


class ASPPPooling(nn.Sequential):
  def __init__(self, cin: int, cout: int):
    super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False),
                     nn.BatchNorm2d(cout), nn.ReLU())

  def forward(self, x):
    size = x.shape[-2:]
    return F.interpolate(super().forward(x), size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
  """convs.0 (1x1), convs.1..n (3x3 at the rates), convs.n+1 (pooling); project (1x1, dropout)."""

  def __init__(self, cin: int, rates, cout: int = 256):
    super().__init__()
    mods = [nn.Sequential(*_conv_bn_relu(cin, cout, 1))]
    mods += [nn.Sequential(*_conv_bn_relu(cin, cout, 3, r)) for r in rates]
    mods.append(ASPPPooling(cin, cout))
    self.convs = nn.ModuleList(mods)
    self.project = nn.Sequential(nn.Conv2d(len(mods) * cout, cout, 1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(), nn.Dropout(0.5))

  def forward(self, x):
    return self.project(torch.cat([m(x) for m in self.convs], 1))


class TorchvisionDeepLabV3(nn.Module):
  def __init__(self, classes: int = 21, depth: int = 50, width: int = 64, aux: bool = True,
               aspp_features: int = 256):
    super().__init__()
    w = width
    backbone = nn.Module()
    backbone.conv1 = nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False)
    backbone.bn1 = nn.BatchNorm2d(w)
    blocks = BLOCKS[depth]
    # replace_stride_with_dilation=[False, True, True]: the first block of a dilated stage keeps
    # the previous dilation.
    plan = [(1, [1] * blocks[0]), (2, [1] * blocks[1]), (1, [1] + [2] * (blocks[2] - 1)),
            (1, [2] + [4] * (blocks[3] - 1))]
    inp = w
    for k, (planes, (stride, dil)) in enumerate(zip((w, 2 * w, 4 * w, 8 * w), plan), start=1):
      stage, inp = make_stage(inp, planes, blocks[k - 1], stride, dil)
      setattr(backbone, f"layer{k}", stage)
    self.backbone = backbone
    c = 32 * w
    f = aspp_features
    self.classifier = nn.Sequential(ASPP(c, (12, 24, 36), f), nn.Conv2d(f, f, 3, padding=1, bias=False),
                                    nn.BatchNorm2d(f), nn.ReLU(), nn.Conv2d(f, classes, 1))
    self.aux_classifier = None
    if aux:
      self.aux_classifier = nn.Sequential(*_conv_bn_relu(c // 2, c // 8, 3), nn.Dropout(0.1),
                                          nn.Conv2d(c // 8, classes, 1))

  def forward(self, x):
    size = x.shape[-2:]
    b = self.backbone
    y = F.max_pool2d(F.relu(b.bn1(b.conv1(x))), 3, 2, 1)
    l3 = b.layer3(b.layer2(b.layer1(y)))
    out = F.interpolate(self.classifier(b.layer4(l3)), size=size, mode="bilinear", align_corners=False)
    aux = None
    if self.aux_classifier is not None:
      aux = F.interpolate(self.aux_classifier(l3), size=size, mode="bilinear", align_corners=False)
    return out, aux


class _ConvBn(nn.Sequential):
  def __init__(self, cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1, relu=True):
    super().__init__()
    pad = dilation * (k - 1) // 2
    self.add_module("conv", nn.Conv2d(cin, cout, k, stride, pad, dilation, bias=False))
    self.add_module("bn", nn.BatchNorm2d(cout, eps=1e-5))
    if relu:
      self.add_module("relu", nn.ReLU())


class _MSRABottleneck(nn.Module):
  def __init__(self, cin: int, cout: int, stride: int, dilation: int, shortcut: bool):
    super().__init__()
    mid = cout // 4
    self.reduce = _ConvBn(cin, mid, 1, stride)
    self.conv3x3 = _ConvBn(mid, mid, 3, 1, dilation)
    self.increase = _ConvBn(mid, cout, 1, relu=False)
    self.shortcut = _ConvBn(cin, cout, 1, stride, relu=False) if shortcut else nn.Identity()

  def forward(self, x):
    return F.relu(self.increase(self.conv3x3(self.reduce(x))) + self.shortcut(x))


def _res_layer(n: int, cin: int, cout: int, stride: int, dilation: int) -> nn.Sequential:
  layer = nn.Sequential()
  for i in range(n):
    layer.add_module(f"block{i + 1}", _MSRABottleneck(cin if i == 0 else cout, cout,
                                                      stride if i == 0 else 1, dilation, i == 0))
  return layer


class _DeepLabV2Base(nn.Sequential):
  def __init__(self, classes: int, depth: int, width: int, rates):
    super().__init__()
    ch = [width * 2 ** p for p in range(6)]
    stem = nn.Sequential()
    stem.add_module("conv1", _ConvBn(3, ch[0], 7, 2))
    stem.add_module("pool", nn.MaxPool2d(3, 2, 1, ceil_mode=True))
    self.add_module("layer1", stem)
    n = BLOCKS[depth]
    self.add_module("layer2", _res_layer(n[0], ch[0], ch[2], 1, 1))
    self.add_module("layer3", _res_layer(n[1], ch[2], ch[3], 2, 1))
    self.add_module("layer4", _res_layer(n[2], ch[3], ch[4], 1, 2))
    self.add_module("layer5", _res_layer(n[3], ch[4], ch[5], 1, 4))
    aspp = nn.Module()
    for k, r in enumerate(rates):
      aspp.add_module(f"c{k}", nn.Conv2d(ch[5], classes, 3, 1, padding=r, dilation=r, bias=True))
    self.add_module("aspp", aspp)

  def forward(self, x):
    for name in ("layer1", "layer2", "layer3", "layer4", "layer5"):
      x = getattr(self, name)(x)
    return sum(c(x) for c in self.aspp.children())


class KazutoDeepLabV2(nn.Module):
  """MSC(DeepLabV2): eval returns the max-fused logits at output stride 8; `scales` outputs."""

  def __init__(self, classes: int = 21, depth: int = 101, width: int = 64, rates=(6, 12, 18, 24),
               scales=(0.5, 0.75)):
    super().__init__()
    self.base = _DeepLabV2Base(classes, depth, width, rates)
    self.scales = scales

  def outputs(self, x):
    logits = self.base(x)
    pyramid = [self.base(F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False))
               for s in self.scales]
    size = logits.shape[2:]
    fused = torch.stack([logits] + [F.interpolate(p, size=size, mode="bilinear", align_corners=False)
                                    for p in pyramid]).max(0)[0]
    return logits, pyramid, fused

  def forward(self, x):
    return self.outputs(x)[2]


VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


class TorchvisionVGG16(nn.Module):
  def __init__(self, width: int = 64, fc: int = 4096, classes: int = 1000):
    super().__init__()
    layers, cin = [], 3
    for n, c in ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)):
      c = c * width // 64
      for _ in range(n):
        layers += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU()]
        cin = c
      layers.append(nn.MaxPool2d(2, 2))
    self.features = nn.Sequential(*layers)
    self.classifier = nn.Sequential(nn.Linear(cin * 49, fc), nn.ReLU(), nn.Dropout(),
                                    nn.Linear(fc, fc), nn.ReLU(), nn.Dropout(), nn.Linear(fc, classes))

  def forward(self, x):
    """224x224 input: (pool5 features, logits)."""
    f = self.features(x)
    return f, self.classifier(torch.flatten(f, 1))
