"""Convert the authors' PyTorch checkpoints into psp_jax (Orbax) checkpoints.

  --model pspnet              hszhao/semseg PSPNet ({'epoch','state_dict','optimizer'} or a bare
                              state_dict, `module.` prefixes allowed) -> a 'pspnet' checkpoint.
  --model resnet-deepbase     semseg's ImageNet deep-base ResNet (conv1..3/bn1..3, layer*, fc)
  --model resnet-torchvision  a torchvision-layout ResNet (conv1 7x7/bn1, layer*, fc)
                              -> a backbone-only 'resnet' checkpoint (fc dropped) for a training
                              config's `init_checkpoint` (PSPNet's 'backbone', CascadePSP's
                              'feats' with its extra input channels zero-initialised).
  --model cascadepsp          hkchengrex/CascadePSP's refinement module -> 'cascadepsp'.
  --model deeplabv3-torchvision | vgg16-torchvision | deeplabv2-resnet101
                              torchvision's deeplabv3_resnet*, torchvision's ImageNet vgg16
                              (--vgg-fc largefov: fc6/fc7 decimated to DeepLab-LargeFOV's shapes),
                              kazuto1011/deeplab-pytorch's DeepLab v2: see
                              psp_jax/convert/deeplab_layouts.py and deeplab_targets.py.

Loading is strict: every model array must come from the file with the right shape (an error
names the torch key and both shapes); unused keys are reported. Architecture fields (depth,
width, class count, aux head, PPM) are read from the file unless given.

torch is imported only here, lazily: install it with `pip install psp_jax[convert]`.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from flax import traverse_util

from psp_jax import checkpoint as ckpt_lib
from psp_jax.constants import VERSION
from psp_jax.convert import deeplab_targets, layouts
from psp_jax.convert.state_dict_facts import (DEPTH_BY_LAYER3_BLOCKS, ConversionError,  # noqa: F401
                                              _blocks, _depth, _require)
from psp_jax.models import build
from psp_jax.models.pspnet import PSPNet
from psp_jax.models.refinement import RefinementModule
from psp_jax.models.resnet import ResNet

MODELS = ("pspnet", "resnet-deepbase", "resnet-torchvision", "cascadepsp") + deeplab_targets.MODELS


def import_torch():
  """torch, or an ImportError telling how to get it."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError("converting PyTorch checkpoints needs PyTorch, which psp_jax keeps optional: "
                      "pip install 'psp_jax[convert]'  (installs torch==2.13.0)") from e
  return torch


def _torch_load_problem(path: pathlib.Path, error: Exception) -> str:
  """Why torch.load failed, readable: a file that is neither a zip archive (torch.save's format)
  nor a pickle is named as such with its first bytes (torch itself says only e.g. '101');
  otherwise the first line of torch's error."""
  head = path.read_bytes()[:16]
  if not head:
    return "the file is empty"
  if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
    return f"not a PyTorch checkpoint (neither a zip archive nor a pickle; it starts with {head!r})"
  text = str(error).strip().splitlines()
  return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def read_torch_state_dict(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """A .pth file as {key: float32/int ndarray}, without running pickled code
  (`weights_only=True`). Accepts a bare state_dict or {'state_dict': ..., ...}; strips
  `module.` prefixes."""
  torch = import_torch()
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"no such checkpoint file: {path}")
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # UnpicklingError and friends: the file is not a weights-only pickle
    raise ConversionError(f"could not read {path} with torch.load(weights_only=True): "
                          f"{_torch_load_problem(path, e)}") from e
  if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
    obj = obj["state_dict"]
  if not isinstance(obj, Mapping):
    raise ConversionError(f"{path} holds a {type(obj).__name__}, not a state_dict")
  out = {}
  for key, value in obj.items():
    if not isinstance(value, torch.Tensor):
      raise ConversionError(f"{path} is not a state_dict: key {key!r} holds a {type(value).__name__} "
                            f"(top-level keys: {sorted(map(str, obj))[:10]})")
    value = value.detach().cpu()
    out[str(key)] = value.float().numpy() if value.is_floating_point() else value.numpy()
  return layouts.strip_prefix(out, "module.")


