"""Shared PyTorch pieces: the bottleneck block, a dilated ResNet body, random BN statistics."""
from __future__ import annotations

import torch
from torch import nn


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (stride, dilation) -> 1x1 (x4), BN after each, projected or identity shortcut."""
  expansion = 4

  def __init__(self, inplanes: int, planes: int, stride: int = 1, dilation: int = 1,
               downsample: nn.Module | None = None):
    super().__init__()
    self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation,
                           bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(planes * 4)
    self.relu = nn.ReLU()
    self.downsample = downsample

  def forward(self, x):
    y = self.relu(self.bn1(self.conv1(x)))
    y = self.relu(self.bn2(self.conv2(y)))
    y = self.bn3(self.conv3(y))
    shortcut = x if self.downsample is None else self.downsample(x)
    return self.relu(y + shortcut)


BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def make_stage(inplanes: int, planes: int, blocks: int, stride: int, dilations: list[int]
               ) -> tuple[nn.Sequential, int]:
  """One ResNet stage (`layerK`): block 0 carries the stride and a projection when needed."""
  downsample = None
  if stride != 1 or inplanes != planes * 4:
    downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False),
                               nn.BatchNorm2d(planes * 4))
  layers = [Bottleneck(inplanes, planes, stride, dilations[0], downsample)]
  for i in range(1, blocks):
    layers.append(Bottleneck(planes * 4, planes, 1, dilations[i]))
  return nn.Sequential(*layers), planes * 4


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
  """Random weights AND random BatchNorm affine parameters and running statistics.

  Convs keep a fan-in scaled init so activations stay O(1) through deep stacks; biases and BN
  statistics are drawn so that eval-mode BN is far from the identity.
  """
  g = torch.Generator().manual_seed(seed)
  for m in model.modules():
    if isinstance(m, nn.Conv2d):
      fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
      m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
      if m.bias is not None:
        m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    elif isinstance(m, nn.BatchNorm2d):
      c = m.num_features
      m.weight.copy_(0.5 + torch.rand(c, generator=g))
      m.bias.copy_(torch.randn(c, generator=g) * 0.2)
      m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
      m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
      m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
  return model
