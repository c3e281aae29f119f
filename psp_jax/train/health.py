"""Training health: step metrics summed ON DEVICE between log steps, and the checks that stop
a run whose loss is not finite or whose labels are outside the classes.

Host-device round trips: the accumulator (sums over the log interval, the first step whose
loss was not finite, the count of invalid label pixels) is fetched only at log / checkpoint /
evaluation steps, and `check_health` runs on the fetched copy before anything is saved.
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp

from psp_jax.parallel import replicate


class TrainingError(RuntimeError):
  """A run stopped because something is wrong with the data or the optimisation."""


class NonFiniteLossError(TrainingError):
  pass


class InvalidLabelsError(TrainingError):
  pass


def zero_accumulator(mesh, keys: tuple[str, ...]) -> dict:
  acc = {"sums": {k: jnp.zeros((), jnp.float32) for k in keys},
         "count": jnp.zeros((), jnp.int32), "invalid": jnp.zeros((), jnp.int32),
         "bad_step": jnp.full((), -1, jnp.int32), "bad_loss": jnp.zeros((), jnp.float32)}
  return replicate(acc, mesh)


@jax.jit
def accumulate(acc: dict, metrics: dict, step: jnp.ndarray) -> dict:
  loss = metrics["loss"]
  first_bad = (acc["bad_step"] < 0) & ~jnp.isfinite(loss)
  return {"sums": {k: v + metrics[k].astype(jnp.float32) for k, v in acc["sums"].items()},
          "count": acc["count"] + 1,
          "invalid": acc["invalid"] + metrics["invalid_label_pixels"].astype(jnp.int32),
          "bad_step": jnp.where(first_bad, step.astype(jnp.int32), acc["bad_step"]),
          "bad_loss": jnp.where(first_bad, loss, acc["bad_loss"])}


def check_health(acc_host: dict, *, last_good: int | None, checkpoint_dir: pathlib.Path, step: int,
                 labels_hint: str) -> None:
  """Raise NonFiniteLossError / InvalidLabelsError from a fetched accumulator."""
  bad = int(acc_host["bad_step"])
  if bad >= 0:
    where = (f"the last good checkpoint is step {last_good} in {checkpoint_dir}" if last_good is not None
             else "no checkpoint was written")
    raise NonFiniteLossError(
        f"loss is {float(acc_host['bad_loss'])} (not finite) at step {bad}: training stopped and "
        f"nothing from step {bad} on was saved; {where}. Lower optim.base_lr, enable "
        "optim.grad_clip_norm, or check the input data of that step.")
  invalid = int(acc_host["invalid"])
  if invalid > 0:
    raise InvalidLabelsError(
        f"{invalid} label pixels in the training batches up to step {step} are outside the classes "
        f"({labels_hint}).")
