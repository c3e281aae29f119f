"""The package's imports go one way (shared/design.md "Layers"), lazy imports included.

Every `import` / `from ... import` of psp_jax in psp_jax/**/*.py (at any depth of the file,
so imports inside functions count) is read from the source; each module belongs to the layer
of its longest matching prefix in LAYERS. A module may import its own layer's modules (within
the SAME group) or any lower layer; never a higher layer, never a sibling group named in
FORBIDDEN, and the import graph has no cycle.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "psp_jax"

# prefix -> (layer, group). Same layer and same group: allowed; same layer, other group: no.
LAYERS = {
    "psp_jax.constants": (0, "base"), "psp_jax.preprocessing": (0, "base"),
    "psp_jax.reports": (0, "base"), "psp_jax.parallel": (0, "base"),
    "psp_jax.compile_cache": (0, "base"), "psp_jax.visualize": (0, "base"),
    # error reporting and argument/config checks every command shares (stdlib only)
    "psp_jax.cli_errors": (0, "base"), "psp_jax.cli_checks": (0, "base"),
    "psp_jax.config_loading": (0, "base"), "psp_jax.config_checks": (0, "base"),
    "psp_jax.workdir_lock": (0, "base"),
    # the portable CPU setting of subprocess environments (stdlib only)
    "psp_jax.reproducibility": (0, "base"),
    "psp_jax.xla_cpu": (0, "base"), "psp_jax.cpu_info": (0, "base"),
    "psp_jax.models": (1, "models"), "psp_jax.data": (1, "data"),
    "psp_jax.checkpoint": (2, "checkpoint"), "psp_jax.checkpoint_integrity": (2, "checkpoint"),
    "psp_jax.checkpoint_match": (2, "checkpoint"),
    "psp_jax.postprocess": (3, "postprocess"),
    "psp_jax.evaluate": (4, "evaluate"),
    "psp_jax.train": (5, "train"), "psp_jax.refine": (5, "refine"), "psp_jax.convert": (5, "convert"),
    "psp_jax.tasks": (6, "tasks"),
    "psp_jax.train.loop": (7, "loop"),  # runs any task: above them
    # the command line and the public API
    "psp_jax": (8, "cli"), "psp_jax.main": (8, "cli"), "psp_jax.experiment": (8, "cli"),
    "psp_jax.segment": (8, "cli"), "psp_jax.refine.cli": (8, "cli"), "psp_jax.ablate": (8, "cli"),
    "psp_jax.train.quickstart": (8, "cli"), "psp_jax.data.benchmark": (8, "cli"),
    "psp_jax.recompute_bn": (8, "cli"), "psp_jax.cli_batch": (8, "cli"), "psp_jax.__main__": (8, "cli"),
}
# Within one layer and group, modules that must still not import each other.
FORBIDDEN = [("psp_jax.data.builders", "psp_jax.data.builders.catalog")]


def module_name(path: pathlib.Path) -> str:
  rel = path.relative_to(PACKAGE.parent).with_suffix("")
  parts = list(rel.parts)
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def all_modules() -> dict[str, pathlib.Path]:
  return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(path: pathlib.Path, modules: set[str]) -> set[str]:
  return imports_in(path.read_text(), module_name(path), path.name == "__init__.py", modules)


def imports_in(source: str, me: str, is_package: bool, modules: set[str]) -> set[str]:
  """psp_jax modules imported anywhere in `source` (`from psp_jax import x` -> psp_jax.x
  when x is a module; relative imports resolved against module `me`)."""
  package = me if is_package else me.rpartition(".")[0]
  found = set()
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      found.update(a.name for a in node.names if a.name.startswith("psp_jax"))
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = package.split(".")[:len(package.split(".")) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
      if not base.startswith("psp_jax"):
        continue
      for a in node.names:
        sub = f"{base}.{a.name}"
        found.add(sub if sub in modules else base)
  found.discard(me)
  return found


def layer(module: str) -> tuple[int, str, str]:
  prefix = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
  return (*LAYERS[prefix], prefix)


def test_every_module_has_a_layer():
  """A new top-level module must be placed in LAYERS on purpose (not fall into 'psp_jax')."""
  unplaced = [n for n in all_modules() if n != "psp_jax" and layer(n)[2] == "psp_jax"]
  assert not unplaced, f"modules without a layer in LAYERS: {unplaced}"


def test_imports_go_down_the_layers():
  modules = all_modules()
  bad = []
  for name, path in sorted(modules.items()):
    lo, group, _ = layer(name)
    for target in sorted(imports_of(path, set(modules))):
      t_lo, t_group, _ = layer(target)
      if t_lo > lo or (t_lo == lo and t_group != group):
        bad.append(f"{name} (layer {lo} {group}) imports {target} (layer {t_lo} {t_group})")
      for a, b in FORBIDDEN:
        if name == a and target == b or name == b and target == a:
          bad.append(f"{name} imports {target}: these two must not import each other")
  assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_import_cycles():
  modules = all_modules()
  graph = {n: {t for t in imports_of(p, set(modules)) if t in modules} for n, p in modules.items()}
  state, stack, cycles = {}, [], []

  def visit(n):
    state[n] = 1
    stack.append(n)
    for t in sorted(graph[n]):
      if state.get(t) == 1:
        cycles.append(stack[stack.index(t):] + [t])
      elif t not in state:
        visit(t)
    stack.pop()
    state[n] = 2

  for n in sorted(graph):
    if n not in state:
      visit(n)
  assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("source, expected", [
    ("from psp_jax.train import loop\n", {"psp_jax.train.loop"}),
    ("def f():\n  from psp_jax import checkpoint\n", {"psp_jax.checkpoint"}),
    ("import psp_jax.models.build as b\n", {"psp_jax.models.build"}),
    ("from . import metrics\nfrom ..models import ops\n", {"psp_jax.evaluate.metrics", "psp_jax.models.ops"}),
    ("from psp_jax.train.loop import train_and_evaluate\n", {"psp_jax.train.loop"}),
])
def test_the_walker_sees_lazy_aliased_and_relative_imports(source, expected):
  assert imports_in(source, "psp_jax.evaluate.probe", False, set(all_modules())) == expected


def test_a_lower_layer_importing_a_higher_one_is_caught():
  lo, _, _ = layer("psp_jax.models.pspnet")
  hi, _, _ = layer("psp_jax.train.loop")
  assert lo < hi and layer("psp_jax.refine.cli")[0] > layer("psp_jax.refine.api")[0]
