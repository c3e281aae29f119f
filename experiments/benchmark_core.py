"""Time PSPNet's inference forward and its data-parallel train step on this machine.

  python experiments/benchmark_core.py forward      # PSPNet-50, 150 classes, 1x473x473, eval
  python experiments/benchmark_core.py train_step   # PSPNet-50, batch 8x233x233, 8 devices

`train_step` simulates 8 CPU devices (XLA_FLAGS is set before jax is imported) when fewer
exist. Each measurement compiles once, warms up, then reports the median of --repeats runs.

  python experiments/benchmark_core.py forward --torch      # vs PyTorch, interleaved pairs
  python experiments/benchmark_core.py train_step --torch   # one SGD step, batch 2x233x233

--torch: the same network in PyTorch (tests/torch_reference/semseg_pspnet.py, random weights and
BN statistics, converted to ours with `psp-jax convert --model pspnet`, so both run the same
numbers), timed against ours in --pairs interleaved pairs (ours, then torch), one device and
--threads torch threads; reported: the median over pairs of torch time / our time (> 1: ours
is faster) and its range. The train step is forward + backward + SGD update (momentum 0.9,
weight decay 1e-4, head and PPM at 10x) of the main + 0.4 x aux cross-entropy in both.
The CPU's vector flags are printed: ratios move with the CPU kind (cap both sides to AVX2 with
XLA_FLAGS=--xla_cpu_max_isa=AVX2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _time(fn, repeats: int) -> tuple[float, list[float]]:
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times), times


def our_train_step(model, variables, images, labels, classes: int, devices: int,
                   compiler_options=None):
  """run() doing one SGD step of `model` (momentum 0.9, weight decay 1e-4, poly schedule, PPM
  and heads at 10x) on `devices` devices, waiting for its metrics; compiled with
  `compiler_options` when given."""
  import jax  # pylint: disable=import-outside-toplevel
  import ml_collections  # pylint: disable=import-outside-toplevel

  from psp_jax.parallel import make_mesh  # pylint: disable=import-outside-toplevel
  from psp_jax.train.optim import make_optimizer  # pylint: disable=import-outside-toplevel
  from psp_jax.train.state import create_train_state  # pylint: disable=import-outside-toplevel
  from psp_jax.train.step import make_train_step  # pylint: disable=import-outside-toplevel
  mesh = make_mesh(devices)
  cfg = ml_collections.ConfigDict(dict(name="sgd", base_lr=0.01, momentum=0.9, weight_decay=1e-4,
                                       schedule="poly", lr_multipliers={"ppm": 10.0, "head": 10.0,
                                                                        "aux_head": 10.0}))
  opt = make_optimizer(cfg, variables["params"], 1000)
  state = [create_train_state(variables, opt.tx, jax.random.key(1), mesh)]
  step = make_train_step(model, opt, mesh, num_classes=classes)
  if compiler_options:
    step = step.lower(state[0], images, labels).compile(compiler_options)

  def run():
    state[0], metrics = step(state[0], images, labels)
    jax.block_until_ready(metrics)
  return run


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("what", choices=["forward", "train_step"])
  parser.add_argument("--depth", type=int, default=50)
  parser.add_argument("--classes", type=int, default=150)
  parser.add_argument("--size", type=int, default=None, help="image side (473 forward, 233 step)")
  parser.add_argument("--batch", type=int, default=None, help="batch (1 forward, 8 step)")
  parser.add_argument("--devices", type=int, default=8, help="devices for train_step")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  parser.add_argument("--torch", action="store_true", help="interleave with the PyTorch network")
  parser.add_argument("--pairs", type=int, default=6, help="interleaved pairs with --torch")
  parser.add_argument("--threads", type=int, default=2, help="torch threads with --torch")
  parser.add_argument("--pointwise-dot-grad-min-weights", type=int, default=None,
                      help="set ops.POINTWISE_DOT_GRAD_MIN_WEIGHTS (0: 1x1 gradients as XLA's "
                           "convolution gradients, the state before that rewrite)")
  parser.add_argument("--pointwise-dot-min-weights", type=int, default=None,
                      help="set ops.POINTWISE_DOT_MIN_WEIGHTS (0: large 1x1 convolutions keep XLA's "
                           "convolution forward, the state before that rewrite)")
  parser.add_argument("--materialize-min-channels", type=int, default=None,
                      help="set ops.MATERIALIZE_MIN_CHANNELS (0: residual block outputs are not "
                           "materialized, the state before that rewrite)")
  parser.add_argument("--ops", action="append", default=[], metavar="NAME=INT",
                      help="set these psp_jax.models.ops switches for the whole run (e.g. "
                           "PIXELS_MATMUL=0; repeatable): the state before a rewrite, timed in "
                           "its own process")
  parser.add_argument("--before", action="append", default=[], metavar="NAME=INT",
                      help="with --torch: also time our network with these ops switches (e.g. "
                           "MATERIALIZE_MIN_CHANNELS=0; repeatable) in the same rounds (before, "
                           "ours, torch), and report the gain ours/before side by side")
  parser.add_argument("--before-fusions", default=None, metavar="LIST",
                      help="the 'before' program is compiled with "
                           "--xla_cpu_experimental_ynn_fusion_type=LIST ('xla': XLA's own default, "
                           "the state before psp_jax/xla_cpu.py): with --torch in the rounds "
                           "against PyTorch (combines with --before); train_step without --torch: "
                           "an A/B of before and ours alone")
  parser.add_argument("--idle", type=float, default=0.0,
                      help="train_step --before-fusions without --torch: seconds of idle time "
                           "before each timed step (as data loading leaves between steps)")
  args = parser.parse_args()
  if args.before and not args.torch:
    parser.error("--before needs --torch")
  if args.before_fusions is not None and not args.torch and args.what != "train_step":
    parser.error("--before-fusions without --torch times train_step only")
  if args.what == "train_step" and not args.torch and args.before_fusions is None:  # before jax
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.devices}")
  from psp_jax.models import ops  # pylint: disable=import-outside-toplevel
  for name in ("pointwise_dot_grad_min_weights", "pointwise_dot_min_weights", "materialize_min_channels"):
    if getattr(args, name) is not None:
      setattr(ops, name.upper(), getattr(args, name))
  try:
    switches = ops.parse_switches(args.ops, "--ops")
  except ValueError as e:
    parser.error(str(e))
  for name, value in switches.items():
    setattr(ops, name, value)
  if args.torch:
    return against_torch(args)
  if args.before_fusions is not None:
    return fusions_ab(args)
  import jax
  import jax.numpy as jnp
  import numpy as np

  from psp_jax.checkpoint import init_variables
  from psp_jax.models.build import build_model

  size = args.size or (473 if args.what == "forward" else 233)
  batch = args.batch or (1 if args.what == "forward" else 8)
  model = build_model({"name": "pspnet", "num_classes": args.classes, "depth": args.depth,
                       "dtype": args.dtype})
  variables = init_variables(model, jax.random.key(0))
  rng = np.random.default_rng(0)
  images = rng.normal(size=(batch, size, size, 3)).astype(np.float32)
  desc = (f"PSPNet-{args.depth} ({args.classes} classes, {args.dtype}) on {jax.device_count()} x "
          f"{jax.devices()[0].platform}, batch {batch}x{size}x{size}")
  if args.what == "forward":
    fwd = jax.jit(lambda v, x: model.apply(v, x, train=False))
    x = jnp.asarray(images)
    t = time.perf_counter()
    fwd(variables, x).block_until_ready()
    compile_s = time.perf_counter() - t
    med, times = _time(lambda: fwd(variables, x).block_until_ready(), args.repeats)
  else:
    labels = rng.integers(0, args.classes, size=(batch, size, size)).astype(np.int32)
    run = our_train_step(model, variables, images, labels, args.classes,
                         min(args.devices, jax.device_count()))

    t = time.perf_counter()
    run()
    compile_s = time.perf_counter() - t
    med, times = _time(run, args.repeats)
  print(f"{args.what}: {desc}" + (f"; ops {' '.join(args.ops)}" if args.ops else ""))
  print(f"  first call (compile + run): {compile_s:.2f} s")
  print(f"  median of {args.repeats}: {med:.3f} s   (all: {', '.join(f'{x:.3f}' for x in times)})")
  sys.stdout.flush()


def _parse_switches(items: list[str]) -> dict[str, int]:
  """--before NAME=INT items -> {NAME: INT}, NAME a rewrite switch of psp_jax.models.ops."""
  from psp_jax.models import ops  # pylint: disable=import-outside-toplevel
  try:
    return ops.parse_switches(items, "--before")
  except ValueError as e:
    raise SystemExit(str(e)) from None


class _switched:
  """Context: psp_jax.models.ops switches set to `values` (restored after; read at trace time)."""

  def __init__(self, values: dict[str, int]):
    from psp_jax.models import ops  # pylint: disable=import-outside-toplevel
    self.ops, self.values, self.saved = ops, values, {}

  def __enter__(self):
    for name, value in self.values.items():
      self.saved[name] = getattr(self.ops, name)
      setattr(self.ops, name, value)

  def __exit__(self, *exc):
    for name, value in self.saved.items():
      setattr(self.ops, name, value)


def _torch_train_step(net, classes: int):
  """One SGD step of the PyTorch network: main + 0.4 x aux cross-entropy (ignore 255)."""
  import torch  # pylint: disable=import-outside-toplevel
  import torch.nn.functional as F  # pylint: disable=import-outside-toplevel
  head = [p for n, p in net.named_parameters() if n.startswith(("ppm", "cls", "aux"))]
  body = [p for n, p in net.named_parameters() if not n.startswith(("ppm", "cls", "aux"))]
  opt = torch.optim.SGD([{"params": body, "lr": 0.01}, {"params": head, "lr": 0.1}],
                        lr=0.01, momentum=0.9, weight_decay=1e-4)

  def step(x, y):
    net.train()
    size = x.shape[2:]
    f = net.layer3(net.layer2(net.layer1(net.layer0(x))))
    main = F.interpolate(net.cls(net.ppm(net.layer4(f))), size, mode="bilinear", align_corners=True)
    aux = F.interpolate(net.aux(f), size, mode="bilinear", align_corners=True)
    loss = F.cross_entropy(main, y, ignore_index=255) + 0.4 * F.cross_entropy(aux, y, ignore_index=255)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss)
  del classes
  return step


def fusions_ab(args) -> None:
  """One-device train step compiled with --before-fusions ("before") and as psp_jax compiles it
  ("ours"), alternating in one process, no PyTorch; --idle seconds before each timed step."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  from psp_jax import xla_cpu  # pylint: disable=import-outside-toplevel
  from psp_jax.checkpoint import init_variables  # pylint: disable=import-outside-toplevel
  from psp_jax.models.build import build_model  # pylint: disable=import-outside-toplevel
  from psp_jax.reproducibility import cpu_description  # pylint: disable=import-outside-toplevel
  fusions = xla_cpu.XLA_DEFAULT_FUSIONS if args.before_fusions == "xla" else args.before_fusions
  size, batch = args.size or 233, args.batch or 2
  model = build_model({"name": "pspnet", "num_classes": args.classes, "depth": args.depth})
  variables = init_variables(model, jax.random.key(0))
  rng = np.random.default_rng(0)
  images = rng.normal(size=(batch, size, size, 3)).astype(np.float32)
  labels = rng.integers(0, args.classes, size=(batch, size, size)).astype(np.int32)
  runs = {"before": our_train_step(model, jax.tree.map(jnp.copy, variables), images, labels,
                                   args.classes, 1, xla_cpu.compiler_options(fusions)),
          "ours": our_train_step(model, variables, images, labels, args.classes, 1)}
  for run in runs.values():  # compile and warm up
    run()
    run()
  times = {k: [] for k in runs}
  for k in range(args.pairs):
    for name, run in runs.items():
      time.sleep(args.idle)
      t = time.perf_counter()
      run()
      times[name].append(time.perf_counter() - t)
    print(f"round {k}: before {times['before'][-1]:.3f} s, ours {times['ours'][-1]:.3f} s", flush=True)
  gains = [b / o for b, o in zip(times["before"], times["ours"])]
  cpu, flags = cpu_description()
  print(f"PSPNet-{args.depth} ({args.classes} classes), train step {batch}x{size}x{size}, one device, "
        f"{args.idle:g} s idle before each step; CPU {cpu} ({os.cpu_count()} cores; {flags}); "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}; jax {jax.__version__}")
  print(f"  before (fusions {fusions}): median {statistics.median(times['before']):.3f} s; ours "
        f"median {statistics.median(times['ours']):.3f} s; gain before/ours, median of {args.pairs} "
        f"rounds: {statistics.median(gains):.3f} (range {min(gains):.2f}-{max(gains):.2f}; > 1: "
        "ours faster)")


