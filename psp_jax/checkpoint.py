"""psp_jax checkpoints: Orbax directories that carry their model config.

Layout (the output of `psp-jax convert` and of training alike):

  DIR/                         an `orbax.checkpoint.CheckpointManager` root
    <step>/                    one directory per step (0 for converted weights)
      state/                   PyTree item: {'params', 'batch_stats'[, 'opt_state', 'step', 'rng', ...]}
      meta/                    JSON item (see below)

  meta = {
    'format_version': 1,
    'model': {'name': 'pspnet' | 'cascadepsp' | 'resnet', <constructor fields as plain data>},
    'source': {...what it was converted from or trained with...},
    'classes': {'names': [...], 'palette': [[r, g, b], ...]},             (optional)
    'preprocessing': {'mean': [...], 'std': [...], 'input_scale': 255.0,
                      'channel_order': 'RGB', 'align_corners': bool, ...},  (optional)
  }

`model` is what `psp_jax.models.build.build_model` takes ('dtype' a string, lists for tuples).
A 'resnet' model is a backbone-only checkpoint (ImageNet weights) meant for `init_checkpoint`.
Saving is atomic: Orbax writes `<step>.orbax-checkpoint-tmp-*` and renames it when complete,
and readers only see finished steps. A training workdir holding `checkpoints/` and a step
directory `DIR/<step>` are accepted wherever a checkpoint path is.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import pathlib
import re
from typing import Any, Callable, Iterable, Mapping

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from psp_jax import checkpoint_integrity as integrity
from psp_jax.checkpoint_integrity import CheckpointCorruptError  # noqa: F401  (re-exported)
from psp_jax.models import build
from psp_jax.models.resnet import BNConfig

FORMAT_VERSION = 1
ITEMS = ("state", "meta")
VARIABLE_COLLECTIONS = ("params", "batch_stats")

PathLike = str | pathlib.Path


class _QuietReadOnly(logging.Filter):
  """Drops Orbax's warnings that a read-only manager is read-only (emitted on every load), and
  that a training checkpoint's extra 'data' item (the data iterator state, see
  psp_jax.train.checkpointing) is not restored when only the model is loaded."""

  def filter(self, record: logging.LogRecord) -> bool:
    msg = str(record.msg)
    return not (msg.startswith("Given directory is read only") or
                msg.startswith("CheckpointManagerOptions.read_only=True") or
                record.getMessage().startswith('Item "data" was found in the checkpoint, but could not'))


logging.getLogger("absl").addFilter(_QuietReadOnly())


# ----------------------------------------------------------------------------- model config

def model_config(model: nn.Module) -> dict[str, Any]:
  """The plain-data `meta['model']` of a module (see psp_jax.models.build.model_config)."""
  return build.model_config(model)


def dummy_inputs(model: nn.Module, size: int = 32) -> tuple[tuple, dict]:
  """(args, kwargs) for `model.init` that create every variable: the family's example inputs."""
  return build.example_inputs(model, size)


# On CPU, XLA spends most of an initialisation's compile time in LLVM's -O3 passes over the
# unrolled threefry hashes of every parameter; -O2 compiles it 3.5x faster (tiny PSPNet:
# 21.2 s -> 6.2 s on 2 cores) to bit-identical values (tests/test_init_compile.py). The
# init runs once, so its code speed does not matter.
CPU_INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 2}


def init_variables(model: nn.Module, rng: jax.Array | int = 0, abstract: bool = False) -> dict:
  """{'params', 'batch_stats'} of a fresh model (ShapeDtypeStructs when abstract=True)."""
  if isinstance(rng, int):
    rng = jax.random.PRNGKey(rng)
  args, kwargs = dummy_inputs(model)
  fn = lambda: model.init(rng, *args, **kwargs)  # noqa: E731
  if abstract:
    variables = jax.eval_shape(fn)
  elif isinstance(rng, jax.core.Tracer):  # inside a trace (eval_shape, jit): no compile of ours
    variables = jax.jit(fn)()
  else:
    options = CPU_INIT_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
    variables = jax.jit(fn).lower().compile(compiler_options=options)()
  return {c: dict(variables.get(c, {})) for c in VARIABLE_COLLECTIONS}


# ----------------------------------------------------------------------------- locating

def _is_step_dir(path: pathlib.Path) -> bool:
  return path.name.isdigit() and (path / "_CHECKPOINT_METADATA").exists()


