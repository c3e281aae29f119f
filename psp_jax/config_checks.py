"""Value checks of a whole training config, run once at start-up (before anything is built).

  check_config(config)    # ConfigError listing every value out of range, one line each

Each rule is (a dotted-key pattern, a check, what it accepts); a rule applies to every key of
the config matching its pattern (fnmatch: '*' spans dots), so one table serves every family's
config (absent keys are skipped). A failed check names the full key, the value and what is
accepted, e.g. `train.batch_size=0: must be an integer >= 1`.
"""
from __future__ import annotations

import fnmatch
import math
from typing import Any, Callable, Sequence

from psp_jax.config_loading import ConfigDict, ConfigError, dotted_keys, get_value

Check = Callable[[Any], bool]


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def integer(lo: int | None = None, *, optional: bool = False) -> tuple[Check, str]:
  text = "an integer" + (f" >= {lo}" if lo is not None else "") + (" or None" if optional else "")
  return (lambda v: (optional and v is None) or (_is_int(v) and (lo is None or v >= lo))), text


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, optional: bool = False) -> tuple[Check, str]:
  lo_s = "" if lo is None else f"{'>' if lo_open else '>='} {lo}"
  hi_s = "" if hi is None else f"{'<' if hi_open else '<='} {hi}"
  text = "a number " + " and ".join(s for s in (lo_s, hi_s) if s) + (" or None" if optional else "")

  def ok(v):
    if optional and v is None:
      return True
    if not _is_num(v):
      return False
    if lo is not None and (v <= lo if lo_open else v < lo):
      return False
    return hi is None or (v < hi if hi_open else v <= hi)
  return ok, text.strip()


def sequence(item: tuple[Check, str], length: int | None = None, *, optional: bool = False,
             min_length: int = 1) -> tuple[Check, str]:
  check, what = item
  text = (f"{length} values, each {what}" if length else f"a non-empty tuple of values, each {what}")
  text += " (or None)" if optional else ""

  def ok(v):
    if optional and v is None:
      return True
    if not isinstance(v, (tuple, list)) or len(v) < min_length or (length and len(v) != length):
      return False
    return all(check(x) for x in v)
  return ok, text


def one_of(*choices: Any) -> tuple[Check, str]:
  return (lambda v: v in choices), "one of " + ", ".join(repr(c) for c in choices)


PROBABILITY = number(0.0, 1.0)
POSITIVE = number(0.0, lo_open=True)
NON_NEGATIVE = number(0.0)

