"""The family registry: build a model from plain config data, and write it back.

The model section of a config (and of a checkpoint's metadata) names the family and the
constructor fields; nothing else is read. BatchNorm behaviour is passed separately because
it depends on how the model is run (the mesh axis exists only inside the train step).
Adding a family: its model file defines `FAMILY` (psp_jax/models/contract.py) and gets one
line in `_REGISTERED` below; tests may `register` a toy family.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax.numpy as jnp

from psp_jax.models import pspnet, refinement, resnet
from psp_jax.models import segnet
from psp_jax.models import deeplab, vgg
from psp_jax.models.contract import ModelFamily
from psp_jax.models.resnet import BNConfig

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}

_REGISTERED = (
    pspnet.FAMILY,
    refinement.FAMILY,
    resnet.FAMILY,
    segnet.FAMILY,
    segnet.BASIC_FAMILY,
    *deeplab.FAMILIES, vgg.FAMILY,
)
FAMILIES: dict[str, ModelFamily] = {f.name: f for f in _REGISTERED}


def register(family: ModelFamily, *, replace: bool = False) -> ModelFamily:
  """Add a family at run time (a plugin, or a test's toy family). Returns it."""
  if family.name in FAMILIES and not replace and FAMILIES[family.name] is not family:
    raise ValueError(f"a model family named {family.name!r} is already registered")
  FAMILIES[family.name] = family
  return family


def unregister(name: str) -> None:
  FAMILIES.pop(name, None)


def get_family(name: str) -> ModelFamily:
  if name not in FAMILIES:
    raise ValueError(f"model.name={name!r} is not a known model family; accepted: {sorted(FAMILIES)}")
  return FAMILIES[name]


def family_of(model: nn.Module | Mapping[str, Any] | str) -> ModelFamily:
  """The family of a module instance, a model config (its 'name') or a family name."""
  if isinstance(model, str):
    return get_family(model)
  if isinstance(model, nn.Module):
    for family in FAMILIES.values():
      if type(model) is family.module:  # pylint: disable=unidiomatic-typecheck
        return family
    raise ValueError(f"{type(model).__name__} is not a registered model family ({sorted(FAMILIES)})")
  return get_family(str(model.get("name", "pspnet")))


def build_model(model_cfg: Mapping[str, Any], bn: BNConfig | None = None) -> nn.Module:
  """Instantiate the family named by `model_cfg['name']` with the remaining fields.

  `model_cfg['dtype']` is a string ('float32', 'bfloat16'); lists become tuples. An unknown
  family or field raises ValueError naming it and listing what is accepted.
  """
  cfg = dict(model_cfg.items() if hasattr(model_cfg, "items") else model_cfg)
  family = get_family(cfg.pop("name", "pspnet"))
  fields = family.config_fields()
  unknown = sorted(set(cfg) - set(fields))
  if unknown:
    raise ValueError(f"model fields {unknown} are not accepted by {family.module.__name__} "
                     f"(model.name={family.name!r}); accepted: {sorted(fields)}")
  if "dtype" in cfg:
    if cfg["dtype"] not in DTYPES:
      raise ValueError(f"model.dtype={cfg['dtype']!r} is not one of {sorted(DTYPES)}")
    cfg["dtype"] = DTYPES[cfg["dtype"]]
  cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
  if bn is not None:
    cfg["bn"] = bn
  return family.module(**cfg)


def model_config(model: nn.Module) -> dict[str, Any]:
  """The plain-data `meta['model']` of a module: family name + constructor fields (no bn)."""
  family = family_of(model)
  cfg: dict[str, Any] = {"name": family.name}
  for name in family.config_fields():
    value = getattr(model, name)
    if name == "dtype":
      value = next((k for k, d in DTYPES.items() if jnp.dtype(d) == jnp.dtype(value)), None)
      if value is None:
        raise ValueError(f"model dtype {getattr(model, 'dtype')} has no config name")
    elif isinstance(value, tuple):
      value = list(value)
    cfg[name] = value
  return cfg


def example_inputs(model: nn.Module, size: int = 32) -> tuple[tuple, dict]:
  """(args, kwargs) for `model.init` that create every variable of the model."""
  return family_of(model).example_inputs(model, size)
