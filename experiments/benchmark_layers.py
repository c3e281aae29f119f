"""Every distinct convolution of a model, timed in XLA (ours) and in PyTorch, interleaved.

  python experiments/benchmark_layers.py --model pspnet50 --size 473 --output experiments/results/layers_pspnet50.md
  python experiments/benchmark_layers.py --model refine --size 904x608      # CascadePSP's global step

The convolutions are read from the model's own jaxpr (jax.make_jaxpr of its inference apply;
nested jaxprs included), so the list is exactly what our forward runs: input and kernel shape,
strides, padding, dilation and groups, and how often each occurs. Each distinct shape is then
timed as one jitted `lax.conv_general_dilated` (NHWC, as our layers call it) and as
`torch.nn.functional.conv2d` (NCHW, as the PyTorch originals run), in pairs: ours, then torch,
--pairs times, each side the median of --inner calls. Reported per shape: GFLOP per call,
ms and GFLOP/s for both, the median over pairs of the pairwise ratio torch/ours (> 1: ours is
faster), and the share of our total convolution time (count x ms). --rewrites also times, in the
same pairs, the same convolution written other ways (each checked against the plain one):
`split<k>` (the input channels in k chunks, k convolutions summed: XLA's CPU convolution speed
depends on the shape it is given) for >= 1024 input channels, `s2b` (a dilated convolution as
undilated ones on the d x d phases of its input, space-to-batch) and `dot` (a 1x1 convolution as
one matrix product, strided ones sliced first); reported as ours / rewrite (> 1: the rewrite is
faster) for the best one. The header names the CPU
(its vector flags), the thread counts and the library versions: ratios move with the CPU kind.

  python experiments/benchmark_layers.py --grad --model pspnet50 --size 233 --batch 2

--grad times what a train step asks of each convolution instead: the forward and both
gradients (dx, dW; dW only for the first convolution, whose input is the image), as the train
step's backward pass computes them. The shapes come from the train-mode forward (the auxiliary
head included) traced with every psp_jax.models.ops rewrite off, so each is one convolution;
ours is then `jax.vjp` of psp_jax.models.ops.conv_general_dilated (the rewrites as the layers
get them, listed per shape), compiled and traced as the train steps are (psp_jax/xla_cpu.py's
compiler options, ops.xla_own_convolutions and ops.tap_dot_grads_pay where they apply), torch is `F.conv2d` and
`torch.autograd.grad`. The gradients of both sides are checked against each other before timing.
Cap both sides to AVX2 on an AVX-512 machine with
  XLA_FLAGS=--xla_cpu_max_isa=AVX2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python ...
"""
from __future__ import annotations

import argparse
import collections
import functools
import os
import pathlib
import shlex
import statistics
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _size(text: str) -> tuple[int, int]:
  """'473' -> (473, 473); '968x648' -> (648, 968) as (H, W) from W x H."""
  if "x" in text:
    w, h = (int(v) for v in text.split("x"))
    return h, w
  return int(text), int(text)


