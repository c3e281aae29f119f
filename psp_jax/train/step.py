"""The jit-compiled data-parallel train and eval steps.

Each step is one `jax.shard_map` over the 1-D mesh axis 'data' with pmap semantics: every
device runs the per-replica code on its slice of the global batch, and collectives make the
loss, metrics and BatchNorm statistics global.

The gradient trap (measured): inside shard_map the gradient with respect to the replicated
params already comes back summed over the mesh axis. We therefore differentiate the GLOBAL
loss (psum of the per-device sums over psum of the labelled-pixel counts) and never pmean the
gradients again (that would multiply them by the device count).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from psp_jax import xla_cpu
from psp_jax.evaluate.metrics import confusion_matrix
from psp_jax.models import ops
from psp_jax.parallel import DATA_AXIS, data_sharded, replicated
from psp_jax.train.losses import (IGNORE_LABEL, check_class_weights, cross_entropy_sum,
                                  invalid_label_count)
from psp_jax.train.optim import Optimizer
from psp_jax.train.state import TrainState


def with_bn_sync(model: nn.Module, sync: bool, group_size: int | None = None) -> nn.Module:
  """The same model with its BatchNorms reading statistics over the 'data' axis (or not)."""
  bn = dataclasses.replace(model.bn, axis_name=DATA_AXIS if sync else None,
                           group_size=group_size if sync else None)
  return model.clone(bn=bn)


def step_rng(state: TrainState) -> jax.Array:
  """This replica's dropout key: a pure function of the state's key, step and replica."""
  key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  return jax.random.fold_in(key, lax.axis_index(DATA_AXIS))


def apply_gradients(state: TrainState, grads, batch_stats, tx: optax.GradientTransformation,
                    fully_synced: bool) -> TrainState:
  """One optimiser update (inside shard_map). `grads` must be the gradient of the GLOBAL loss
  (see the module docstring: no pmean). BatchNorm running statistics are averaged over the
  replicas unless they were computed over the whole batch already, so the state stays
  replicated."""
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  if not fully_synced:
    batch_stats = lax.pmean(batch_stats, DATA_AXIS)
  return state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                       opt_state=opt_state)


def compile_data_parallel(local_step: Callable, mesh: Mesh, *, num_batch_args: int,
                          donate: bool = True) -> Callable:
  """jit(shard_map(local_step)): `local_step(state, *batch) -> (state, metrics)` with the
  state and metrics replicated and every batch argument split over 'data' on its first axis.
  jax 0.10's shard_map does not reshard its inputs, hence the explicit in_shardings. On the CPU
  it compiles with XLA's own convolutions instead of YNNPACK's (psp_jax/xla_cpu.py) where that
  setting applies, and traces the step inside `ops.xla_own_convolutions` then, and inside
  `ops.tap_dot_grads_pay(xla_cpu.tap_dot_grads_pay(platform))`."""
  in_specs = (P(),) + (P(DATA_AXIS),) * num_batch_args
  sharded = jax.shard_map(local_step, mesh=mesh, in_specs=in_specs, out_specs=(P(), P()))
  platform = mesh.devices.flat[0].platform
  options = xla_cpu.train_compiler_options(platform)
  own = xla_cpu.train_convolutions_are_xla_own(platform)
  tap_dots = xla_cpu.tap_dot_grads_pay(platform)

  def traced(*args):  # the model's layers know which convolutions they are compiled with
    with ops.xla_own_convolutions(own), ops.tap_dot_grads_pay(tap_dots):
      return sharded(*args)

  return jax.jit(traced, in_shardings=(replicated(mesh),) + (data_sharded(mesh),) * num_batch_args,
                 out_shardings=(replicated(mesh), replicated(mesh)),
                 donate_argnums=(0,) if donate else (),
                 compiler_options=options or None)


def make_train_step(model: nn.Module, optimizer: Optimizer, mesh: Mesh, *, num_classes: int,
                    aux_weight: float = 0.4, ignore_label: int = IGNORE_LABEL,
                    sync_bn: bool = True, bn_group_size: int | None = None,
                    donate: bool = True, class_weights: Sequence[float] | None = None,
                    native_loss: Callable | None = None) -> Callable:
  """Returns `step(state, images, labels) -> (state, metrics)`, jit-compiled over `mesh`.

  images (B, H, W, C) float and labels (B, H, W) int are GLOBAL batches sharded over 'data'
  (numpy inputs are placed automatically on one host); B must divide by the device count.
  sync_bn: BatchNorm statistics over the whole global batch (SyncBN) or, if False, per
  device (as PyTorch DataParallel without SyncBN); bn_group_size: sync within groups of that
  many devices. Running statistics are averaged over replicas after every step either way,
  so the state stays replicated and evaluation/saving see synchronised statistics.
  class_weights: None (every labelled pixel weighs 1: the default) or one weight per class for
  the main and aux losses, normalised by the labelled-pixel count as Caffe does (see
  psp_jax.train.losses); checked here, before anything is compiled.
  native_loss: None (cross-entropy of the input-size logits, + aux_weight x aux) or a family's
  recipe loss (ModelFamily.native_loss resolved: fn(native outputs, labels, ignore_label) ->
  NativeObjective): the loss is the sum over its terms of global sum / global count, aux_loss
  is 0, and pixel_acc / labelled_pixels refer to its primary output's resolution.
  metrics: loss (main + aux_weight * aux), main_loss, aux_loss, pixel_acc, labelled_pixels,
  invalid_label_pixels (labels neither a class nor ignore: a data bug), grad_norm,
  lr/<group> for every parameter group.
  """
  if class_weights is not None:
    class_weights = tuple(float(w) for w in check_class_weights(class_weights, num_classes))
    if native_loss is not None:
      raise ValueError("class_weights apply to the cross-entropy of the input-size logits, not "
                       "to a family's native loss (train.native_loss): set one of them")
  model = with_bn_sync(model, sync_bn, bn_group_size)
  fully_synced = sync_bn and bn_group_size is None
  tx = optimizer.tx

  def local_step(state: TrainState, images, labels):
    rng = step_rng(state)

    def native_loss_fn(params):
      outputs, updates = model.apply(
          {"params": params, "batch_stats": state.batch_stats}, images, train=True,
          native=True, mutable=["batch_stats"], rngs={"dropout": rng})
      objective = native_loss(outputs, labels, ignore_label)
      loss = sum(lax.psum(s, DATA_AXIS) / jnp.maximum(lax.psum(c, DATA_AXIS), 1.0)
                 for s, c in objective.terms.values())
      valid = (objective.labels != ignore_label) & (objective.labels >= 0)
      count = jnp.sum(valid).astype(jnp.float32)
      return loss, (loss, jnp.zeros((), jnp.float32), updates["batch_stats"], objective.logits,
                    objective.labels, count)

    def loss_fn(params):
      (logits, aux_logits), updates = model.apply(
          {"params": params, "batch_stats": state.batch_stats}, images, train=True,
          return_aux=True, mutable=["batch_stats"], rngs={"dropout": rng})
      main_sum, count = cross_entropy_sum(logits, labels, ignore_label, class_weights=class_weights)
      total_count = jnp.maximum(lax.psum(count, DATA_AXIS), 1.0)
      main = lax.psum(main_sum, DATA_AXIS) / total_count
      aux = jnp.zeros((), jnp.float32)
      if aux_logits is not None and aux_weight:
        aux_sum, _ = cross_entropy_sum(aux_logits, labels, ignore_label, class_weights=class_weights)
        aux = lax.psum(aux_sum, DATA_AXIS) / total_count
      return main + aux_weight * aux, (main, aux, updates["batch_stats"], logits, labels, count)

    (loss, (main, aux, batch_stats, logits, acc_labels, count)), grads = jax.value_and_grad(
        loss_fn if native_loss is None else native_loss_fn, has_aux=True)(state.params)
    # `grads` is already the gradient of the global loss (summed over replicas): no pmean.
    new_state = apply_gradients(state, grads, batch_stats, tx, fully_synced)

    valid = (acc_labels != ignore_label) & (acc_labels >= 0) & (acc_labels < num_classes)
    correct = jnp.sum((jnp.argmax(logits, -1) == acc_labels) & valid)
    metrics = {
        "loss": loss, "main_loss": main, "aux_loss": aux,
        "pixel_acc": lax.psum(correct, DATA_AXIS) / jnp.maximum(lax.psum(count, DATA_AXIS), 1.0),
        "labelled_pixels": lax.psum(count, DATA_AXIS),
        "invalid_label_pixels": lax.psum(invalid_label_count(labels, num_classes, ignore_label),
                                         DATA_AXIS),
        "grad_norm": optax.tree.norm(grads),
    }
    metrics.update({f"lr/{g}": lr for g, lr in optimizer.learning_rates(state.step).items()})
    return new_state, metrics

  return compile_data_parallel(local_step, mesh, num_batch_args=2, donate=donate)


def make_eval_step(model: nn.Module, mesh: Mesh, *, num_classes: int,
                   ignore_label: int = IGNORE_LABEL) -> Callable:
  """Returns `step(variables, images, labels) -> confusion matrix` summed over all devices.

  A direct forward at the batch's size (sliding-window evaluation lives in
  `psp_jax.evaluate`). Padding samples labelled entirely `ignore_label` count nowhere.
  """
  def local_eval(variables, images, labels):
    logits = model.apply(variables, images, train=False)
    cm = confusion_matrix(labels, jnp.argmax(logits, -1), num_classes, ignore_label)
    return lax.psum(cm, DATA_AXIS)

  sharded = jax.shard_map(local_eval, mesh=mesh, in_specs=(P(), P(DATA_AXIS), P(DATA_AXIS)),
                          out_specs=P())
  return jax.jit(sharded, in_shardings=(replicated(mesh), data_sharded(mesh), data_sharded(mesh)),
                 out_shardings=replicated(mesh))