# (pattern, (check, accepted)). Patterns match full dotted keys.
RULES: Sequence[tuple[str, tuple[Check, str]]] = (
    ("seed", integer(0)),
    ("train.steps", integer(1)),
    ("train.batch_size", integer(1)),
    ("train.checkpoint_every", integer(0)),
    ("train.keep_checkpoints", integer(1, optional=True)),
    ("train.log_every", integer(0)),
    ("train.num_devices", integer(1, optional=True)),
    ("train.bn_group_size", integer(1, optional=True)),
    ("train.debug_nan_at_step", integer(0)),
    ("train.aux_weight", NON_NEGATIVE),
    ("train.loss.*_weights", sequence(NON_NEGATIVE, min_length=0)),
    ("train.loss.*_weight", NON_NEGATIVE),
    ("*eval.every", integer(0)),
    ("*eval.max_images", integer(0)),
    ("*eval.log_images", integer(0)),
    ("*eval.window_batch", integer(1)),
    ("*eval.crop_size", sequence(integer(1), 2)),
    ("*eval.base_size", integer(1, optional=True)),
    ("*eval.scales", sequence(POSITIVE)),
    ("*eval.stride_rate", number(0.0, 1.0, lo_open=True)),
    ("*eval.flip", one_of(True, False)),
    ("*eval.L", integer(1)),
    ("model.num_classes", integer(1)),
    ("model.depth", integer(1)),
    ("model.width", integer(1)),
    ("model.head_features", integer(1)),
    ("model.aux_features", integer(1)),
    ("model.bins", sequence(integer(1))),
    ("model.dropout", number(0.0, 1.0, hi_open=True)),
    ("model.in_channels", integer(1)),
    ("model.dtype", one_of("float32", "bfloat16", "float16")),
    ("model.passes", one_of(1, 2, 3)),
    ("data.num_classes", integer(1)),
    ("data.crop_size", sequence(integer(1), 2)),
    ("data.eval_pad_size", sequence(integer(1), 2, optional=True)),
    ("data.worker_count", integer(0)),
    ("data.read_threads", integer(1)),
    ("data.prefetch", integer(1)),
    ("data.prepare_threads", integer(1)),
    ("data.eval_batch_size", integer(1)),
    ("data.mean", sequence(number(), 3)),
    ("data.std", sequence(POSITIVE, 3)),
    ("data.*_prob", PROBABILITY),
    ("data.augmentation.scale_min", POSITIVE),
    ("data.augmentation.scale_max", POSITIVE),
    ("data.augmentation.rotate_deg", NON_NEGATIVE),
    ("data.synthetic.num_train", integer(1)),
    ("data.synthetic.num_val", integer(1)),
    ("data.synthetic.size", sequence(integer(8), 2)),
    ("optim.name", one_of("sgd", "adam")),
    ("optim.schedule", one_of("poly", "step", "constant")),
    ("optim.base_lr", POSITIVE),
    ("optim.momentum", number(0.0, 1.0, hi_open=True)),
    ("optim.weight_decay", NON_NEGATIVE),
    ("optim.power", NON_NEGATIVE),
    ("optim.warmup_steps", integer(0)),
    ("optim.warmup_init_lr", NON_NEGATIVE),
    ("optim.end_lr", NON_NEGATIVE),
    ("optim.grad_clip_norm", NON_NEGATIVE),
    ("optim.decay_factor", POSITIVE),
    ("optim.boundary_fractions", sequence(number(0.0, 1.0, lo_open=True, hi_open=True), min_length=0)),
    ("optim.lr_multipliers.*", NON_NEGATIVE),
    ("distributed.num_processes", integer(1)),
    ("distributed.process_id", integer(0)),
)


def _relations(config: ConfigDict) -> list[str]:
  """Checks between fields (each names both keys)."""
  problems = []

  def has(key):
    try:
      get_value(config, key)
      return True
    except ConfigError:
      return False
  if has("data.augmentation.scale_min") and has("data.augmentation.scale_max"):
    lo, hi = get_value(config, "data.augmentation.scale_min"), get_value(config, "data.augmentation.scale_max")
    if _is_num(lo) and _is_num(hi) and lo > hi:
      problems.append(f"data.augmentation.scale_min={lo} > data.augmentation.scale_max={hi}: "
                      "the minimum must not exceed the maximum")
  if has("distributed.process_id") and has("distributed.num_processes"):
    pid, n = get_value(config, "distributed.process_id"), get_value(config, "distributed.num_processes")
    if _is_int(pid) and _is_int(n) and pid >= n:
      problems.append(f"distributed.process_id={pid}: must be < distributed.num_processes={n}")
  if has("optim.warmup_steps") and has("train.steps"):
    w, s = get_value(config, "optim.warmup_steps"), get_value(config, "train.steps")
    if _is_int(w) and _is_int(s) and w >= s > 0:
      problems.append(f"optim.warmup_steps={w}: must be < train.steps={s}")
  return problems


def problems(config: ConfigDict, rules: Sequence[tuple[str, tuple[Check, str]]] = RULES) -> list[str]:
  """Every rule violation of `config`, as 'key=value: must be ...' lines."""
  resolved = config.copy_and_resolve_references() if hasattr(config, "copy_and_resolve_references") else config
  keys = dotted_keys(resolved)
  out = []
  for key in keys:
    value = get_value(resolved, key)
    if isinstance(value, ConfigDict):
      continue
    for pattern, (check, accepted) in rules:
      if fnmatch.fnmatchcase(key, pattern) and not check(value):
        out.append(f"{key}={value!r}: must be {accepted}")
        break
  return out + _relations(resolved)


def check_config(config: ConfigDict, where: str = "config") -> None:
  """Raise ConfigError listing every problem of `config` (`where` names it in the message)."""
  found = problems(config)
  if len(found) == 1:
    raise ConfigError(f"{where}: {found[0]}")
  if found:
    raise ConfigError(f"{where}: {len(found)} values are not accepted:\n  " + "\n  ".join(found))
