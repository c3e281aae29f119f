"""Tasks chosen by config: `config.task` names the module that trains and evaluates a model.

  segmentation  psp_jax/tasks/segmentation.py  images -> class logits; mIoU (PSPNet, FCN, ...)
  refinement    psp_jax/tasks/refinement.py    image + coarse mask -> mask; IoU, mBA (CascadePSP)

A config without `task` (one written before tasks were config fields) takes its model family's
task; a config whose task differs from the family's is refused. See psp_jax/tasks/base.py for
the interface.
"""
from __future__ import annotations

import importlib
from types import ModuleType

TASK_MODULES = {"segmentation": "psp_jax.tasks.segmentation",
                "refinement": "psp_jax.tasks.refinement"}


def task_name(config) -> str:
  """config.task, checked against the task of the model family `config.model` names."""
  from psp_jax.models.build import family_of  # pylint: disable=import-outside-toplevel
  family = family_of(config.model)
  name = config.get("task") if hasattr(config, "get") else None
  name = str(name or family.task)
  if name not in TASK_MODULES:
    raise ValueError(f"task={name!r} is not a known task; accepted: {sorted(TASK_MODULES)}")
  if name != family.task:
    raise ValueError(f"task={name!r} does not fit model.name={family.name!r}, whose task is "
                     f"{family.task!r}")
  return name


def get_task(config_or_name) -> ModuleType:
  """The task module of a config (see `task_name`) or of a task name."""
  name = config_or_name if isinstance(config_or_name, str) else task_name(config_or_name)
  if name not in TASK_MODULES:
    raise ValueError(f"task={name!r} is not a known task; accepted: {sorted(TASK_MODULES)}")
  return importlib.import_module(TASK_MODULES[name])