def resolve(path: PathLike, step: int | None = None) -> tuple[pathlib.Path, int]:
  """(CheckpointManager root, step) for a checkpoint root, a workdir holding `checkpoints/`,
  or a step directory. `step=None`: the latest complete step. Raises FileNotFoundError."""
  path = pathlib.Path(path).expanduser()
  if not path.exists():
    raise FileNotFoundError(f"checkpoint path {path} does not exist")
  if (path / "checkpoints").is_dir():
    path = path / "checkpoints"
  elif _is_step_dir(path):
    if step is not None and step != int(path.name):
      raise ValueError(f"{path} is the directory of step {path.name}, but step={step} was asked for")
    path, step = path.parent, int(path.name)
  with _manager(path, read_only=True) as mngr:
    steps = sorted(mngr.all_steps())
  if not steps:
    raise FileNotFoundError(f"no complete checkpoint under {path} (a psp_jax checkpoint is an "
                            "Orbax CheckpointManager directory with <step>/state and <step>/meta)")
  if step is None:
    return path, steps[-1]
  if step not in steps:
    raise FileNotFoundError(f"step {step} not found under {path}; available steps: {steps}")
  return path, step


def checkpoint_manager(directory: PathLike, *, max_to_keep: int | None = None,
                       enable_async: bool = False, **options: Any) -> ocp.CheckpointManager:
  """A CheckpointManager with this project's items ('state': PyTree, 'meta': JSON).

  Training can save with `args=ocp.args.Composite(state=ocp.args.PyTreeSave(state),
  meta=ocp.args.JsonSave(meta))` (see `save_checkpoint`)."""
  opts = ocp.CheckpointManagerOptions(create=True, max_to_keep=max_to_keep,
                                      enable_async_checkpointing=enable_async,
                                      cleanup_tmp_directories=True, **options)
  return ocp.CheckpointManager(pathlib.Path(directory).absolute(), item_names=ITEMS,
                               item_handlers=_handlers(), options=opts)


def _handlers() -> dict[str, ocp.CheckpointHandler]:
  return {"state": ocp.PyTreeCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}


def _manager(path: pathlib.Path, read_only: bool) -> ocp.CheckpointManager:
  opts = ocp.CheckpointManagerOptions(read_only=read_only, create=False, save_interval_steps=0)
  return ocp.CheckpointManager(path.absolute(), item_names=ITEMS, item_handlers=_handlers(),
                               options=opts)


# ----------------------------------------------------------------------------- save / read

def _validate_meta(meta: Mapping[str, Any]) -> None:
  try:  # fail before anything is written
    json.dumps(meta)
  except (TypeError, ValueError) as e:
    raise ValueError(f"checkpoint meta must be plain JSON data: {e}") from e
  if meta.get("format_version") != FORMAT_VERSION:
    raise ValueError(f"meta['format_version'] must be {FORMAT_VERSION}, got {meta.get('format_version')!r}")
  model = meta.get("model")
  if not isinstance(model, Mapping) or "name" not in model:
    raise ValueError("meta['model'] must be a dict with at least 'name' (see build_model)")


def save_checkpoint(directory: PathLike, state: Mapping[str, Any], meta: Mapping[str, Any],
                    step: int = 0, *, overwrite: bool = False) -> pathlib.Path:
  """Write `state` (a dict with 'params' and 'batch_stats', optionally more) and the JSON `meta`
  as step `step` of the CheckpointManager directory `directory`. Returns the step directory.

  Atomic: Orbax writes to a temporary directory renamed on success, so the step is complete
  or absent. overwrite=True first deletes an existing step of the same number."""
  _validate_meta(meta)
  missing = [c for c in ("params",) if c not in state]
  if missing:
    raise ValueError(f"state must contain {missing}")
  state = {k: v for k, v in state.items()}
  state.setdefault("batch_stats", {})
  directory = pathlib.Path(directory).expanduser().absolute()
  with checkpoint_manager(directory) as mngr:
    if step in mngr.all_steps():
      if not overwrite:
        raise FileExistsError(f"{directory} already holds step {step} (pass overwrite=True / --force)")
      mngr.delete(step)
    # A failed save leaves at most '<step>.orbax-checkpoint-tmp*', which readers ignore and the
    # next manager removes (cleanup_tmp_directories).
    mngr.save(step, args=ocp.args.Composite(state=ocp.args.PyTreeSave(state),
                                            meta=ocp.args.JsonSave(dict(meta))))
    mngr.wait_until_finished()
  return directory / str(step)


@contextlib.contextmanager
def _damage_reported(root: pathlib.Path, step: int):
  """A read error of step `step` under `root` becomes CheckpointCorruptError (folder, file,
  problem) when the step is damaged (psp_jax.checkpoint_integrity); other errors pass."""
  try:
    yield
  except integrity.CheckpointCorruptError:
    raise
  except (ValueError, OSError, KeyError, TypeError) as e:
    integrity.raise_if_damaged(root / str(step), e, items=())
    raise


