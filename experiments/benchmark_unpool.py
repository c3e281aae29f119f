"""Time SegNet's unpooling two ways on this machine: window mask vs XLA scatter.

  python experiments/benchmark_unpool.py                    # SegNet's unpool shapes, batch 1
  python experiments/benchmark_unpool.py --batch 4 --repeats 10

For each decoder unpool of SegNet at 360x480 (12x15x512 -> 23x30, ..., 180x240x64 ->
360x480) it times, jit-compiled, the forward unpool and forward + backward (the gradient of
sum(unpool(y) * g) with respect to y) of `max_unpool` (one-hot window mask) and
`unpool_scatter` (.at[].set), checks they agree, and prints the median of --repeats runs
(after one warm-up) per shape and in total. The faster one is psp_jax's `max_unpool`.
"""
from __future__ import annotations

import argparse
import statistics
import time

# (H, W, C) of the pooled inputs SegNet unpools at 360x480, innermost first.
SEGNET_UNPOOLS = ((23, 30, 512), (45, 60, 512), (90, 120, 256), (180, 240, 128), (360, 480, 64))


def _median_seconds(fn, repeats: int) -> float:
  fn()  # compile + warm up
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  import jax
  import jax.numpy as jnp
  import numpy as np

  from psp_jax.models.pool_indices import max_pool_with_argmax, max_unpool, unpool_scatter

  ops = {"mask": max_unpool, "scatter": unpool_scatter}
  totals = {(name, kind): 0.0 for name in ops for kind in ("fwd", "fwd+bwd")}
  print(f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.device_count()} device(s)), "
        f"batch {args.batch}, median of {args.repeats}")
  rng = np.random.default_rng(0)
  for h, w, c in SEGNET_UNPOOLS:
    x = jnp.asarray(rng.normal(size=(args.batch, h, w, c)).astype(np.float32))
    y, idx, shape = max_pool_with_argmax(x)
    g = jnp.asarray(rng.normal(size=x.shape).astype(np.float32))
    results = {}
    row = []
    for name, op in ops.items():
      fwd = jax.jit(lambda y, idx, op=op: op(y, idx, shape))
      bwd = jax.jit(jax.grad(lambda y, idx, op=op: jnp.sum(op(y, idx, shape) * g)))
      results[name] = (np.asarray(fwd(y, idx)), np.asarray(bwd(y, idx)))
      for kind, fn in (("fwd", fwd), ("fwd+bwd", bwd)):
        sec = _median_seconds(lambda fn=fn: jax.block_until_ready(fn(y, idx)), args.repeats)
        totals[(name, kind)] += sec
        row.append(f"{name} {kind} {1e3 * sec:.2f} ms")
    np.testing.assert_array_equal(results["mask"][0], results["scatter"][0])
    np.testing.assert_array_equal(results["mask"][1], results["scatter"][1])
    print(f"  {y.shape[1]}x{y.shape[2]}x{c} -> {h}x{w}: " + ", ".join(row))
  print("total: " + ", ".join(f"{name} {kind} {1e3 * sec:.2f} ms" for (name, kind), sec in totals.items()))
  for kind in ("fwd", "fwd+bwd"):
    ratio = totals[("scatter", kind)] / totals[("mask", kind)]
    print(f"  {kind}: scatter / mask = {ratio:.2f}")


if __name__ == "__main__":
  main()