def model_forward(name: str, size: tuple[int, int], batch: int = 1, train: bool = False):
  """(fn, args) whose jaxpr holds the model's inference (or train-mode) convolutions."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from psp_jax.models.build import build_model  # pylint: disable=import-outside-toplevel
  h, w = size
  if name.startswith("pspnet"):
    depth = int(name[len("pspnet"):] or 50)
    model = build_model({"name": "pspnet", "num_classes": 150, "depth": depth})
    x = jnp.zeros((batch, h, w, 3), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    if train:
      return (lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"],
                                       rngs={"dropout": jax.random.key(0)})), (variables, x)
    return (lambda v, x: model.apply(v, x, train=False)), (variables, x)
  if name == "refine":
    model = build_model({"name": "cascadepsp"})
    x = jnp.zeros((batch, h, w, 3), jnp.float32)
    seg = jnp.zeros((batch, h, w, 1), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, seg, train=False))
    if train:
      return (lambda v, x, s: model.apply(v, x, s, train=True, mutable=["batch_stats"])), (variables, x, seg)
    return (lambda v, x, s: model.apply(v, x, s, train=False)), (variables, x, seg)
  raise SystemExit(f"--model {name!r}: expected pspnet50, pspnet101 or refine")


def conv_shapes(fn, args) -> collections.Counter:
  """Counter of (lhs shape, rhs shape, strides, padding, lhs/rhs dilation, groups, dimension numbers)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.extend.core  # pylint: disable=import-outside-toplevel
  found: collections.Counter = collections.Counter()

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "conv_general_dilated":
        p = eqn.params
        dn = p["dimension_numbers"]
        found[(tuple(eqn.invars[0].aval.shape), tuple(eqn.invars[1].aval.shape),
               tuple(p["window_strides"]), tuple(tuple(x) for x in p["padding"]),
               tuple(p["lhs_dilation"]), tuple(p["rhs_dilation"]), p["feature_group_count"],
               (dn.lhs_spec, dn.rhs_spec, dn.out_spec))] += 1
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        walk(sub)

  walk(jax.make_jaxpr(fn)(*args).jaxpr)
  return found


def to_nhwc(key):
  """The same convolution in NHWC/HWIO: (N, H, W, C), (kh, kw, Cin/groups, Cout)."""
  lhs, rhs, strides, padding, lhs_dil, rhs_dil, groups, (ls, rs, _) = key
  n, c, h, w = (lhs[i] for i in ls)           # ls: positions of N, C, spatial...
  o, i, kh, kw = (rhs[j] for j in rs)        # rs: positions of O, I, spatial...
  return (n, h, w, c), (kh, kw, i, o), strides, padding, lhs_dil, rhs_dil, groups


def gflop(nhwc) -> float:
  (n, h, w, c), (kh, kw, i, o), strides, padding, _, dil, groups = nhwc
  ho = (h + sum(padding[0]) - dil[0] * (kh - 1) - 1) // strides[0] + 1
  wo = (w + sum(padding[1]) - dil[1] * (kw - 1) - 1) // strides[1] + 1
  return 2.0 * n * ho * wo * o * kh * kw * i / 1e9


def space_to_batch_conv(x, k, padding, d: int):
  """A stride-1 convolution of dilation d as d*d undilated ones on the input's phases (output
  row q*d + r reads padded rows (q + j)*d + r: phase r, rows q..q+kh-1), interleaved back."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  n, h, w, c = x.shape
  kh, kw, _, o = k.shape
  ho, wo = h + sum(padding[0]) - d * (kh - 1), w + sum(padding[1]) - d * (kw - 1)
  hp, wp = -(-(h + sum(padding[0])) // d) * d, -(-(w + sum(padding[1])) // d) * d
  x = jnp.pad(x, ((0, 0), (padding[0][0], hp - h - padding[0][0]),
                  (padding[1][0], wp - w - padding[1][0]), (0, 0)))
  x = x.reshape(n, hp // d, d, wp // d, d, c).transpose(2, 4, 0, 1, 3, 5)
  y = jax.lax.conv_general_dilated(x.reshape(d * d * n, hp // d, wp // d, c), k, (1, 1), "VALID",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  qh, qw = y.shape[1], y.shape[2]
  y = y.reshape(d, d, n, qh, qw, o).transpose(2, 3, 0, 4, 1, 5).reshape(n, qh * d, qw * d, o)
  return y[:, :ho, :wo]


def rewrites(nhwc) -> dict:
  """{name: jitted fn(x, k)} computing the same convolution as `nhwc` another way."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  (_, _, _, c), (kh, kw, i, o), strides, padding, _, dil, groups = nhwc
  out = {}
  if groups != 1:
    return out
  conv = lambda a, b: jax.lax.conv_general_dilated(  # noqa: E731
      a, b, strides, padding, rhs_dilation=dil, dimension_numbers=("NHWC", "HWIO", "NHWC"))
  for k in (2, 4, 8):
    if c >= 1024 and c % k == 0:
      step = c // k
      out[f"split{k}"] = jax.jit(lambda a, b, step=step, k=k: sum(
          conv(a[..., j * step:(j + 1) * step], b[:, :, j * step:(j + 1) * step]) for j in range(k)))
  d = dil[0]
  if d > 1 and dil == (d, d) and strides == (1, 1):
    out["s2b"] = jax.jit(lambda a, b: space_to_batch_conv(a, b, padding, d))
  if (kh, kw) == (1, 1) and all(p == (0, 0) for p in padding):
    sh, sw = strides
    out["dot"] = jax.jit(lambda a, b: jnp.einsum("nhwc,co->nhwo", a[:, ::sh, ::sw], b[0, 0]))
  return out


