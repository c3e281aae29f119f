"""The model contract: what every model family provides, written once.

A family is one model file (a flax.linen Module plus its `FAMILY = ModelFamily(...)`), one
registry line in psp_jax/models/build.py and one config file. Everything outside
psp_jax/models/ reaches a family only through its `ModelFamily` (`build.family_of(...)`), never
by testing its name or class.

What a family provides:
  name            the `model.name` of configs and checkpoint metas ('pspnet', 'segnet', ...).
  module          the flax Module; every dataclass field except `bn` (and flax's parent/name)
                  is plain config data, so `build.build_model(model_cfg)` constructs it and
                  `build.model_config(model)` writes it back.
  task            what it is trained and run for:
                    'segmentation': `__call__(images, train=False, return_aux=False)` with
                      images float NHWC (normalised by `preprocessing`) returns float32 logits
                      (N, H, W, num_classes) at the input size; with return_aux=True,
                      (logits, aux_logits or None). Has a `num_classes` field.
                    'refinement': CascadePSP's call (images, seg, ...) -> dict of outputs
                      (see psp_jax/models/refinement.py).
                    'backbone': features only (ImageNet weights meant for init_checkpoint).
  example_inputs  fn(model, size) -> (args, kwargs) for `model.init`: creates EVERY variable
                  (e.g. return_aux=True so the aux head exists).
  lr_modules      the top-level module names `optim.lr_multipliers` may name even when a
                  configuration leaves them out (PSPNet's 'ppm' with context='none',
                  'aux_head' with aux=False); names present in the model are always accepted.
  preprocessing   the input normalisation the family's published weights expect
                  (psp_jax.preprocessing.Preprocessing: value scale, mean/std, channel order);
                  configs set data.mean/std/input_scale/channel_order to it, training writes the
                  data config's into the checkpoint meta, predict/evaluate apply the meta's.
  native_loss     '' (default): the segmentation step trains on cross-entropy of the
                  input-size logits (+ aux). Else 'module:function', the recipe's own loss
                  (DeepLab v1's shrunk labels, v2's multi-scale sum), used when the config sets
                  train.native_loss=True: fn(outputs of `__call__(images, train=True,
                  native=True)`, labels (N, H, W) int, ignore_label) -> NativeObjective
                  (psp_jax/train/losses.py). A path, not a function, so that model code never
                  imports training code.
  inference_fields constructor fields that change how trained parameters are run, never the
                  parameters themselves (PSPNet's and DeepLab v3's output_stride: v3 trains at 16
                  and evaluates at 8). `psp-jax evaluate` does not count a checkpoint/config
                  difference in them as a mismatch, and ablation tables may set them as
                  evaluation-only overrides (model.output_stride in a row's `eval`).
  tiny            constructor fields of a tiny instance (a few channels, works at 32-64 px):
                  what the contract test (tests/models/test_contract.py) and smoke tests build.
  bn              every module takes a `bn: BNConfig` field (sync axis, groups, frozen) given
                  at build time, not in config data.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax.numpy as jnp

from psp_jax.preprocessing import Preprocessing

TASKS = ("segmentation", "refinement", "backbone")
ExampleInputs = Callable[[nn.Module, int], tuple[tuple, dict]]


@dataclasses.dataclass(frozen=True)
class ModelFamily:
  """One family's side of the contract (module docstring)."""
  name: str
  module: type[nn.Module]
  task: str
  example_inputs: ExampleInputs
  lr_modules: tuple[str, ...] = ()
  preprocessing: Preprocessing = Preprocessing()
  tiny: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  native_loss: str = ""
  inference_fields: tuple[str, ...] = ()

  def __post_init__(self):
    if self.task not in TASKS:
      raise ValueError(f"family {self.name!r}: task must be one of {TASKS}, got {self.task!r}")
    fields = {f.name for f in dataclasses.fields(self.module)}
    if "bn" not in fields:
      raise ValueError(f"family {self.name!r}: {self.module.__name__} needs a `bn: BNConfig` field")
    if self.task == "segmentation" and "num_classes" not in fields:
      raise ValueError(f"family {self.name!r}: a segmentation module needs a `num_classes` field")
    if self.native_loss and (":" not in self.native_loss or self.task != "segmentation"):
      raise ValueError(f"family {self.name!r}: native_loss must be 'module:function' of a "
                       f"segmentation family, got {self.native_loss!r} ({self.task})")
    unknown = set(self.inference_fields) - fields
    if unknown:
      raise ValueError(f"family {self.name!r}: inference_fields {sorted(unknown)} are not fields of "
                       f"{self.module.__name__}")

  def config_fields(self) -> tuple[str, ...]:
    """The constructor fields that config data may set (all but bn, parent, name), in order."""
    return tuple(f.name for f in dataclasses.fields(self.module)
                 if f.init and f.name not in ("parent", "name", "bn"))


def image_inputs(channels_field: str | None = None, **kwargs: Any) -> ExampleInputs:
  """example_inputs for a model called on images alone: one (1, size, size, C) zero image
  (C = the model's `channels_field`, else 3) and `kwargs` (e.g. return_aux=True). A model with
  a `min_input_size()` method (atrous rates that must fit its feature map) gets at least that."""
  def example(model: nn.Module, size: int) -> tuple[tuple, dict]:
    channels = int(getattr(model, channels_field)) if channels_field else 3
    if hasattr(model, "min_input_size"):
      size = max(int(size), int(model.min_input_size()))
    return (jnp.zeros((1, size, size, channels)),), dict(kwargs)
  return example
