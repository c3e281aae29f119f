"""The `psp-jax` command (also `python -m psp_jax`): one subcommand per task.

  psp-jax <command> [flags]        psp-jax <command> --help for its flags

Each command lives in its own module and is imported only when called, so `psp-jax convert`
never loads the training stack and nothing but `convert` imports torch. Commands that compile
use JAX's persistent compilation cache (`psp_jax.compile_cache`: ~/.cache/psp_jax/xla, or
$PSP_JAX_COMPILATION_CACHE; 'off' disables it).

Errors: every command reports an expected failure as `psp-jax <command>: error: <message>` and
exits non-zero (2 for a bad flag or config value); `--verbose` (anywhere) or PSP_JAX_VERBOSE=1
adds the traceback and the libraries' INFO logging (psp_jax.cli_errors).
"""
from __future__ import annotations

import importlib
import sys

from psp_jax import cli_errors

# command -> (module, function taking the arguments after the command name, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "train": ("psp_jax.experiment", "train_main",
              "train (and periodically evaluate) from a config: --config FILE.py:NAME --workdir DIR"),
    "evaluate": ("psp_jax.experiment", "evaluate_main",
                 "evaluate a run's latest or best checkpoint on a split (mIoU table, JSON, Markdown)"),
    "convert": ("psp_jax.convert", "convert_main",
                "convert a PyTorch checkpoint (semseg PSPNet, ImageNet ResNet, CascadePSP) to Orbax"),
    "predict": ("psp_jax.segment", "predict_main",
                "label images (a file or a folder) with a checkpoint: index, colour and overlay PNGs"),
    "refine": ("psp_jax.refine.cli", "refine_main",
               "refine coarse masks with CascadePSP (an image or folders; --gt reports IoU and mBA)"),
    "ablate": ("psp_jax.ablate.cli", "ablate_main",
               "run an ablation table (experiments/NAME.py) at mini or paper scale and collect it"),
    "recompute-bn": ("psp_jax.recompute_bn", "recompute_bn_main", "recompute BN statistics over the training set (SegNet)"),
    "quickstart": ("psp_jax.train.quickstart", "cli_main",
                   "train a small PSPNet on the embedded synthetic scenes (CPU, ~1 min)"),
    "prepare": ("psp_jax.experiment", "prepare_main",
                "prepare a config's dataset (--force re-prepares it from data.manual_dir)"),
}

# commands that compile models (and so gain from the persistent compilation cache)
COMPILING = ("train", "evaluate", "predict", "refine", "ablate", "quickstart")


def usage() -> str:
  width = max(map(len, COMMANDS))
  lines = ["usage: psp-jax <command> [flags]   (psp-jax <command> --help for its flags)", "",
           "commands:"]
  lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
  lines += ["", f"{cli_errors.VERBOSE_FLAG} (any command): tracebacks and library INFO logging"]
  return "\n".join(lines)


def run(argv: list[str] | None = None) -> int:
  argv = cli_errors.take_verbose(sys.argv[1:] if argv is None else argv)
  cli_errors.configure_logging()
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(usage())
    return 0 if argv else 2
  name, rest = argv[0], argv[1:]
  if name not in COMMANDS:
    print(f"psp-jax: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
    return 2
  module, function, _ = COMMANDS[name]
  if name in COMPILING and not any(a in ("-h", "--help") for a in rest):
    from psp_jax import compile_cache
    compile_cache.enable()
  return cli_errors.run_command(f"psp-jax {name}",
                                lambda args: getattr(importlib.import_module(module), function)(args),
                                rest)


def entry_point() -> None:
  """Console-script entry: exit with the command's status."""
  sys.exit(run())


if __name__ == "__main__":
  entry_point()
