"""PSPNet's segmentation heads (the main `cls` head and the auxiliary head on layer3), also
torchvision's FCNHead (DeepLab v3's auxiliary head: features = C / 4, element-wise dropout)."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from psp_jax.models.resnet import BNConfig, conv


class SegHead(nn.Module):
  """conv3x3 (no bias) -> BN -> ReLU -> channel dropout -> conv1x1 (bias) to class logits.

  (N, H, W, C) -> (N, H, W, num_classes) float32. Params: `conv`, `bn`, `classifier`
  (semseg's `cls.0`, `cls.1`, `cls.4`; torchvision FCNHead's `0`, `1`, `4`).
  channel_dropout: drop whole channels (Dropout2d, semseg) or single activations (nn.Dropout,
  torchvision's FCNHead).
  """
  num_classes: int
  features: int = 512
  dropout: float = 0.1
  channel_dropout: bool = True
  bn: BNConfig = BNConfig()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False) -> jnp.ndarray:
    y = conv(self.features, 3, dtype=self.dtype, name="conv")(x)
    y = nn.relu(self.bn.make("bn", self.dtype)(y, train))
    # Dropout2d: one Bernoulli draw per (image, channel), broadcast over H and W.
    broadcast = (1, 2) if self.channel_dropout else ()
    y = nn.Dropout(self.dropout, broadcast_dims=broadcast, deterministic=not train)(y)
    y = nn.Conv(self.num_classes, (1, 1), dtype=self.dtype, param_dtype=jnp.float32,
                name="classifier")(y)
    return y.astype(jnp.float32)
