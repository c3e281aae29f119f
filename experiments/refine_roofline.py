"""How close CascadePSP's global step runs to this machine's float32 compute rate.

  python experiments/refine_roofline.py                 # the 968x648 sample's global step (L=900)
  python experiments/refine_roofline.py --canvas 608x904 --repeats 3

Counts the floating-point operations of one full-width RefinementModule forward (three passes)
at the global step's canvas with XLA's cost analysis, times the forward (warm, float32 and
bfloat16), and times a 4096x4096 float32 matmul in JAX and in PyTorch (when installed) as the
attainable rate of the cores. The ratio says how much faster any implementation of the same
computation could be here: refinement cost is fixed by the model and the canvas.
"""
from __future__ import annotations

import argparse
import time


def _best(fn, repeats: int) -> float:
  fn()  # compile / warm up
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return min(times)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--canvas", default="608x904",
                      help="HxW model input (608x904: the 968x648 sample at L=900, padded to 8)")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--matmul", type=int, default=4096)
  parser.add_argument("--dtypes", default="float32,bfloat16")
  args = parser.parse_args()

  import jax
  import jax.numpy as jnp
  from psp_jax.models.refinement import RefinementModule

  h, w = (int(v) for v in args.canvas.lower().split("x"))
  image = jax.random.normal(jax.random.PRNGKey(1), (1, h, w, 3))
  seg = jnp.where(jnp.arange(w)[None, None, :, None] < w // 2, 1.0, -1.0) * jnp.ones((1, h, w, 1))
  gflop, rates = None, {}
  for name in args.dtypes.split(","):
    model = RefinementModule(dtype=jnp.dtype(name))
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64, 64, 3)),
                           jnp.zeros((1, 64, 64, 1)))
    forward = jax.jit(lambda v, a, b, m=model: jax.nn.sigmoid(m.apply(v, a, b, train=False)["s1"]))
    if gflop is None:
      cost = forward.lower(variables, image, seg).compile().cost_analysis()
      cost = cost[0] if isinstance(cost, (list, tuple)) else cost
      gflop = cost["flops"] / 1e9
      print(f"global step forward at {h}x{w}: {gflop:,.0f} GFLOP (XLA cost analysis)")
    seconds = _best(lambda: forward(variables, image, seg).block_until_ready(), args.repeats)
    rates[name] = gflop / seconds
    print(f"  {name:9s} {seconds:6.2f} s warm  -> {rates[name]:6.1f} GFLOP/s", flush=True)

  n = args.matmul
  a = jax.random.normal(jax.random.PRNGKey(2), (n, n))
  matmul = jax.jit(lambda x: x @ x)
  jax_rate = 2 * n ** 3 / 1e9 / _best(lambda: matmul(a).block_until_ready(), 3)
  print(f"{n}x{n} float32 matmul: JAX {jax_rate:6.1f} GFLOP/s", end="")
  try:
    import torch
    t = torch.randn(n, n)
    print(f", PyTorch ({torch.get_num_threads()} threads) "
          f"{2 * n ** 3 / 1e9 / _best(lambda: t @ t, 3):6.1f} GFLOP/s")
  except ImportError:
    print(" (PyTorch not installed)")
  if "float32" in rates:
    print(f"the float32 global step runs at {rates['float32'] / jax_rate:.0%} of JAX's matmul "
          f"rate: at most {jax_rate / rates['float32']:.2f}x faster at the same FLOPs")


if __name__ == "__main__":
  main()
