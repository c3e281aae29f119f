"""PyTorch state_dict layouts -> psp_jax variable paths (pure NumPy, no torch).

Each layout renames a torch module path (the key without its last component) to a Flax
module path; the leaf follows from the key's last component and the array's rank:

  conv `weight` (out, in, kh, kw)  -> params  .../kernel  transposed to (kh, kw, in, out)
  `bias`                           -> params  .../bias
  BN `weight` (rank 1)             -> params  .../scale
  BN `running_mean` / `running_var`-> batch_stats .../mean, .../var
  `num_batches_tracked`, `fc.*`    -> ignored
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable, Mapping

import numpy as np

Path = tuple[str, ...]  # (collection, module..., leaf)

_STEM_DEEP = {"conv1": "conv1", "bn1": "bn1", "conv2": "conv2", "bn2": "bn2", "conv3": "conv3",
              "bn3": "bn3"}
_SEMSEG_LAYER0 = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2", "6": "conv3", "7": "bn3"}


def _resnet_module(module: str) -> tuple[str, ...] | None:
  """Torch ResNet body names -> ours: layer{k}.{i}.conv2 -> layer{k}_{i}/conv2,
  layer{k}.{i}.downsample.{0,1} -> layer{k}_{i}/downsample_{conv,bn}; stem names unchanged."""
  if module in _STEM_DEEP:
    return (module,)
  m = re.fullmatch(r"layer([1-4])\.(\d+)\.(conv[1-3]|bn[1-3]|downsample\.[01])", module)
  if not m:
    return None
  k, i, part = m.groups()
  part = {"downsample.0": "downsample_conv", "downsample.1": "downsample_bn"}.get(part, part)
  return (f"layer{k}_{i}", part)


def semseg_pspnet_module(module: str) -> tuple[str, ...] | None:
  """hszhao/semseg PSPNet: layer0.* stem, layer1..4, ppm.features.{k}.{1,2}, cls/aux.{0,1,4}."""
  m = re.fullmatch(r"layer0\.(\d)", module)
  if m:
    name = _SEMSEG_LAYER0.get(m.group(1))
    return ("backbone", name) if name else None
  if re.match(r"layer[1-4]\.", module):
    body = _resnet_module(module)
    return ("backbone",) + body if body else None
  m = re.fullmatch(r"ppm\.features\.(\d+)\.([12])", module)
  if m:
    return ("ppm", f"branch{m.group(1)}_" + ("conv" if m.group(2) == "1" else "bn"))
  m = re.fullmatch(r"(cls|aux)\.([014])", module)
  if m:
    head = "head" if m.group(1) == "cls" else "aux_head"
    return (head, {"0": "conv", "1": "bn", "4": "classifier"}[m.group(2)])
  return None


def resnet_module(module: str) -> tuple[str, ...] | None:
  """An ImageNet ResNet (deep-base conv1..3/bn1..3 or torchvision conv1/bn1): root names."""
  return _resnet_module(module)


def cascadepsp_module(module: str) -> tuple[str, ...] | None:
  """CascadePSP: feats.<resnet>, psp.stages.{k}.1, psp.bottleneck, up_{n}.{conv,conv2}.{i},
  up_{n}.shortcut, final_28.{0,2}, final_56.{0,2}, final_11, final_21."""
  if module.startswith("feats."):
    body = _resnet_module(module[len("feats."):])
    return ("feats",) + body if body else None
  m = re.fullmatch(r"psp\.stages\.(\d+)\.1", module)
  if m:
    return ("psp", f"branch{m.group(1)}_conv")
  if module == "psp.bottleneck":
    return ("psp", "bottleneck")
  m = re.fullmatch(r"(up_[123])\.(conv|conv2)\.([0235])", module)
  if m:
    return (m.group(1), f"{m.group(2)}_{m.group(3)}")
  m = re.fullmatch(r"(up_[123])\.shortcut", module)
  if m:
    return (m.group(1), "shortcut")
  m = re.fullmatch(r"(final_28|final_56)\.([02])", module)
  if m:
    return (f"{m.group(1)}_{m.group(2)}",)
  if module in ("final_11", "final_21"):
    return (module,)
  return None


@dataclasses.dataclass(frozen=True)
class Layout:
  """How one family of torch checkpoints names its modules."""
  name: str
  module_map: Callable[[str], tuple[str, ...] | None]
  ignore: tuple[str, ...] = ()  # regexes of keys that are dropped silently (reported as ignored)


LAYOUTS = {
    "semseg-pspnet": Layout("semseg-pspnet", semseg_pspnet_module, ignore=(r"^fc\.",)),
    "resnet": Layout("resnet", resnet_module, ignore=(r"^fc\.",)),
    "cascadepsp": Layout("cascadepsp", cascadepsp_module, ignore=(r"^feats\.fc\.",)),
}


@dataclasses.dataclass
class Converted:
  """A state_dict renamed: `arrays[path]` in Flax layout, `origin[path]` its torch key."""
  arrays: dict[Path, np.ndarray] = dataclasses.field(default_factory=dict)
  origin: dict[Path, str] = dataclasses.field(default_factory=dict)
  torch_shape: dict[Path, tuple[int, ...]] = dataclasses.field(default_factory=dict)
  ignored: list[str] = dataclasses.field(default_factory=list)
  unknown: list[str] = dataclasses.field(default_factory=list)


def strip_prefix(state_dict: Mapping[str, np.ndarray], prefix: str = "module.") -> dict[str, np.ndarray]:
  """Drop a DataParallel/DDP `module.` prefix from every key that has it."""
  return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


def convert_state_dict(state_dict: Mapping[str, np.ndarray], layout: Layout) -> Converted:
  """Rename and transpose a (prefix-stripped) NumPy state_dict into Flax paths."""
  out = Converted()
  ignore = [re.compile(r) for r in layout.ignore]
  for key, value in state_dict.items():
    value = np.asarray(value)
    if key.endswith("num_batches_tracked") or any(r.search(key) for r in ignore):
      out.ignored.append(key)
      continue
    module, _, leaf = key.rpartition(".")
    flax_module = layout.module_map(module) if module else None
    if flax_module is None:
      out.unknown.append(key)
      continue
    if leaf == "weight" and value.ndim == 4:
      path, array = ("params",) + flax_module + ("kernel",), np.transpose(value, (2, 3, 1, 0))
    elif leaf == "weight" and value.ndim == 1:
      path, array = ("params",) + flax_module + ("scale",), value
    elif leaf == "bias" and value.ndim == 1:
      path, array = ("params",) + flax_module + ("bias",), value
    elif leaf == "running_mean":
      path, array = ("batch_stats",) + flax_module + ("mean",), value
    elif leaf == "running_var":
      path, array = ("batch_stats",) + flax_module + ("var",), value
    else:
      out.unknown.append(key)
      continue
    out.arrays[path] = np.ascontiguousarray(array, dtype=np.float32)
    out.origin[path] = key
    out.torch_shape[path] = tuple(value.shape)
  return out


def torch_shape_of(path: Path, flax_shape: tuple[int, ...]) -> tuple[int, ...]:
  """The torch shape a Flax leaf corresponds to (kernels back to (out, in, kh, kw))."""
  if path[-1] == "kernel" and len(flax_shape) == 4:
    kh, kw, cin, cout = flax_shape
    return (cout, cin, kh, kw)
  return tuple(flax_shape)
