"""The jit-compiled data-parallel train step of the CascadePSP refinement module.

The same machinery as the PSPNet step (`psp_jax.train.step`): one `jax.shard_map` over the
mesh axis 'data', SyncBN through the BatchNorm axis_name, the GLOBAL loss differentiated
(psum of per-device pixel sums over the psum'd pixel count) and the gradients not pmean'd.
"""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.sharding import Mesh

from psp_jax.parallel import DATA_AXIS
from psp_jax.train import refine_losses
from psp_jax.train.optim import Optimizer
from psp_jax.train.state import TrainState
from psp_jax.train.step import apply_gradients, compile_data_parallel, with_bn_sync


def make_refine_train_step(model: nn.Module, optimizer: Optimizer, mesh: Mesh, *,
                           ce_weights: Sequence[float] = refine_losses.PUBLISHED_CE_WEIGHTS,
                           l1l2_weights: Sequence[float] = refine_losses.PUBLISHED_L1L2_WEIGHTS,
                           grad_weight: float = refine_losses.PUBLISHED_GRAD_WEIGHT,
                           sync_bn: bool = True, bn_group_size: int | None = None,
                           donate: bool = True) -> Callable:
  """Returns `step(state, images, seg, gt) -> (state, metrics)`, jit-compiled over `mesh`.

  images (B, H, W, 3) float ImageNet-normalised; seg (B, H, W) the perturbed input mask and
  gt (B, H, W) the ground truth, both in {0, 1}: GLOBAL batches split over 'data' (H, W
  multiples of 8). The forward runs the three passes from seg mapped to [-1, 1].
  metrics: loss (the objective of `refine_losses`), each weighted term ('ce/s8a', ...,
  'l1l2/s1', 'grad'; means over pixels), iou (of s1 > 0) and input_iou (of seg) pooled over
  the global batch, invalid_label_pixels (gt values other than 0/1: a data bug), grad_norm,
  lr/<group>.
  """
  refine_losses.check_weights(ce_weights, l1l2_weights)
  model = with_bn_sync(model, sync_bn, bn_group_size)
  fully_synced = sync_bn and bn_group_size is None
  tx = optimizer.tx

  def local_step(state: TrainState, images, seg, gt):
    seg_in = (seg.astype(images.dtype)[..., None] - 0.5) / 0.5

    def loss_fn(params):
      outputs, updates = model.apply({"params": params, "batch_stats": state.batch_stats},
                                     images, seg_in, train=True, mutable=["batch_stats"])
      sums, count = refine_losses.refinement_loss_sums(
          outputs, gt, ce_weights=ce_weights, l1l2_weights=l1l2_weights, grad_weight=grad_weight)
      total = jnp.maximum(lax.psum(count, DATA_AXIS), 1.0)
      terms = {k: lax.psum(v, DATA_AXIS) / total for k, v in sums.items()}
      return terms["total"], (terms, updates["batch_stats"], outputs["s1"])

    (loss, (terms, batch_stats, s1)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    new_state = apply_gradients(state, grads, batch_stats, tx, fully_synced)

    inter, union = refine_losses.binary_iou_counts(s1, gt)
    in_inter, in_union = refine_losses.binary_iou_counts(seg - 0.5, gt)
    psum = lambda x: lax.psum(x, DATA_AXIS)  # noqa: E731
    invalid = jnp.sum((gt != 0) & (gt != 1)).astype(jnp.int32)
    metrics = {k: v for k, v in terms.items() if k != "total"}
    metrics.update({
        "loss": loss,
        "iou": psum(inter) / jnp.maximum(psum(union), 1.0),
        "input_iou": psum(in_inter) / jnp.maximum(psum(in_union), 1.0),
        "invalid_label_pixels": psum(invalid),
        "grad_norm": optax.tree.norm(grads),
    })
    metrics.update({f"lr/{g}": lr for g, lr in optimizer.learning_rates(state.step).items()})
    return new_state, metrics

  return compile_data_parallel(local_step, mesh, num_batch_args=3, donate=donate)
