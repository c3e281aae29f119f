"""Caffe-style per-parameter learning-rate and weight-decay multipliers (`optim.param_rules`).

Caffe gives every parameter blob an `lr_mult` and a `decay_mult`; the SegNet and DeepLab
recipes train biases at 2x the learning rate without weight decay. `optim.param_rules` says
the same as data: a list of {'pattern': P, 'lr': L, 'decay': D}, P an fnmatch pattern over
parameter paths ('conv1_1/bias', '*_bn/bias', '*/bias'; '*' also spans '/'). The FIRST rule
matching a parameter applies: its lr multiplies the module group's (`optim.lr_multipliers`)
and decay (0 or 1) switches its weight decay off or on; parameters no rule matches keep 1
and 1. Frozen parameters stay frozen. A rule matching no parameter is an error.

  apply_param_rules(params, labels, multipliers, rules) -> (labels, multipliers, decay_mask)

returns new group labels (a ruled group is named '<group>|<pattern>'), the multiplier of
every group, and the weight-decay mask (a pytree of bools like params).
"""
from __future__ import annotations

import fnmatch
from typing import Any, Mapping, Sequence

from flax import traverse_util

RULE_KEYS = ("pattern", "lr", "decay")


def check_rules(rules: Sequence[Mapping[str, Any]]) -> list[tuple[str, float, bool]]:
  """[(pattern, lr, decay)]; ValueError naming `optim.param_rules[i]` and what it takes."""
  out = []
  for i, rule in enumerate(rules):
    where = f"optim.param_rules[{i}]"
    if not hasattr(rule, "keys") or "pattern" not in rule or set(rule.keys()) - set(RULE_KEYS):
      raise ValueError(f"{where}={rule!r}: must be a dict with 'pattern' and optional 'lr', 'decay' "
                       f"(keys {RULE_KEYS})")
    lr, decay = rule.get("lr", 1.0), rule.get("decay", 1.0)
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or lr < 0:
      raise ValueError(f"{where}.lr={lr!r}: must be a number >= 0")
    if decay not in (0, 1):
      raise ValueError(f"{where}.decay={decay!r}: must be 0 (no weight decay) or 1")
    out.append((str(rule["pattern"]), float(lr), bool(decay)))
  return out


def apply_param_rules(params, labels, multipliers: Mapping[str, float],
                      rules: Sequence[Mapping[str, Any]], frozen_group: str = "frozen"):
  """See the module docstring. `labels` are `optim.group_labels`, `multipliers` its groups'."""
  checked = check_rules(rules)
  flat_labels = traverse_util.flatten_dict(labels, sep="/")
  flat_params = traverse_util.flatten_dict(params, sep="/")
  used = [False] * len(checked)
  new_labels, decay, mults = {}, {}, {}
  for path in flat_params:
    group = flat_labels[path]
    hit = next((k for k, (pattern, _, _) in enumerate(checked) if fnmatch.fnmatchcase(path, pattern)), None)
    if hit is not None:
      used[hit] = True
    if hit is None or group == frozen_group:
      new_labels[path], decay[path] = group, group != frozen_group
      mults[group] = multipliers[group]
      continue
    pattern, lr, dec = checked[hit]
    name = f"{group}|{pattern}" if lr != 1.0 else group
    new_labels[path], decay[path] = name, dec
    mults[name] = multipliers[group] * lr
  unused = [checked[k][0] for k, u in enumerate(used) if not u]
  if unused:
    examples = sorted(flat_params)[:4]
    raise ValueError(f"optim.param_rules patterns {unused} match no parameter; parameter paths look "
                     f"like {examples}")
  return (traverse_util.unflatten_dict(new_labels, sep="/"), mults,
          traverse_util.unflatten_dict(decay, sep="/"))
