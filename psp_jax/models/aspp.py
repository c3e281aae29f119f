"""DeepLab's context heads: LargeFOV (v1), ASPP-L (v2) and ASPP with image pooling (v3).

All take a backbone feature map (N, h, w, C) NHWC and keep its size:
  FCHead       fc6 kxk (dilation) -> ReLU -> dropout -> fc7 1x1 -> ReLU -> dropout -> fc8 1x1 K.
               LargeFOV: 3x3, 1024, dilation 12. Also the ImageNet VGG-16 classifier written
               as convolutions (7x7, 4096, dilation 1, 1000 classes).
  ASPPL        v2: one branch per rate (6, 12, 18, 24), logits SUMMED. branch='vgg': an FCHead
               per rate; branch='resnet': a single 3x3 conv C -> K with bias per rate.
  ASPP         v3: 1x1 conv, one 3x3 atrous conv per rate, image pooling (global mean -> 1x1 ->
               upsample), each with BN + ReLU; concat -> 1x1 projection + BN + ReLU -> dropout.
               Returns `features` channels; the classifier is `DeepLabV3Head`.
  DeepLabV3Head  ASPP, then (torchvision flavour) 3x3 conv + BN + ReLU, then the 1x1 classifier.

An atrous rate r > 1 "fits" a map when at least one off-centre tap of the dilated 3x3 can
land inside it (r < h or r < w); otherwise the conv only ever reads its zero padding there and
is a 1x1 conv in disguise: `check_rates` raises instead of training that silently. Heads that
are also run on deliberately shrunk inputs (DeepLab v2's 0.5x MSC scale: rate 24 on a 21x21
map in the published recipe) pass check=False for those calls.
"""
from __future__ import annotations

from typing import Any, Literal, Sequence

import flax.linen as nn
import jax.numpy as jnp

from psp_jax.models.resnet import BNConfig, conv

# DeepLab initialises its classifiers with N(0, 0.01) and zero bias.
classifier_init = nn.initializers.normal(0.01)


def check_rates(owner: str, field: str, rates: Sequence[int], hw: Sequence[int]) -> None:
  """ValueError naming `owner.field` when a rate is not a positive int or does not fit an
  (h, w) feature map (module docstring)."""
  h, w = int(hw[0]), int(hw[1])
  for r in rates:
    if int(r) != r or r < 1:
      raise ValueError(f"{owner}.{field}={tuple(rates)}: rates must be positive integers")
    if r > 1 and r >= h and r >= w:
      raise ValueError(
          f"{owner}.{field}={tuple(rates)}: rate {r} does not fit the {h}x{w} feature map (every "
          f"off-centre tap reads padding); accepted: rates < max(h, w) = {max(h, w)}. Use a larger "
          f"input or smaller rates")


def classifier(num_classes: int, dtype: Any, name: str) -> nn.Conv:
  """1x1 conv to class logits with bias, N(0, 0.01) weights, float32 params."""
  return nn.Conv(num_classes, (1, 1), dtype=dtype, param_dtype=jnp.float32,
                 kernel_init=classifier_init, name=name)


class FCHead(nn.Module):
  """fc6 -> ReLU -> dropout -> fc7 -> ReLU -> dropout -> fc8 (biases everywhere, no BN).

  (N, h, w, C) -> (N, h, w, num_classes) float32. Dropout is element-wise (Caffe's).
  fc6 pads by dilation * (kernel - 1) / 2, so the map keeps its size.
  Params: `fc6`, `fc7`, `fc8` (the Caffe names).
  """
  num_classes: int
  features: int = 1024
  kernel: int = 3
  dilation: int = 12
  dropout: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False, check: bool = True) -> jnp.ndarray:
    if check:
      check_rates("FCHead", "dilation", (self.dilation,), x.shape[1:3])
    y = conv(self.features, self.kernel, dilation=self.dilation, use_bias=True, dtype=self.dtype,
             name="fc6")(x)
    y = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(y))
    y = conv(self.features, 1, use_bias=True, dtype=self.dtype, name="fc7")(y)
    y = nn.Dropout(self.dropout, deterministic=not train)(nn.relu(y))
    return classifier(self.num_classes, self.dtype, "fc8")(y).astype(jnp.float32)