def build_target(model: str, sd: Mapping[str, np.ndarray], layers: int | None = None,
                 num_classes: int | None = None):
  """(flax module, layout) for `model`, architecture fields read from the state_dict."""
  if model == "pspnet":
    width = _require(sd, "layer0.0.weight", "semseg PSPNet").shape[0]
    num_classes = int(num_classes if num_classes is not None
                      else _require(sd, "cls.4.weight", "semseg PSPNet").shape[0])
    depth = _depth(sd, "layer3", layers)
    n_ppm = _blocks(sd, "ppm.features")
    if n_ppm not in (0, 4):
      raise ConversionError(f"{n_ppm} pyramid pooling branches found; semseg uses 4 (bins 1,2,3,6)")
    c = 32 * width
    reduction = True
    if n_ppm:
      reduction = _require(sd, "ppm.features.0.1.weight", "semseg PSPNet").shape[0] != c
    aux = any(k.startswith("aux.") for k in sd)
    net = PSPNet(num_classes=num_classes, in_channels=int(sd["layer0.0.weight"].shape[1]),
                 depth=depth, stem="deep", output_stride=8,
                 dilation_pattern="semseg", width=width, context="ppm" if n_ppm else "none",
                 reduction=reduction, aux=aux,
                 head_features=int(_require(sd, "cls.0.weight", "semseg PSPNet").shape[0]),
                 aux_features=int(sd["aux.0.weight"].shape[0]) if aux else 256,
                 align_corners=True)
    return net, layouts.LAYOUTS["semseg-pspnet"]
  if model in ("resnet-deepbase", "resnet-torchvision"):
    if "conv1.weight" not in sd and "layer0.0.weight" in sd:
      raise ConversionError("this is a semseg PSPNet checkpoint (layer0.* keys): use --model pspnet")
    conv1 = _require(sd, "conv1.weight", "ResNet")
    deep = "conv2.weight" in sd
    if model == "resnet-torchvision" and deep:
      raise ConversionError("this ResNet has the deep-base stem (conv2/conv3 keys): "
                            "use --model resnet-deepbase")
    if model == "resnet-deepbase" and not deep:
      raise ConversionError(f"this ResNet has a single {conv1.shape[2]}x{conv1.shape[3]} stem conv: "
                            "use --model resnet-torchvision")
    net = ResNet(depth=_depth(sd, "layer3", layers), stem="deep" if deep else "classic",
                 output_stride=8, dilation_pattern="semseg", width=int(conv1.shape[0]))
    return net, layouts.LAYOUTS["resnet"]
  if model == "cascadepsp":
    width = int(_require(sd, "feats.conv1.weight", "CascadePSP").shape[0])
    net = RefinementModule(depth=_depth(sd, "feats.layer3", layers), width=width)
    return net, layouts.LAYOUTS["cascadepsp"]
  if model in deeplab_targets.MODELS:
    return deeplab_targets.build_target(model, sd, layers, num_classes)
  raise ConversionError(f"--model must be one of {MODELS}, got {model!r}")


def load_strict(net, converted: layouts.Converted, log: Callable[[str], None] = print
                ) -> tuple[dict, dict[str, Any]]:
  """Fill every variable of `net` from `converted`; (variables, counts). Raises
  ConversionError on a shape mismatch (naming the torch key and both shapes) or when a model
  array has no counterpart in the file."""
  target = traverse_util.flatten_dict(ckpt_lib.init_variables(net, abstract=True))
  loaded, missing, mismatched = {}, [], []
  for path, sds in target.items():
    if path not in converted.arrays:
      missing.append("/".join(path))
      continue
    array = converted.arrays[path]
    if array.shape != tuple(sds.shape):
      mismatched.append(f"{converted.origin[path]}: checkpoint shape {converted.torch_shape[path]}, "
                        f"model expects {layouts.torch_shape_of(path, tuple(sds.shape))} "
                        f"(-> {'/'.join(path)})")
      continue
    loaded[path] = array
  unused = sorted([converted.origin[p] for p in converted.arrays if p not in target] + converted.unknown)
  n_params = sum(int(a.size) for p, a in loaded.items() if p[0] == "params")
  counts = {"loaded": len(loaded), "loaded_parameters": n_params, "missing": len(missing),
            "unused": len(unused), "shape_mismatched": len(mismatched),
            "ignored": len(converted.ignored)}
  log(f"loaded {len(loaded)} arrays ({n_params / 1e6:.2f} M parameters); missing {len(missing)}; "
      f"unused {len(unused)}; shape-mismatched {len(mismatched)}; "
      f"ignored {len(converted.ignored)} (num_batches_tracked, classifier fc)")
  for key in unused[:20]:
    log(f"  unused key: {key}")
  if len(unused) > 20:
    log(f"  ... and {len(unused) - 20} more unused keys")
  if mismatched:
    raise ConversionError(f"{len(mismatched)} shape mismatch(es): " + "; ".join(mismatched[:10]))
  if missing:
    raise ConversionError(f"{len(missing)} model array(s) not in the checkpoint (first: "
                          f"{', '.join(missing[:10])}); is --model right?")
  return traverse_util.unflatten_dict(loaded), counts