def read_meta(path: PathLike, step: int | None = None) -> dict[str, Any]:
  """The JSON metadata of a checkpoint (root, workdir or step directory)."""
  root, step = resolve(path, step)
  integrity.check_step(root / str(step), items=("meta",), read_arrays=False)
  with _damage_reported(root, step), _manager(root, read_only=True) as mngr:
    meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  if meta is None:
    raise FileNotFoundError(f"checkpoint {root}/{step} has no 'meta' item")
  return dict(meta)


def load_variables(path: PathLike, step: int | None = None,
                   collections: Iterable[str] = VARIABLE_COLLECTIONS) -> tuple[dict, dict]:
  """(variables, meta): only `collections` of the 'state' item are read (partial restore), as
  NumPy arrays, whatever else (opt_state, rng...) the state holds. The step is validated first
  (CheckpointCorruptError naming the damaged file; psp_jax.checkpoint_integrity)."""
  root, step = resolve(path, step)
  integrity.check_step(root / str(step), items=("state", "meta"))
  with _damage_reported(root, step), _manager(root, read_only=True) as mngr:
    tree = mngr.item_metadata(step)["state"]
    tree = getattr(tree, "tree", tree)
    if tree is None:
      raise FileNotFoundError(f"checkpoint {root}/{step} has no 'state' item")
    wanted = {c: tree[c] for c in collections if c in tree}
    if "params" not in wanted:
      raise ValueError(f"checkpoint {root}/{step} has no 'params' in its state")
    item = jax.tree.map(lambda m: np.zeros((), m.dtype), wanted)  # structure only
    restore_args = jax.tree.map(lambda m: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
    out = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(item=item, restore_args=restore_args, partial_restore=True),
        meta=ocp.args.JsonRestore()))
  variables = {c: out["state"].get(c, {}) for c in collections}
  return variables, dict(out["meta"])


def load(path: PathLike, step: int | None = None, *, dtype: str | None = None,
         bn: BNConfig | None = None) -> tuple[nn.Module, dict]:
  """(model, variables) ready for `model.apply(variables, ..., train=False)`.

  `path`: a checkpoint root, a training workdir holding `checkpoints/`, or a step directory;
  `step=None` takes the latest. `dtype` overrides the compute dtype ('bfloat16', ...).
  variables = {'params', 'batch_stats'} as jax arrays (float32). A damaged step raises
  CheckpointCorruptError naming the step folder, the file and what is wrong."""
  variables, meta = load_variables(path, step)
  cfg = dict(meta["model"])
  if dtype is not None:
    cfg["dtype"] = dtype
  model = build.build_model(cfg, bn=bn)
  return model, jax.tree.map(jnp.asarray, variables)


# ----------------------------------------------------------------------------- init_checkpoint

@dataclasses.dataclass
class InitReport:
  """What `load_variables_into` did, leaf by leaf ('collection/a/b/c' paths of the target)."""
  loaded: list[str] = dataclasses.field(default_factory=list)
  extended: list[str] = dataclasses.field(default_factory=list)  # extra in-channels zeroed
  reinitialized: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, why)
  unused: list[str] = dataclasses.field(default_factory=list)  # source leaves not used
  source_prefix: str = ""
  target_prefix: str = ""

  def summary(self) -> str:
    lines = [f"init_checkpoint: loaded {len(self.loaded)} arrays"
             f" ({len(self.extended)} with extra input channels zero-initialised),"
             f" re-initialised {len(self.reinitialized)}, unused in checkpoint {len(self.unused)}"
             f" (checkpoint '{self.source_prefix or '/'}' -> model '{self.target_prefix or '/'}')"]
    for p in self.extended:
      lines.append(f"  extended: {p}")
    for p, why in self.reinitialized[:20]:
      lines.append(f"  re-initialised: {p} ({why})")
    if len(self.reinitialized) > 20:
      lines.append(f"  ... and {len(self.reinitialized) - 20} more re-initialised")
    return "\n".join(lines)


