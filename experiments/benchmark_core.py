"""Time PSPNet's inference forward and its data-parallel train step on this machine.

  python experiments/benchmark_core.py forward      # PSPNet-50, 150 classes, 1x473x473, eval
  python experiments/benchmark_core.py train_step   # PSPNet-50, batch 8x233x233, 8 devices

`train_step` simulates 8 CPU devices (XLA_FLAGS is set before jax is imported) when fewer
exist. Each measurement compiles once, warms up, then reports the median of --repeats runs.
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
  args = parser.parse_args()
  if args.what == "train_step":
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.devices}")
  import jax
  import jax.numpy as jnp
  import ml_collections
  import numpy as np

  from psp_jax.checkpoint import init_variables
  from psp_jax.models.build import build_model
  from psp_jax.parallel import make_mesh
  from psp_jax.train.optim import make_optimizer
  from psp_jax.train.state import create_train_state
  from psp_jax.train.step import make_train_step

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
    mesh = make_mesh(min(args.devices, jax.device_count()))
    cfg = ml_collections.ConfigDict(dict(name="sgd", base_lr=0.01, momentum=0.9, weight_decay=1e-4,
                                         schedule="poly", lr_multipliers={"ppm": 10.0, "head": 10.0,
                                                                          "aux_head": 10.0}))
    opt = make_optimizer(cfg, variables["params"], 1000)
    state = [create_train_state(variables, opt.tx, jax.random.key(1), mesh)]
    step = make_train_step(model, opt, mesh, num_classes=args.classes)

    def run():
      state[0], metrics = step(state[0], images, labels)
      jax.block_until_ready(metrics)

    t = time.perf_counter()
    run()
    compile_s = time.perf_counter() - t
    med, times = _time(run, args.repeats)
  print(f"{args.what}: {desc}")
  print(f"  first call (compile + run): {compile_s:.2f} s")
  print(f"  median of {args.repeats}: {med:.3f} s   (all: {', '.join(f'{x:.3f}' for x in times)})")
  sys.stdout.flush()


if __name__ == "__main__":
  main()