class ASPPL(nn.Module):
  """DeepLab v2's ASPP-L: the sum of one branch per rate (module docstring).

  (N, h, w, C) -> (N, h, w, num_classes) float32.
  Params: branch='vgg': `branch{k}/{fc6,fc7,fc8}`; branch='resnet': `c{k}` (kernel, bias).
  """
  num_classes: int
  rates: Sequence[int] = (6, 12, 18, 24)
  branch: Literal["vgg", "resnet"] = "resnet"
  features: int = 1024
  dropout: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False, check: bool = True) -> jnp.ndarray:
    if self.branch not in ("vgg", "resnet"):
      raise ValueError(f"ASPPL.branch must be 'vgg' or 'resnet', got {self.branch!r}")
    if not self.rates:
      raise ValueError("ASPPL.rates must name at least one rate")
    if check:
      check_rates("ASPPL", "rates", self.rates, x.shape[1:3])
    total = None
    for k, r in enumerate(self.rates):
      if self.branch == "vgg":
        y = FCHead(self.num_classes, self.features, 3, int(r), self.dropout, self.dtype,
                   name=f"branch{k}")(x, train, check=False)
      else:
        y = nn.Conv(self.num_classes, (3, 3), padding=((r, r), (r, r)), kernel_dilation=(r, r),
                    dtype=self.dtype, param_dtype=jnp.float32, kernel_init=classifier_init,
                    name=f"c{k}")(x).astype(jnp.float32)
      total = y if total is None else total + y
    return total


class ASPP(nn.Module):
  """DeepLab v3's atrous spatial pyramid pooling (module docstring).

  (N, h, w, C) -> (N, h, w, features). `rates` are the atrous rates as used (the caller scales
  them by 16 / output_stride). image_pooling=False drops that branch (an ablation).
  Params: `branch0_conv/bn` (1x1), `branch{k}_conv/bn` (3x3, k = 1..len(rates)),
  `pool_conv/pool_bn`, `project_conv/project_bn` (torchvision's classifier.0.convs.*, .project.*).
  """
  rates: Sequence[int] = (6, 12, 18)
  features: int = 256
  image_pooling: bool = True
  dropout: float = 0.1
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    check_rates("ASPP", "rates", self.rates, x.shape[1:3])
    bn_relu = lambda name, y: nn.relu(self.bn.make(name, self.dtype)(y, train))  # noqa: E731
    x = x.astype(self.dtype)
    branches = [bn_relu("branch0_bn", conv(self.features, 1, dtype=self.dtype, name="branch0_conv")(x))]
    for k, r in enumerate(self.rates, start=1):
      y = conv(self.features, 3, dilation=int(r), dtype=self.dtype, name=f"branch{k}_conv")(x)
      branches.append(bn_relu(f"branch{k}_bn", y))
    if self.image_pooling:
      g = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True).astype(self.dtype)
      g = bn_relu("pool_bn", conv(self.features, 1, dtype=self.dtype, name="pool_conv")(g))
      # Bilinear upsampling of a 1x1 map is a broadcast under either corner convention.
      branches.append(jnp.broadcast_to(g, x.shape[:3] + (self.features,)))
    y = jnp.concatenate(branches, axis=-1)
    y = bn_relu("project_bn", conv(self.features, 1, dtype=self.dtype, name="project_conv")(y))
    return nn.Dropout(self.dropout, deterministic=not train)(y)


class DeepLabV3Head(nn.Module):
  """ASPP -> [torchvision: 3x3 conv + BN + ReLU] -> 1x1 classifier with bias.

  (N, h, w, C) -> (N, h, w, num_classes) float32.
  Params: `aspp/...`, `conv`/`bn` (torchvision's classifier.1/.2), `classifier` (classifier.4).
  """
  num_classes: int
  rates: Sequence[int] = (6, 12, 18)
  features: int = 256
  image_pooling: bool = True
  dropout: float = 0.1
  extra_conv: bool = False
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    y = ASPP(tuple(self.rates), self.features, self.image_pooling, self.dropout, bn=self.bn,
             dtype=self.dtype, name="aspp")(x, train)
    if self.extra_conv:
      y = conv(self.features, 3, dtype=self.dtype, name="conv")(y)
      y = nn.relu(self.bn.make("bn", self.dtype)(y, train))
    return nn.Conv(self.num_classes, (1, 1), dtype=self.dtype, param_dtype=jnp.float32,
                   name="classifier")(y).astype(jnp.float32)
