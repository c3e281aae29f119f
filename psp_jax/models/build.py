"""Build a model from plain config data (a dict or an ml_collections ConfigDict).

The model section of a config (and of a checkpoint's metadata) names the family and the
constructor fields; nothing else is read. BatchNorm behaviour is passed separately because
it depends on how the model is run (the mesh axis exists only inside the train step).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax.numpy as jnp

from psp_jax.models.pspnet import PSPNet
from psp_jax.models.refinement import RefinementModule
from psp_jax.models.resnet import BNConfig, ResNet

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
# 'resnet' is a backbone-only model: converted ImageNet weights meant for init_checkpoint.
MODEL_FAMILIES: dict[str, type[nn.Module]] = {
    "pspnet": PSPNet, "cascadepsp": RefinementModule, "resnet": ResNet}


def build_model(model_cfg: Mapping[str, Any], bn: BNConfig | None = None) -> nn.Module:
  """Instantiate the module named by `model_cfg['name']` with the remaining fields.

  `model_cfg['dtype']` is a string ('float32', 'bfloat16'); lists become tuples. An unknown
  family or field raises ValueError naming it and listing what is accepted.
  """
  cfg = dict(model_cfg.items() if hasattr(model_cfg, "items") else model_cfg)
  name = cfg.pop("name", "pspnet")
  if name not in MODEL_FAMILIES:
    raise ValueError(f"model.name={name!r} is not a known model; accepted: {sorted(MODEL_FAMILIES)}")
  cls = MODEL_FAMILIES[name]
  fields = {f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("parent", "name")}
  unknown = sorted(set(cfg) - fields)
  if unknown:
    raise ValueError(f"model fields {unknown} are not accepted by {cls.__name__}; "
                     f"accepted: {sorted(fields - {'bn'})}")
  if "dtype" in cfg:
    if cfg["dtype"] not in DTYPES:
      raise ValueError(f"model.dtype={cfg['dtype']!r} is not one of {sorted(DTYPES)}")
    cfg["dtype"] = DTYPES[cfg["dtype"]]
  cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
  if bn is not None:
    cfg["bn"] = bn
  return cls(**cfg)
