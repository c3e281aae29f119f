"""The set-up summary a run prints and writes to WORKDIR/setup.txt: processes and devices, the
batch split, the effective BatchNorm batch, the learning rate of every parameter group at the
start, middle and end of the schedule."""
from __future__ import annotations

import jax

from psp_jax.train.optim import Optimizer


def bn_batch_description(config, mesh, per_device: int) -> str:
  t = config.train
  if t.get("frozen_bn", False):
    return "frozen (running statistics, no batch statistics)"
  n = mesh.devices.size
  if not t.get("sync_bn", True):
    return f"{per_device} (per device, no sync)"
  group = t.get("bn_group_size") or n
  if n % group:
    raise ValueError(f"train.bn_group_size={group} must divide the {n} devices of the mesh")
  return f"{per_device * group} ({per_device} per device x {group} devices per BN group)"


def schedule_points(optimizer: Optimizer, total: int) -> list[tuple[int, dict[str, float]]]:
  steps = sorted({0, total // 2, total})
  return [(s, {g: float(v) for g, v in optimizer.learning_rates(s).items()}) for s in steps]


def describe_setup(config, mesh, per_device: int, optimizer: Optimizer, total: int,
                   resume_step: int | None, data_seed: int) -> str:
  devices = jax.devices()
  lines = [
      f"platform: {devices[0].platform} ({devices[0].device_kind})",
      f"processes: {jax.process_count()} (this is process {jax.process_index()})",
      f"devices: {jax.local_device_count()} local, {jax.device_count()} global; "
      f"mesh 'data' over {mesh.devices.size}",
      f"global batch: {config.train.batch_size} = {per_device} per device x {mesh.devices.size} "
      f"devices ({config.train.batch_size // jax.process_count()} per process)",
      f"BatchNorm batch: {bn_batch_description(config, mesh, per_device)}",
      f"steps: {total}; log every {config.train.log_every}, checkpoint every "
      f"{config.train.checkpoint_every} (keep {config.train.keep_checkpoints}), evaluate every "
      f"{config.eval.every}",
      f"data order seed: {data_seed}",
      f"start: {'resume from step ' + str(resume_step) if resume_step is not None else 'step 0'}"
      + (f" (init_checkpoint {config.train.init_checkpoint})"
         if config.train.get("init_checkpoint") and resume_step is None else ""),
      "learning rate per parameter group (schedule end points):",
  ]
  for step, lrs in schedule_points(optimizer, total):
    lines.append(f"  step {step:>7d}: " + ", ".join(f"{g} {lr:.6g}" for g, lr in sorted(lrs.items())))
  return "\n".join(lines)
