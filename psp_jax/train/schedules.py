"""Learning-rate schedules: PSPNet's poly decay (with optional linear warm-up), step decay."""
from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import optax


def poly_schedule(base_lr: float, total_steps: int, power: float = 0.9, warmup_steps: int = 0,
                  warmup_init_lr: float = 0.0, end_lr: float = 0.0) -> optax.Schedule:
  """lr(step) = end + (base - end) * (1 - step / total) ** power, after an optional warm-up.

  The decay runs over all `total_steps` (warm-up included, as semseg counts iterations):
  lr(0) = base (or warmup_init_lr with warm-up), lr(total) = end_lr. During the warm-up the
  rate rises linearly from warmup_init_lr to the poly value at `warmup_steps`.
  """
  if total_steps < 1:
    raise ValueError(f"poly_schedule total_steps must be >= 1, got {total_steps}")
  if not 0 <= warmup_steps < total_steps:
    raise ValueError(f"poly_schedule warmup_steps must be in [0, {total_steps}), got {warmup_steps}")

  def poly(step):
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / total_steps, 0.0, 1.0)
    return end_lr + (base_lr - end_lr) * (1.0 - frac) ** power

  if warmup_steps == 0:
    return poly

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    ramp = warmup_init_lr + (poly(warmup_steps) - warmup_init_lr) * step / warmup_steps
    return jnp.where(step < warmup_steps, ramp, poly(step))

  return schedule


def step_schedule(base_lr: float, boundaries: Sequence[int], factor: float = 0.1) -> optax.Schedule:
  """lr = base * factor ** (number of boundaries passed) (CascadePSP: x0.1 at 22.5K, 37.5K)."""
  return optax.piecewise_constant_schedule(base_lr, {int(b): factor for b in boundaries})