def random_operands(nhwc):
  """(x, kernel, rng): a convolution's random NHWC input and HWIO kernel (seed 0), and the
  generator for further draws; transposed convolutions are refused."""
  (n, h, w, c), (kh, kw, i, o), _, _, lhs_dil, _, _ = nhwc
  if any(d != 1 for d in lhs_dil):
    raise ValueError("transposed convolutions (lhs dilation) are not benchmarked")
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, h, w, c)).astype(np.float32)
  return x, (rng.normal(size=(kh, kw, i, o)) * 0.05).astype(np.float32), rng


def median_time(call, inner: int) -> float:
  """The median seconds of `inner` calls of `call()`."""
  ts = []
  for _ in range(inner):
    t = time.perf_counter()
    call()
    ts.append(time.perf_counter() - t)
  return statistics.median(ts)


def timers(nhwc, inner: int, with_rewrites: bool = False):
  """(ours(), torch_(), {rewrite: fn()}) each returning the median seconds of `inner` calls."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  _, _, strides, padding, _, dil, groups = nhwc
  x, k, _ = random_operands(nhwc)
  conv = jax.jit(lambda a, b: jax.lax.conv_general_dilated(
      a, b, strides, padding, rhs_dilation=dil, feature_group_count=groups,
      dimension_numbers=("NHWC", "HWIO", "NHWC")))
  xj, kj = jnp.asarray(x), jnp.asarray(k)
  conv(xj, kj).block_until_ready()
  xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  kt = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1)))
  symmetric = all(p[0] == p[1] for p in padding)
  if not symmetric:  # torch pads both sides alike: pad the input explicitly
    pad = (padding[1][0], padding[1][1], padding[0][0], padding[0][1])
    torch_conv = lambda: torch.nn.functional.conv2d(  # noqa: E731
        torch.nn.functional.pad(xt, pad), kt, stride=strides, dilation=dil, groups=groups)
  else:
    torch_conv = lambda: torch.nn.functional.conv2d(  # noqa: E731
        xt, kt, stride=strides, padding=(padding[0][0], padding[1][0]), dilation=dil, groups=groups)
  with torch.inference_mode():
    ref = torch_conv().numpy().transpose(0, 2, 3, 1)
  ours = np.asarray(conv(xj, kj))
  if ours.shape != ref.shape or not np.allclose(ours, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max()):
    raise AssertionError(f"{nhwc}: ours and torch disagree ({ours.shape} vs {ref.shape})")
  median = functools.partial(median_time, inner=inner)

  def timed(fn):
    return lambda: median(lambda: fn(xj, kj).block_until_ready())

  def time_torch():
    with torch.inference_mode():
      return median(torch_conv)

  time_ours = timed(conv)

  variants = {}
  for name, fn in (rewrites(nhwc) if with_rewrites else {}).items():
    got = np.asarray(fn(xj, kj))
    if got.shape != ours.shape or not np.allclose(got, ours, rtol=1e-3, atol=1e-4 * np.abs(ours).max()):
      raise AssertionError(f"{nhwc}: rewrite {name} disagrees with the plain convolution")
    variants[name] = timed(fn)
  return time_ours, time_torch, variants


def grad_timers(nhwc, inner: int, first: bool, compiler_options=None):
  """({phase: (ours(), torch_())}, rewrite name) for one convolution, each timer returning the
  median seconds of `inner` calls. Phases: 'all' (forward + dW + dx, as one jitted vjp and one
  autograd call), 'fwd', 'dx', 'dW' (each alone). first: the input is the image (no dx).
  compiler_options: of every jit here (the train steps': psp_jax.xla_cpu)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from psp_jax.models import ops  # pylint: disable=import-outside-toplevel
  _, _, strides, padding, _, dil, groups = nhwc
  jit = functools.partial(jax.jit, compiler_options=compiler_options or None)
  x, k, rng = random_operands(nhwc)

  def conv(a, b):
    return ops.conv_general_dilated(a, b, strides, padding, rhs_dilation=dil, feature_group_count=groups,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))

  out_shape = jax.eval_shape(conv, jax.ShapeDtypeStruct(x.shape, x.dtype), jax.ShapeDtypeStruct(k.shape, k.dtype)).shape
  dy = rng.normal(size=out_shape).astype(np.float32)
  if first:
    step = jit(lambda a, b, g: (lambda yv: (yv[0], yv[1](g)[0]))(jax.vjp(lambda bb: conv(a, bb), b)))
  else:
    step = jit(lambda a, b, g: (lambda yv: (yv[0],) + yv[1](g))(jax.vjp(conv, a, b)))
  xj, kj, gj = jnp.asarray(x), jnp.asarray(k), jnp.asarray(dy)
  ours = [np.asarray(v) for v in step(xj, kj, gj)]
  xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).requires_grad_(not first)
  kt = torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1))).requires_grad_(True)
  gt = torch.from_numpy(np.ascontiguousarray(dy.transpose(0, 3, 1, 2)))
  pad = (padding[1][0], padding[1][1], padding[0][0], padding[0][1])
  symmetric = all(p[0] == p[1] for p in padding)

  def torch_step():
    a = xt if symmetric else torch.nn.functional.pad(xt, pad)
    y = torch.nn.functional.conv2d(a, kt, stride=strides, dilation=dil, groups=groups,
                                   padding=(padding[0][0], padding[1][0]) if symmetric else 0)
    grads = torch.autograd.grad(y, (kt,) if first else (kt, xt), gt)
    return (y,) + grads

  ref = torch_step()
  pairs = [(ours[0], ref[0].detach().numpy().transpose(0, 2, 3, 1), "y"),
           (ours[-1] if first else ours[2], ref[1].numpy().transpose(2, 3, 1, 0), "dW")]
  if not first:
    pairs.append((ours[1], ref[2].numpy().transpose(0, 2, 3, 1), "dx"))
  for a, b, what in pairs:
    if a.shape != b.shape or not np.allclose(a, b, rtol=1e-3, atol=1e-3 * np.abs(b).max()):
      raise AssertionError(f"{nhwc}: ours and torch disagree on {what}")
  timed = functools.partial(median_time, inner=inner)

  fwd = jit(conv)
  dx = jit(lambda a, b, g: jax.vjp(lambda aa: conv(aa, b), a)[1](g)[0])
  dw = jit(lambda a, b, g: jax.vjp(lambda bb: conv(a, bb), b)[1](g)[0])
  xp = xt.detach() if symmetric else torch.nn.functional.pad(xt.detach(), pad)
  opts = dict(stride=strides, dilation=dil, groups=groups,
              padding=(padding[0][0], padding[1][0]) if symmetric else 0)
  kd = kt.detach()

  def torch_fwd():
    with torch.no_grad():
      return torch.nn.functional.conv2d(xp, kd, **opts)

  phases = {
      "all": (lambda: timed(lambda: jax.block_until_ready(step(xj, kj, gj))),
              lambda: timed(torch_step)),
      "fwd": (lambda: timed(lambda: jax.block_until_ready(fwd(xj, kj))),
              lambda: timed(torch_fwd)),
      "dW": (lambda: timed(lambda: jax.block_until_ready(dw(xj, kj, gj))),
             lambda: timed(lambda: torch.nn.grad.conv2d_weight(xp, kd.shape, gt, **opts))),
  }
  if not first:
    phases["dx"] = (lambda: timed(lambda: jax.block_until_ready(dx(xj, kj, gj))),
                    lambda: timed(lambda: torch.nn.grad.conv2d_input(xp.shape, kd, gt, **opts)))
  jax.block_until_ready((fwd(xj, kj), dw(xj, kj, gj)) + ((dx(xj, kj, gj),) if not first else ()))  # compiled
  return phases, rewrite_of(nhwc)


