"""PSPNet in the layout of the semseg checkpoints (deep-base dilated ResNet), in PyTorch.

state_dict keys: layer0.{0,1,3,4,6,7}.* (stem convs and BNs), layer{1..4}.{i}.*, ppm.features.
{k}.{1,2}.*, cls.{0,1,4}.*, aux.{0,1,4}.*. Also the deep-base ImageNet ResNet
(conv1/bn1/conv2/bn2/conv3/bn3, layer*, fc) and the torchvision ResNet (conv1/bn1 7x7).
`width` scales every channel count (64 = the published models) for fast tests.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_reference.common import BLOCKS, make_stage


def _dilated_stages(module: nn.Module, inplanes: int, width: int, depth: int, pattern: str) -> None:
  """Adds layer1..layer4 at output stride 8: 'semseg' dilates every block of layer3/4,
  'cascade' all but the first."""
  blocks = BLOCKS[depth]
  inp = inplanes
  for k, (planes, stride, d) in enumerate(zip((width, 2 * width, 4 * width, 8 * width),
                                              (1, 2, 1, 1), (1, 1, 2, 4)), start=1):
    dil = [d] * blocks[k - 1]
    if pattern == "cascade":
      dil[0] = 1
    stage, inp = make_stage(inp, planes, blocks[k - 1], stride, dil)
    setattr(module, f"layer{k}", stage)


class PPM(nn.Module):
  """semseg's pyramid pooling: concat([x] + [up(relu(bn(conv1x1(avgpool_b(x)))))])."""

  def __init__(self, in_dim: int, reduction_dim: int, bins=(1, 2, 3, 6)):
    super().__init__()
    self.features = nn.ModuleList([
        nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_dim, reduction_dim, 1, bias=False),
                      nn.BatchNorm2d(reduction_dim), nn.ReLU()) for b in bins])

  def forward(self, x):
    size = x.shape[2:]
    outs = [x] + [F.interpolate(f(x), size, mode="bilinear", align_corners=True)
                  for f in self.features]
    return torch.cat(outs, 1)


def _head(in_dim: int, hidden: int, classes: int) -> nn.Sequential:
  return nn.Sequential(nn.Conv2d(in_dim, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden),
                       nn.ReLU(), nn.Dropout2d(0.1), nn.Conv2d(hidden, classes, 1))


class SemsegPSPNet(nn.Module):
  """semseg's PSPNet: returns logits at the input size (align_corners=True); eval mode only
  uses `cls`, `aux` is built (as in the released training checkpoints) when aux=True."""

  def __init__(self, classes: int = 150, depth: int = 50, width: int = 64, aux: bool = True):
    super().__init__()
    w = width
    self.layer0 = nn.Sequential(
        nn.Conv2d(3, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1))
    _dilated_stages(self, 2 * w, w, depth, "semseg")
    c = 32 * w
    self.ppm = PPM(c, c // 4)
    self.cls = _head(2 * c, 8 * w, classes)
    if aux:
      self.aux = _head(c // 2, 4 * w, classes)

  def forward(self, x):
    size = x.shape[2:]
    y = self.layer0(x)
    y = self.layer3(self.layer2(self.layer1(y)))
    y = self.cls(self.ppm(self.layer4(y)))
    return F.interpolate(y, size, mode="bilinear", align_corners=True)


class DeepBaseResNet(nn.Module):
  """The ImageNet deep-base ResNet of semseg (stem conv1..conv3 + bn1..bn3, fc). Forward:
  layer4 features at output stride 8 with semseg dilations (fc unused)."""

  def __init__(self, depth: int = 50, width: int = 64, num_classes: int = 1000):
    super().__init__()
    w = width
    self.conv1 = nn.Conv2d(3, w, 3, stride=2, padding=1, bias=False)
    self.bn1 = nn.BatchNorm2d(w)
    self.conv2 = nn.Conv2d(w, w, 3, padding=1, bias=False)
    self.bn2 = nn.BatchNorm2d(w)
    self.conv3 = nn.Conv2d(w, 2 * w, 3, padding=1, bias=False)
    self.bn3 = nn.BatchNorm2d(2 * w)
    self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
    _dilated_stages(self, 2 * w, w, depth, "semseg")
    self.fc = nn.Linear(32 * w, num_classes)

  def forward(self, x):
    y = F.relu(self.bn1(self.conv1(x)))
    y = F.relu(self.bn2(self.conv2(y)))
    y = self.maxpool(F.relu(self.bn3(self.conv3(y))))
    return self.layer4(self.layer3(self.layer2(self.layer1(y))))


class TorchvisionResNet(nn.Module):
  """torchvision-layout ResNet (conv1 7x7 / bn1, layer*, fc); forward: layer4 at OS 8 with
  the given dilation pattern ('semseg' or 'cascade')."""

  def __init__(self, depth: int = 50, width: int = 64, in_channels: int = 3,
               pattern: str = "semseg", num_classes: int = 1000):
    super().__init__()
    w = width
    self.conv1 = nn.Conv2d(in_channels, w, 7, stride=2, padding=3, bias=False)
    self.bn1 = nn.BatchNorm2d(w)
    self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
    _dilated_stages(self, w, w, depth, pattern)
    self.fc = nn.Linear(32 * w, num_classes)

  def forward(self, x):
    y = self.maxpool(F.relu(self.bn1(self.conv1(x))))
    return self.layer4(self.layer3(self.layer2(self.layer1(y))))