def _best_prefixes(source: Mapping, target: Mapping) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """(source prefix, target prefix), each the root or one top-level module, under which the
  most leaf paths coincide: identity for the same family, ('', 'backbone') for a ResNet
  checkpoint into PSPNet, ('backbone', 'feats') for PSPNet into CascadePSP..."""
  src = {c: traverse_util.flatten_dict(source.get(c, {})) for c in VARIABLE_COLLECTIONS}
  tgt = {c: traverse_util.flatten_dict(target.get(c, {})) for c in VARIABLE_COLLECTIONS}
  src_pre = [()] + [(k,) for k in source.get("params", {})]
  tgt_pre = [()] + [(k,) for k in target.get("params", {})]
  best, best_n = ((), ()), -1
  for sp in src_pre:
    for tp in tgt_pre:
      n = 0
      for c in VARIABLE_COLLECTIONS:
        rel = {p[len(sp):] for p in src[c] if p[:len(sp)] == sp}
        n += sum(1 for p in tgt[c] if p[:len(tp)] == tp and p[len(tp):] in rel)
      if n > best_n:  # strict: ties keep the earlier (shorter) prefixes, identity first
        best, best_n = (sp, tp), n
  return best


def load_variables_into(target_variables: Mapping[str, Any], source_variables: Mapping[str, Any],
                        *, exclude: Iterable[str] = (), log: Callable[[str], None] | None = print
                        ) -> tuple[dict, InitReport]:
  """Copy the matching leaves of `source_variables` into `target_variables` (both
  {'params', 'batch_stats'}); everything else keeps the target's (fresh) values.

  The source is matched at the root or under one top-level module (a backbone-only ResNet
  checkpoint lands in 'backbone' of PSPNet or 'feats' of CascadePSP). Leaf by leaf:
    same shape -> loaded;
    a conv kernel whose only difference is more input channels in the target -> the
    checkpoint's channels are copied and the extra ones zero-initialised (CascadePSP's
    6-channel conv1 from an RGB ResNet);
    any other shape (e.g. a classifier for a new class count), a path absent from the
    checkpoint, or a path matching a regex in `exclude` -> re-initialised (the target value).
  Raises ValueError when nothing at all could be loaded. Returns (variables, InitReport)."""
  exclude_re = [re.compile(e) for e in exclude]
  sp, tp = _best_prefixes(source_variables, target_variables)
  report = InitReport(source_prefix="/".join(sp), target_prefix="/".join(tp))
  out = {}
  for c in set(target_variables) | set(VARIABLE_COLLECTIONS):
    tgt = traverse_util.flatten_dict(target_variables.get(c, {}))
    src = traverse_util.flatten_dict(source_variables.get(c, {})) if c in VARIABLE_COLLECTIONS else {}
    used = set()
    new = {}
    for path, value in tgt.items():
      name = "/".join((c,) + path)
      rel = path[len(tp):] if path[:len(tp)] == tp else None
      spath = sp + rel if rel is not None else None
      if spath is None or spath not in src:
        new[path] = value
        if c in VARIABLE_COLLECTIONS:
          report.reinitialized.append((name, "not in checkpoint"))
        continue
      used.add(spath)
      s = np.asarray(src[spath])
      t_shape = tuple(np.shape(value))
      t_dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
      if any(r.search(name) for r in exclude_re):
        new[path] = value
        report.reinitialized.append((name, "excluded"))
      elif s.shape == t_shape:
        new[path] = jnp.asarray(s, dtype=t_dtype)
        report.loaded.append(name)
      elif (s.ndim == 4 and len(t_shape) == 4 and s.shape[:2] == t_shape[:2]
            and s.shape[3] == t_shape[3] and s.shape[2] < t_shape[2]):
        ext = np.zeros(t_shape, dtype=t_dtype)
        ext[:, :, :s.shape[2], :] = s
        new[path] = jnp.asarray(ext)
        report.loaded.append(name)
        report.extended.append(f"{name}: {s.shape[2]} -> {t_shape[2]} input channels")
      else:
        new[path] = value
        report.reinitialized.append((name, f"shape {s.shape} in checkpoint, {t_shape} in model"))
    report.unused.extend("/".join((c,) + p) for p in src if p not in used)
    out[c] = traverse_util.unflatten_dict(new)
  if not report.loaded:
    raise ValueError("init_checkpoint: no array of the checkpoint fits the model "
                     f"(checkpoint top-level modules {sorted(source_variables.get('params', {}))}, "
                     f"model {sorted(target_variables.get('params', {}))})")
  if log is not None:
    log(report.summary())
  return out, report


def init_from_checkpoint(target_variables: Mapping[str, Any], ckpt_path: PathLike, *,
                         step: int | None = None, exclude: Iterable[str] = (),
                         log: Callable[[str], None] | None = print) -> tuple[dict, InitReport]:
  """`init_checkpoint` of a training config: load the params and batch_stats of the checkpoint
  at `ckpt_path` (any psp_jax checkpoint: converted, backbone-only 'resnet', or a training
  workdir) into freshly initialised `target_variables`; see `load_variables_into`."""
  source, _ = load_variables(ckpt_path, step)
  return load_variables_into(target_variables, source, exclude=exclude, log=log)