def _sha256(path: pathlib.Path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


# Preprocessing facts beyond the family's normalisation, per source layout (converter name).
_PREPROCESSING_EXTRAS = {
    "cascadepsp": dict(align_corners=False, pad_multiple=8, image_pad_value=0.0, mask_pad_value=-1.0,
                       mask_range=[-1.0, 1.0]),
    **deeplab_targets.PREPROCESSING_EXTRAS,
}


def _preprocessing(net, model: str) -> dict[str, Any]:
  """meta['preprocessing']: the family's normalisation (the contract) plus the layout's extras."""
  pre = build.family_of(net).preprocessing.to_meta()
  pre.update(_PREPROCESSING_EXTRAS.get(model, {"align_corners": True}))
  return pre


def _dataset_classes() -> dict[str, tuple]:
  try:
    from psp_jax.data.classes import DATASET_CLASSES  # pylint: disable=import-outside-toplevel
  except ImportError:
    return {}
  return DATASET_CLASSES


def _read_classes(path: str | pathlib.Path | None, dataset: str | None = None) -> dict[str, Any] | None:
  if dataset is not None:
    if path is not None:
      raise ConversionError("give either --classes or --dataset, not both")
    known = _dataset_classes()
    if dataset not in known:
      raise ConversionError(f"--dataset must be one of {sorted(known)}, got {dataset!r}")
    names, colors = known[dataset]
    return {"names": list(names), "palette": [list(c) for c in colors], "dataset": dataset}
  if path is None:
    return None
  data = json.loads(pathlib.Path(path).read_text())
  if isinstance(data, list):
    data = {"names": data}
  if not isinstance(data, dict) or not isinstance(data.get("names"), list):
    raise ConversionError(f"{path}: expected a JSON list of class names or "
                          "{'names': [...], 'palette': [[r, g, b], ...]}")
  return {k: data[k] for k in ("names", "palette") if k in data}


def convert_checkpoint(torch_path: str | pathlib.Path, model: str, out: str | pathlib.Path, *,
                       layers: int | None = None, num_classes: int | None = None,
                       classes: str | pathlib.Path | None = None, dataset: str | None = None,
                       force: bool = False, vgg_fc: str = "full",
                       log: Callable[[str], None] = print) -> dict[str, Any]:
  """Convert `torch_path` as `model` (one of MODELS) into the checkpoint directory `out`.
  `vgg_fc` ('full' | 'largefov') applies to vgg16-torchvision only.
  `classes` (a JSON file) or `dataset` (a name in psp_jax.data.classes) adds class names and
  a palette to the meta. Returns the written meta. See the module docstring."""
  if model not in MODELS:
    raise ConversionError(f"--model must be one of {MODELS}, got {model!r}")
  out = pathlib.Path(out).expanduser().absolute()
  if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
    raise FileExistsError(f"{out} exists and is not empty (pass --force to replace it)")
  torch_path = pathlib.Path(torch_path)
  state_dict = deeplab_targets.prepare(model, read_torch_state_dict(torch_path), vgg_fc)
  net, layout = build_target(model, state_dict, layers, num_classes)
  classes_meta = _read_classes(classes, dataset)
  if classes_meta is not None and hasattr(net, "num_classes") and len(classes_meta["names"]) != net.num_classes:
    raise ConversionError(f"{dataset or classes}: {len(classes_meta['names'])} class names for a "
                          f"{net.num_classes}-class model")
  variables, counts = load_strict(net, layouts.convert_state_dict(state_dict, layout), log)
  torch = import_torch()
  meta: dict[str, Any] = {
      "format_version": ckpt_lib.FORMAT_VERSION,
      "model": ckpt_lib.model_config(net),
      "source": {"format": "pytorch", "file": torch_path.name, "sha256": _sha256(torch_path),
                 "model": model, "layout": layout.name, "torch_version": torch.__version__,
                 "converted_by": f"psp_jax {VERSION}", "counts": counts},
      "preprocessing": _preprocessing(net, model),
  }
  if classes_meta is not None:
    meta["classes"] = classes_meta
  state = {"params": variables.get("params", {}), "batch_stats": variables.get("batch_stats", {})}
  # Written beside `out` and moved into place when complete: a failed run (or one replacing an
  # existing checkpoint with --force) never leaves a half-written or missing `out`.
  staging = out.parent / f".{out.name}.converting-{os.getpid()}"
  shutil.rmtree(staging, ignore_errors=True)
  try:
    ckpt_lib.save_checkpoint(staging, state, meta, step=0)
    if out.is_dir():
      shutil.rmtree(out)
    elif out.exists():
      out.unlink()
    staging.rename(out)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  log(f"wrote {meta['model']['name']} checkpoint to {out}")
  return meta


def convert_main(argv: Sequence[str] | None = None) -> int:
  """`psp-jax convert ...` / `python -m psp_jax.convert ...`; `argv` excludes the program and
  subcommand names. Returns the exit status (0 ok, 1 conversion error, 2 usage error)."""
  import argparse  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(
      prog="psp-jax convert",
      description="Convert a PyTorch checkpoint (semseg PSPNet, an ImageNet ResNet, or CascadePSP) "
                  "into a psp_jax Orbax checkpoint directory that carries its model config. "
                  "Needs PyTorch: pip install 'psp_jax[convert]'.",
      epilog="Examples:\n"
             "  psp-jax convert --torch pspnet50_ade20k.pth --model pspnet --dataset ade20k \\\n"
             "      --out ckpt/pspnet50_ade20k\n"
             "  psp-jax convert --torch resnet50_v2.pth --model resnet-deepbase --out ckpt/resnet50\n"
             "  psp-jax convert --torch model --model cascadepsp --out ckpt/cascadepsp\n"
             "Then: model, variables = psp_jax.checkpoint.load('ckpt/pspnet50_ade20k')",
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--torch", required=True, metavar="FILE",
                      help="the .pth file: a state_dict or a dict holding one under 'state_dict'; "
                           "read with weights_only=True ('module.' prefixes are stripped)")
  parser.add_argument("--model", required=True, choices=MODELS,
                      help="layout of the file. resnet-* give a backbone-only 'resnet' checkpoint "
                           "for a training config's init_checkpoint")
  parser.add_argument("--layers", type=int, choices=sorted(DEPTH_BY_LAYER3_BLOCKS.values()),
                      default=None, help="ResNet depth (default: read from the file)")
  parser.add_argument("--num-classes", type=int, default=None,
                      help="PSPNet classes (default: read from the file; checked when given)")
  parser.add_argument("--classes", default=None, metavar="JSON",
                      help="optional JSON: a list of class names or {'names': [...], 'palette': [...]}")
  parser.add_argument("--dataset", default=None, choices=sorted(_dataset_classes()) or None,
                      help="take class names and palette from this dataset (instead of --classes)")
  parser.add_argument("--vgg-fc", default="full", choices=("full", "largefov"),
                      help="vgg16-torchvision: keep fc6/fc7 (7x7 x 4096) or decimate them to "
                           "DeepLab-LargeFOV's 3x3 x 1024 fc6 and 1024 x 1024 fc7")
  parser.add_argument("--out", required=True, metavar="DIR", help="output checkpoint directory")
  parser.add_argument("--force", action="store_true", help="replace --out if it exists")
  from psp_jax import cli_checks  # pylint: disable=import-outside-toplevel
  args = cli_checks.parse_args(parser, list(sys.argv[1:] if argv is None else argv))
  if args.num_classes is not None and args.model != "pspnet":
    print(f"psp-jax convert: note: --num-classes is ignored for --model {args.model}", file=sys.stderr)
    args.num_classes = None

  def convert(_):
    cli_checks.check_existing(args.torch, "--torch", "file")
    cli_checks.check_dir(args.out, "--out")
    convert_checkpoint(args.torch, args.model, args.out, layers=args.layers,
                       num_classes=args.num_classes, classes=args.classes, dataset=args.dataset,
                       force=args.force, vgg_fc=args.vgg_fc)
    return 0
  from psp_jax import cli_errors  # pylint: disable=import-outside-toplevel
  return cli_errors.run_command("psp-jax convert", convert, [])
