"""Pyramid pooling module (PSPNet, Zhao et al. 2017) and its CascadePSP variant."""
from __future__ import annotations

from typing import Any, Literal, Sequence

import flax.linen as nn
import jax.numpy as jnp

from psp_jax.models.ops import adaptive_pool, resize_bilinear
from psp_jax.models.resnet import BNConfig, conv


class PyramidPooling(nn.Module):
  """Pool the feature map into b x b cells per bin, project, upsample back, fuse.

  Input (N, H, W, C) -> output (N, H, W, C_out):
    fusion='concat' (PSPNet):  concat([x, branch_1, ..., branch_k]); C_out = C + k * C_branch.
    fusion='bottleneck' (CascadePSP): concat([branch_1, ..., branch_k, x]) -> conv1x1 with
      bias -> ReLU; C_out = bottleneck_features.

  Attributes:
    bins: grid sizes, e.g. (1, 2, 3, 6).
    pool: 'avg' or 'max' adaptive pooling (PyTorch cell boundaries).
    reduction: dimension reduction; branch_features defaults to C // len(bins) when True and
      to C when False (the paper's "DR" ablation).
    branch_features: explicit branch width (overrides `reduction`).
    branch_bn: BN + ReLU after each branch conv (PSPNet) or a bare conv (CascadePSP).
    align_corners: resize convention of the upsampling (True: semseg, False: CascadePSP).
  Params: `branch{k}_conv` (+ `branch{k}_bn`), and `bottleneck` for fusion='bottleneck'.
  """
  bins: Sequence[int] = (1, 2, 3, 6)
  pool: Literal["avg", "max"] = "avg"
  reduction: bool = True
  branch_features: int | None = None
  branch_bn: bool = True
  fusion: Literal["concat", "bottleneck"] = "concat"
  bottleneck_features: int = 1024
  align_corners: bool = True
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    if x.ndim != 4:
      raise ValueError(f"PyramidPooling input must be NHWC of rank 4, got shape {x.shape}")
    if not self.bins or any(int(b) < 1 for b in self.bins):
      raise ValueError(f"PyramidPooling bins must be a non-empty list of positive ints, got {self.bins}")
    if self.pool not in ("avg", "max"):
      raise ValueError(f"PyramidPooling pool must be 'avg' or 'max', got {self.pool!r}")
    if self.fusion not in ("concat", "bottleneck"):
      raise ValueError(f"PyramidPooling fusion must be 'concat' or 'bottleneck', got {self.fusion!r}")
    _, h, w, c = x.shape
    if self.branch_features is not None:
      width = self.branch_features
    elif self.reduction:
      if c % len(self.bins):
        raise ValueError(f"PyramidPooling: {c} input channels do not split evenly over bins {self.bins}")
      width = c // len(self.bins)
    else:
      width = c
    branches = []
    for k, b in enumerate(self.bins):
      y = adaptive_pool(x, int(b), self.pool)
      y = conv(width, 1, dtype=self.dtype, name=f"branch{k}_conv")(y)
      if self.branch_bn:
        y = nn.relu(self.bn.make(f"branch{k}_bn", self.dtype)(y, train))
      branches.append(resize_bilinear(y, (h, w), self.align_corners))
    if self.fusion == "concat":
      return jnp.concatenate([x.astype(self.dtype)] + branches, axis=-1)
    y = jnp.concatenate(branches + [x.astype(self.dtype)], axis=-1)
    y = conv(self.bottleneck_features, 1, use_bias=True, dtype=self.dtype, name="bottleneck")(y)
    return nn.relu(y)
