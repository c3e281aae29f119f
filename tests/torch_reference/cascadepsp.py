"""CascadePSP's refinement module in PyTorch, state_dict keys as the official checkpoint.

feats.* (ResNet-50, 7x7 stem with 6 input channels, layer3/4 dilated except their first
block), psp.stages.{k}.1, psp.bottleneck, up_{1,2,3}.{conv,conv2}.{0,2,3,5}, up_*.shortcut,
final_28.{0,2}, final_56.{0,2}, final_11, final_21. `width` scales the channels (64 published).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_reference.common import BLOCKS, make_stage


def _up(x, factor: int):
  return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


class Extractor(nn.Module):
  """Returns (layer4, conv1 output before BN, layer1)."""

  def __init__(self, depth: int = 50, width: int = 64, in_channels: int = 6):
    super().__init__()
    w = width
    self.conv1 = nn.Conv2d(in_channels, w, 7, stride=2, padding=3, bias=False)
    self.bn1 = nn.BatchNorm2d(w)
    self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
    inp = w
    for k, (planes, stride, d) in enumerate(zip((w, 2 * w, 4 * w, 8 * w), (1, 2, 1, 1),
                                                (1, 1, 2, 4)), start=1):
      n = BLOCKS[depth][k - 1]
      stage, inp = make_stage(inp, planes, n, stride, [1] + [d] * (n - 1))
      setattr(self, f"layer{k}", stage)

  def forward(self, x):
    f_1 = self.conv1(x)
    y = self.maxpool(F.relu(self.bn1(f_1)))
    f_2 = self.layer1(y)
    return self.layer4(self.layer3(self.layer2(f_2))), f_1, f_2


class PSP(nn.Module):
  def __init__(self, c: int, out: int, bins=(1, 2, 3, 6)):
    super().__init__()
    self.stages = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(c, c, 1, bias=False))
                                 for b in bins])
    self.bottleneck = nn.Conv2d(c * (len(bins) + 1), out, 1)

  def forward(self, f):
    size = f.shape[2:]
    pyramid = [F.interpolate(s(f), size, mode="bilinear", align_corners=False) for s in self.stages]
    return F.relu(self.bottleneck(torch.cat(pyramid + [f], 1)))


def _double_conv(cin: int, cout: int) -> nn.Sequential:
  return nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 3, padding=1),
                       nn.BatchNorm2d(cout), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1))


class Upsample(nn.Module):
  def __init__(self, x_ch: int, in_ch: int, out_ch: int):
    super().__init__()
    self.conv = _double_conv(in_ch, out_ch)
    self.conv2 = _double_conv(out_ch, out_ch)
    self.shortcut = nn.Conv2d(x_ch, out_ch, 1)

  def forward(self, p, skip):
    p = _up(p, 2)
    q = self.conv(torch.cat([p, skip], 1)) + self.shortcut(p)
    return q + self.conv2(q)


class RefinementModule(nn.Module):
  def __init__(self, width: int = 64, depth: int = 50):
    super().__init__()
    w = width
    self.feats = Extractor(depth, w)
    self.psp = PSP(32 * w, 16 * w)
    self.up_1 = Upsample(16 * w, 16 * w + 4 * w, 8 * w)
    self.up_2 = Upsample(8 * w, 8 * w + w, 4 * w)
    self.up_3 = Upsample(4 * w, 4 * w + 3, w // 2)
    h = w // 2
    self.final_28 = nn.Sequential(nn.Conv2d(16 * w, h, 1), nn.ReLU(), nn.Conv2d(h, 1, 1))
    self.final_56 = nn.Sequential(nn.Conv2d(8 * w, h, 1), nn.ReLU(), nn.Conv2d(h, 1, 1))
    self.final_11 = nn.Conv2d(h + 3, h, 1)
    self.final_21 = nn.Conv2d(h, 1, 1)

  def _pass(self, x, seg, a, b):
    f, f_1, f_2 = self.feats(torch.cat([x, seg, a, b], 1))
    return self.psp(f), f_1, f_2

  def forward(self, x, seg, inter_s8=None, inter_s4=None):
    """Logits (resized to the input size) of every pass that ran, keyed like psp_jax's."""
    out = {}
    if inter_s8 is None:
      p, _, _ = self._pass(x, seg, seg, seg)
      out["s8a"] = _up(self.final_28(p), 8)
      inter_s8 = torch.tanh(out["s8a"])
    if inter_s4 is None:
      p, _, f_2 = self._pass(x, seg, inter_s8, inter_s8)
      out["s8b"] = _up(self.final_28(p), 8)
      out["s4b"] = _up(self.final_56(self.up_1(p, f_2)), 4)
      inter_s8, inter_s4 = torch.tanh(out["s8b"]), torch.tanh(out["s4b"])
    p, f_1, f_2 = self._pass(x, seg, inter_s8, inter_s4)
    out["s8c"] = _up(self.final_28(p), 8)
    p = self.up_1(p, f_2)
    out["s4c"] = _up(self.final_56(p), 4)
    p = self.up_3(self.up_2(p, f_1), x)
    out["s1"] = self.final_21(F.relu(self.final_11(torch.cat([p, x], 1))))
    return out