def against_torch(args) -> None:
  """Ours vs the PyTorch network, interleaved pairs (see the module docstring)."""
  import pathlib  # pylint: disable=import-outside-toplevel
  import tempfile  # pylint: disable=import-outside-toplevel
  root = pathlib.Path(__file__).resolve().parents[1]
  sys.path[:0] = [str(root), str(root / "tests")]
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from torch_reference.common import randomize_  # pylint: disable=import-outside-toplevel
  from torch_reference.semseg_pspnet import SemsegPSPNet  # pylint: disable=import-outside-toplevel
  from torch_reference.testing import save_state_dict  # pylint: disable=import-outside-toplevel

  from psp_jax import checkpoint  # pylint: disable=import-outside-toplevel
  from psp_jax.convert import convert_main  # pylint: disable=import-outside-toplevel
  from psp_jax.reproducibility import cpu_description  # pylint: disable=import-outside-toplevel

  torch.set_num_threads(args.threads)
  forward = args.what == "forward"
  size = args.size or (473 if forward else 233)
  batch = args.batch or (1 if forward else 2)
  net = randomize_(SemsegPSPNet(classes=args.classes, depth=args.depth), seed=1).eval()
  with tempfile.TemporaryDirectory() as tmp:
    pth = pathlib.Path(tmp) / "pspnet.pth"
    save_state_dict(net, pth)
    out = str(pathlib.Path(tmp) / "ckpt")
    if convert_main(["--torch", str(pth), "--model", "pspnet", "--num-classes", str(args.classes),
                     "--layers", str(args.depth), "--out", out]) != 0:
      raise SystemExit("conversion of the PyTorch network failed")
    model, variables = checkpoint.load(out)
  rng = np.random.default_rng(0)
  images = rng.normal(size=(batch, size, size, 3)).astype(np.float32)
  xt = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
  switches = _parse_switches(args.before)
  options = None
  if args.before_fusions is not None:
    from psp_jax import xla_cpu  # pylint: disable=import-outside-toplevel
    fusions = xla_cpu.XLA_DEFAULT_FUSIONS if args.before_fusions == "xla" else args.before_fusions
    options = xla_cpu.compiler_options(fusions)
  before = bool(switches) or options is not None
  before_desc = " ".join(args.before + ([f"fusions {fusions}"] if options is not None else []))
  if forward:
    fwd = jax.jit(lambda v, x: model.apply(v, x, train=False))
    xj = jnp.asarray(images)
    ours_fn = lambda: fwd(variables, xj).block_until_ready()  # noqa: E731
    if before:
      with _switched(switches):  # traced (and compiled) with the switches and options
        fwd_before = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(
            variables, xj).compile(options)
      before_fn = lambda: fwd_before(variables, xj).block_until_ready()  # noqa: E731

    def torch_fn():
      with torch.no_grad():
        net(xt)
    what = f"eval forward {batch}x{size}x{size}"
  else:
    labels = rng.integers(0, args.classes, size=(batch, size, size)).astype(np.int32)
    if before:  # its own copy of the state: the step donates it
      with _switched(switches):
        before_fn = our_train_step(model, jax.tree.map(jnp.copy, variables), images, labels,
                                   args.classes, 1, options)
        before_fn()
    ours_fn = our_train_step(model, variables, images, labels, args.classes, 1)
    tstep = _torch_train_step(net, args.classes)
    yt = torch.from_numpy(labels.astype(np.int64))
    torch_fn = lambda: tstep(xt, yt)  # noqa: E731
    what = f"train step (forward, backward, SGD update) {batch}x{size}x{size}, one device"
  ours_fn()  # compile and warm up
  torch_fn()
  if forward:  # the same numbers on both sides
    with torch.no_grad():
      ref = net(xt).numpy().transpose(0, 2, 3, 1)
    got = np.asarray(fwd(variables, xj))
    err = float(np.abs(got - ref).max() / np.abs(ref).max())
    print(f"largest difference of the logits, relative to their largest value: {err:.1e}")
    if err > 1e-3:
      raise SystemExit(f"ours and torch disagree (relative error {err:.1e})")
  ours, theirs, befores = [], [], []
  for k in range(args.pairs):
    if before:
      t = time.perf_counter()
      before_fn()
      befores.append(time.perf_counter() - t)
    t = time.perf_counter()
    ours_fn()
    ours.append(time.perf_counter() - t)
    t = time.perf_counter()
    torch_fn()
    theirs.append(time.perf_counter() - t)
    head = f"before {befores[-1]:.3f} s, " if before else ""
    print(f"pair {k}: {head}ours {ours[-1]:.3f} s, torch {theirs[-1]:.3f} s", flush=True)
  ratios = [b / a for a, b in zip(ours, theirs)]
  cpu, flags = cpu_description()
  print(f"PSPNet-{args.depth} ({args.classes} classes), {what}; CPU {cpu} ({os.cpu_count()} cores; "
        f"{flags}); XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} "
        f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '')!r} "
        f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '')!r}; torch {torch.__version__} "
        f"({args.threads} threads), jax {jax.__version__}")
  print(f"  ours median {statistics.median(ours):.3f} s, torch median {statistics.median(theirs):.3f} s; "
        f"torch/ours, median of {args.pairs} interleaved pairs: {statistics.median(ratios):.2f} "
        f"(range {min(ratios):.2f}-{max(ratios):.2f}; > 1: ours faster)")
  if before:
    gains = [a / b for a, b in zip(befores, ours)]
    vs_torch = [b / a for a, b in zip(befores, theirs)]
    print(f"  before ({before_desc}): median {statistics.median(befores):.3f} s; "
          f"torch/before {statistics.median(vs_torch):.2f} (range {min(vs_torch):.2f}-"
          f"{max(vs_torch):.2f}); gain before/ours, median of {args.pairs} rounds: "
          f"{statistics.median(gains):.3f} (range {min(gains):.2f}-{max(gains):.2f}; > 1: the "
          "rewrites help)")


if __name__ == "__main__":
  main()
