"""Optimiser from config: SGD (PSPNet) or Adam (CascadePSP), L2 weight decay added to the
gradient as PyTorch does, a schedule, and per-module learning-rate multipliers.

Per-module multipliers are how PSPNet trains: the pretrained backbone at the base rate, the
new layers (PPM, main head, aux head) at 10x. A multiplier is keyed by a module path
('ppm', 'head', 'backbone/layer4_0', ...); the longest matching path wins; parameters that
match none use 1x. The update of a parameter in group g is
  -lr(step) * multiplier_g * (momentum buffer or Adam direction of grad + wd * param).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Mapping

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from psp_jax.train.param_rules import apply_param_rules
from psp_jax.train.schedules import poly_schedule, step_schedule

BASE_GROUP = "base"
FROZEN_GROUP = "frozen"


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """The optax transformation plus what logging needs: lr of each parameter group."""
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  multipliers: dict[str, float]  # group name -> multiplier of the base schedule
  labels: Any  # pytree of group names, same structure as params

  def learning_rates(self, step) -> dict[str, jnp.ndarray]:
    base = self.schedule(step)
    return {g: base * m for g, m in self.multipliers.items()}


def batchnorm_paths(batch_stats) -> list[tuple[str, ...]]:
  """Module paths of every BatchNorm (those holding running statistics), for `frozen_paths`."""
  flat = traverse_util.flatten_dict(batch_stats)
  return sorted({path[:-1] for path in flat})


def group_labels(params, multipliers: Mapping[str, float], optional: Iterable[str] = (),
                 frozen_paths: Iterable[tuple[str, ...]] = ()) -> Any:
  """Pytree of group names for `params`.

  A multiplier key that names no module raises ValueError, unless it is in `optional`
  (modules a model may leave out, e.g. 'aux_head' when the aux head is off). Parameters whose
  path starts with one of `frozen_paths` go to the 'frozen' group.
  """
  flat = traverse_util.flatten_dict(params, sep="/")
  keys = {k.strip("/"): float(v) for k, v in multipliers.items()}
  optional = set(optional)
  for k in keys:
    if k in (BASE_GROUP, FROZEN_GROUP):
      raise ValueError(f"optim.lr_multipliers key {k!r} is reserved; name a module instead")
    if k not in optional and not any(p == k or p.startswith(k + "/") for p in flat):
      modules = sorted({p.split("/")[0] for p in flat})
      raise ValueError(f"optim.lr_multipliers names module {k!r}, which the model does not have; "
                       f"top-level modules are {modules} (nested paths like 'backbone/layer4_0' work too)")
  frozen = ["/".join(f) for f in frozen_paths]
  labels = {}
  for path in flat:
    if any(path == f or path.startswith(f + "/") for f in frozen):
      labels[path] = FROZEN_GROUP
      continue
    matches = [k for k in keys if path == k or path.startswith(k + "/")]
    labels[path] = max(matches, key=len) if matches else BASE_GROUP
  return traverse_util.unflatten_dict(labels, sep="/")


def make_schedule(cfg, total_steps: int) -> optax.Schedule:
  """Schedule from `optim` config fields (schedule: 'poly' | 'step' | 'constant').

  'step' takes `boundaries` (absolute steps) or, when those are empty, `boundary_fractions`
  of total_steps (so overriding train.steps moves the decays with it; CascadePSP's 22.5K and
  37.5K of 45K are (0.5, 5/6)).
  """
  name = cfg.get("schedule", "poly")
  if name == "poly":
    return poly_schedule(cfg.base_lr, total_steps, cfg.get("power", 0.9),
                         cfg.get("warmup_steps", 0), cfg.get("warmup_init_lr", 0.0),
                         cfg.get("end_lr", 0.0))
  if name == "step":
    boundaries = tuple(cfg.get("boundaries", ()) or ())
    if not boundaries:
      boundaries = tuple(int(round(float(f) * total_steps)) for f in cfg.get("boundary_fractions", ()) or ())
    return step_schedule(cfg.base_lr, boundaries, cfg.get("decay_factor", 0.1))
  if name == "constant":
    return optax.constant_schedule(cfg.base_lr)
  raise ValueError(f"optim.schedule={name!r} is not one of 'poly', 'step', 'constant'")


def make_optimizer(cfg, params, total_steps: int, *, optional_modules: Iterable[str] = (),
                   frozen_paths: Iterable[tuple[str, ...]] = ()) -> Optimizer:
  """Build the optimiser described by the `optim` config section for `params`.

  Fields: name ('sgd' | 'adam'), base_lr, momentum, nesterov, weight_decay, schedule and its
  fields (see `make_schedule`), lr_multipliers {module path: factor}, param_rules (Caffe's
  per-parameter lr/decay multipliers, see psp_jax.train.param_rules; absent or empty: none),
  grad_clip_norm (0: off), b1, b2, eps (Adam).
  """
  schedule = make_schedule(cfg, total_steps)
  frozen_paths = list(frozen_paths)
  labels = group_labels(params, dict(cfg.get("lr_multipliers", {}) or {}), optional_modules,
                        frozen_paths)
  used = set(jax.tree_util.tree_leaves(labels))
  multipliers = {g: float(m) for g, m in (cfg.get("lr_multipliers", {}) or {}).items() if g in used}
  if BASE_GROUP in used:
    multipliers[BASE_GROUP] = 1.0
  if FROZEN_GROUP in used:
    multipliers[FROZEN_GROUP] = 0.0
  decay_mask = None
  if cfg.get("param_rules"):  # Caffe-style per-parameter lr/decay multipliers
    labels, multipliers, decay_mask = apply_param_rules(params, labels, multipliers,
                                                        list(cfg.param_rules), FROZEN_GROUP)
  trainable = jax.tree_util.tree_map(lambda g: g != FROZEN_GROUP, labels)
  frozen = jax.tree_util.tree_map(lambda g: g == FROZEN_GROUP, labels)

  parts: list[optax.GradientTransformation] = []
  if frozen_paths:
    parts.append(optax.masked(optax.set_to_zero(), frozen))
  if cfg.get("grad_clip_norm", 0.0):
    parts.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
  if cfg.get("weight_decay", 0.0):
    parts.append(optax.add_decayed_weights(cfg.weight_decay,
                                           mask=trainable if decay_mask is None else decay_mask))
  name = cfg.get("name", "sgd")
  if name == "sgd":
    if cfg.get("momentum", 0.9):
      parts.append(optax.trace(decay=cfg.get("momentum", 0.9), nesterov=cfg.get("nesterov", False)))
  elif name == "adam":
    parts.append(optax.scale_by_adam(cfg.get("b1", 0.9), cfg.get("b2", 0.999), cfg.get("eps", 1e-8)))
  else:
    raise ValueError(f"optim.name={name!r} is not one of 'sgd', 'adam'")

  def group_lr(mult: float) -> Callable:
    return lambda step: schedule(step) * mult

  parts.append(optax.multi_transform(
      {g: optax.scale_by_learning_rate(group_lr(m)) for g, m in multipliers.items()}, labels))
  return Optimizer(optax.chain(*parts), schedule, multipliers, labels)