def rewrite_of(nhwc) -> str:
  """Which psp_jax.models.ops rewrite a layer's convolution of this shape gets ('–': none)."""
  from psp_jax.models import ops  # pylint: disable=import-outside-toplevel
  (_, _, _, c), (kh, kw, i, o), strides, padding, lhs_dil, _, groups = nhwc
  if groups != 1 or any(d != 1 for d in lhs_dil):
    return "–"
  weights = i * o
  if (kh, kw) == (1, 1) and all(tuple(p) == (0, 0) for p in padding):
    if ops.POINTWISE_DOT_MIN_WEIGHTS and weights >= ops.POINTWISE_DOT_MIN_WEIGHTS:
      return "dot"
    if ops.POINTWISE_DOT_GRAD_MIN_WEIGHTS and weights >= ops.POINTWISE_DOT_GRAD_MIN_WEIGHTS:
      return "dot grads"
    return "–"
  names = []
  if ops.CONV_SPLIT_MIN_CHANNELS and c >= ops.CONV_SPLIT_MIN_CHANNELS and c % ops.CONV_SPLIT_CHUNK == 0:
    names.append(f"split {c // ops.CONV_SPLIT_CHUNK}")
  if ops.tap_dot_grads_on() and weights >= ops.TAP_DOT_GRAD_MIN_WEIGHTS and tuple(strides) == (1, 1):
    names.append("tap-dot dW")
  return " + ".join(names) or "–"


def cpu_header() -> str:
  from psp_jax.reproducibility import cpu_description  # pylint: disable=import-outside-toplevel
  model, flags = cpu_description()
  return f"{model}, {os.cpu_count()} cores; vector flags: {flags}"


def describe(nhwc) -> str:
  (n, h, w, c), (kh, kw, i, o), strides, padding, _, dil, groups = nhwc
  extra = []
  if strides != (1, 1):
    extra.append(f"stride {strides[0]}")
  if dil != (1, 1):
    extra.append(f"dilation {dil[0]}")
  if groups != 1:
    extra.append(f"groups {groups}")
  return f"{kh}x{kw} {c}->{o} at {h}x{w}" + (f" ({', '.join(extra)})" if extra else "")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--model", default="pspnet50", help="pspnet50 | pspnet101 | refine")
  p.add_argument("--size", default=None,
                 help="input side or WxH (default: 473; refine 904x608, the global step's padded "
                      "input for the 968x648 sample at L=900)")
  p.add_argument("--pairs", type=int, default=5, help="interleaved (ours, torch) pairs per shape")
  p.add_argument("--inner", type=int, default=3, help="calls per side per pair (median)")
  p.add_argument("--limit", type=int, default=0, help="only the N most expensive shapes (0: all)")
  p.add_argument("--rewrites", action="store_true",
                 help="also time each shape's rewrites (split<k>, s2b, dot) in the same pairs")
  p.add_argument("--grad", action="store_true",
                 help="time forward + gradients (dx, dW) of each shape, as the train step runs them")
  p.add_argument("--batch", type=int, default=None, help="batch (default 1; 2 with --grad)")
  p.add_argument("--output", default=None, help="Markdown report (default: print only)")
  args = p.parse_args(argv)
  if args.grad and args.rewrites:
    p.error("--rewrites times forward rewrites only; it does not combine with --grad")
  import jax  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from psp_jax import xla_cpu  # pylint: disable=import-outside-toplevel
  from psp_jax.models import ops  # pylint: disable=import-outside-toplevel
  train_options = xla_cpu.train_compiler_options(jax.default_backend()) if args.grad else {}
  own = args.grad and xla_cpu.train_convolutions_are_xla_own(jax.default_backend())
  tap_dots = not args.grad or xla_cpu.tap_dot_grads_pay(jax.default_backend())
  size = _size(args.size or ("904x608" if args.model == "refine" else "233" if args.grad else "473"))
  batch = args.batch or (2 if args.grad else 1)
  fn, fargs = model_forward(args.model, size, batch, train=args.grad)
  saved = {name: getattr(ops, name) for name in ops.SWITCHES}
  if args.grad:  # every convolution as one conv_general_dilated in the jaxpr
    for name in ops.SWITCHES:
      setattr(ops, name, 0)
  try:
    found = conv_shapes(fn, fargs)
  finally:
    for name, value in saved.items():
      setattr(ops, name, value)
  shapes = collections.Counter()
  for key, count in found.items():
    shapes[to_nhwc(key)] += count
  first_input = fargs[1].shape[-1] + (fargs[2].shape[-1] if len(fargs) > 2 else 0)
  todo = sorted(shapes, key=lambda s: -gflop(s) * shapes[s])
  if args.limit:
    todo = todo[:args.limit]
  rows, phase_rows = [], {}
  for j, nhwc in enumerate(todo):
    if args.grad:
      with ops.xla_own_convolutions(own), ops.tap_dot_grads_pay(tap_dots):  # as the train steps
        phases, rewrite = grad_timers(nhwc, args.inner, first=nhwc[0][3] == first_input,
                                      compiler_options=train_options)
      ours, theirs = phases.pop("all")
      variants = {}
    else:
      ours, theirs, variants = timers(nhwc, args.inner, args.rewrites)
      phases, rewrite = {}, None
    pairs, phase_pairs = [], collections.defaultdict(list)
    for _ in range(args.pairs):
      a, b = ours(), theirs()
      pairs.append((a, b, {name: fn() for name, fn in variants.items()}))
      for name, (po, pt) in phases.items():
        phase_pairs[name].append((po(), pt()))
    phase_ratio = {name: statistics.median(b / a for a, b in v) for name, v in phase_pairs.items()}
    phase_ms = {name: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v))
                for name, v in phase_pairs.items()}
    o = statistics.median(a for a, _, _ in pairs)
    t = statistics.median(b for _, b, _ in pairs)
    ratio = statistics.median(b / a for a, b, _ in pairs)
    gains = {name: statistics.median(a / v[name] for a, _, v in pairs) for name in variants}
    best = max(gains.items(), key=lambda kv: kv[1]) if gains else None
    rows.append((nhwc, shapes[nhwc], o, t, ratio, best if rewrite is None else rewrite))
    phase_rows[nhwc] = (phase_ms, phase_ratio)
    extra = f", best rewrite {best[0]} ours/rewrite {best[1]:.2f}" if best else ""
    extra += f", rewrite: {rewrite}" if rewrite is not None else ""
    extra += "".join(f", {name} {1e3 * phase_ms[name][0]:.1f}/{1e3 * phase_ms[name][1]:.1f} ms "
                     f"({phase_ratio[name]:.2f})" for name in phase_ratio)
    print(f"[{j + 1}/{len(todo)}] {describe(nhwc)} x{shapes[nhwc]}: ours {1e3 * o:.2f} ms, "
          f"torch {1e3 * t:.2f} ms, torch/ours {ratio:.2f}{extra}", flush=True)
  total_ours = sum(c * o for _, c, o, _, _, _ in rows)
  total_torch = sum(c * t for _, c, _, t, _, _ in rows)
  # with each shape's best rewrite where it is faster (a shape-by-shape choice)
  total_best = (0.0 if args.grad else
                sum(c * (o / best[1] if best and best[1] > 1 else o) for _, c, o, _, _, best in rows))

  def work(nhwc) -> float:  # GFLOP per call: forward, plus dW and dx with --grad
    if not args.grad:
      return gflop(nhwc)
    return gflop(nhwc) * (2 if nhwc[0][3] == first_input else 3)
  command = "python experiments/benchmark_layers.py " + shlex.join(argv if argv is not None else sys.argv[1:])
  h, w = size
  title = ("forward and gradients of the convolutions" if args.grad else "Convolutions")
  lines = [f"# {title[0].upper() + title[1:]} of {args.model} at {batch}x{w}x{h}: ours (XLA) vs PyTorch, interleaved", "",
           f"Made by: `{command}`", "",
           f"Machine: {cpu_header()}. jax {jax.__version__}, torch {torch.__version__} "
           f"({torch.get_num_threads()} threads); XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}, "
           f"ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '')!r}, "
           f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '')!r}" +
           (f"; compiled as the train steps are: {train_options or 'XLA default'}" if args.grad else "")
           + ".",
           f"Each shape: {args.pairs} pairs (ours, then torch), each side the median of {args.inner} "
           "calls; ratio = median over pairs of torch/ours (> 1: ours faster)." +
           (" GFLOP counts the forward, dW and dx (dW only for the first convolution); 'our rewrite' "
            "is what psp_jax.models.ops gives the layer." if args.grad else ""), "",
           "| convolution | count | GFLOP | ours ms | torch ms | ours GFLOP/s | torch GFLOP/s | torch/ours | share of our time | "
           + ("our rewrite | fwd ms ours / torch (ratio) | dx | dW |" if args.grad else "best rewrite (ours/rewrite) |"),
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|" + ("---|---|---|" if args.grad else "")]
  for nhwc, count, o, t, ratio, best in rows:
    g = work(nhwc)
    if args.grad:
      rewrite = best
    else:
      rewrite = f"{best[0]} ({best[1]:.2f})" if best else "–"
    line = (f"| {describe(nhwc)} | {count} | {g:.3f} | {1e3 * o:.2f} | {1e3 * t:.2f} | "
            f"{g / o:.0f} | {g / t:.0f} | {ratio:.2f} | {100 * count * o / total_ours:.1f}% | "
            f"{rewrite} |")
    if args.grad:
      ms, pr = phase_rows[nhwc]
      line += "".join(f" {1e3 * ms[k][0]:.1f} / {1e3 * ms[k][1]:.1f} ({pr[k]:.2f}) |" if k in pr else " – |"
                      for k in ("fwd", "dx", "dW"))
    lines.append(line)
  lines += ["", f"All convolutions (count x median): ours {total_ours:.3f} s, torch {total_torch:.3f} s, "
                f"torch/ours {total_torch / total_ours:.2f}; "
                f"{sum(work(s) * c for s, c, *_ in rows):.1f} GFLOP."]
  if args.grad:
    for k in ("fwd", "dx", "dW"):
      ours_k = sum(c * phase_rows[s][0][k][0] for s, c, *_ in rows if k in phase_rows[s][0])
      torch_k = sum(c * phase_rows[s][0][k][1] for s, c, *_ in rows if k in phase_rows[s][0])
      lines.append(f"{k} alone, all convolutions: ours {ours_k:.3f} s, torch {torch_k:.3f} s, torch/ours "
                   f"{torch_k / ours_k:.2f}.")
  if args.rewrites:
    lines += [f"With each shape's best rewrite where it is faster: ours {total_best:.3f} s, "
              f"torch/ours {total_torch / total_best:.2f} (convolutions only; '–': no rewrite applies)."]
  text = "\n".join(lines) + "\n"
  print(text)
  if args.output:
    pathlib.Path(args.output).write_text(text)
    print(f"wrote {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
