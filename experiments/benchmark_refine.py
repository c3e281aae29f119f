"""Time and peak memory of CascadePSP refinement (psp_jax.Refiner) on this machine.

  python experiments/benchmark_refine.py                       # sample 968x648 + 3840x2160, fast + full
  python experiments/benchmark_refine.py --sizes native --modes fast --repeats 2
  python experiments/benchmark_refine.py --official /path/to/segmentation_refinement_wheel_dir
  python experiments/benchmark_refine.py --official DIR --bucket official   # bit-level parity
  python experiments/benchmark_refine.py --sizes native --modes fast --repeats 1 --compile-cache C  # x2

The model is the full-width ResNet-50 RefinementModule with random weights (PyTorch's default
initialisation statistics: conv U(+-1/sqrt(fan_in)), BN scale 1, shift 0, mean 0, var 1),
saved to a temporary checkpoint. Each (size, mode) runs in a fresh subprocess, so the peak
resident memory (ru_maxrss) is that run's alone; it reports the checkpoint load, the first
refine (compilation included: what one `psp-jax refine` call pays) and the following ones
(warm), and how many local-step windows ran (random weights decide which are skipped).

--official DIR --pairs N: also run both in one process (warm) in N interleaved pairs and
report the median over pairs of official time / our time, as experiments/benchmark_layers.py
does per convolution (> 1: ours is faster).

--official DIR: also time the authors' code (the segmentation-refinement package, e.g. its
wheel unpacked into DIR; torch needed, torchvision not) in a fresh subprocess with the SAME
weights (the checkpoint is then made by converting that package's freshly initialised model),
and report the largest difference of the probabilities. Nothing is downloaded.

--windows image: random weights saturate the global output, so the skip rule skips every
local window and "full" mode measures the global step only. With this option final_11 and
final_21 are set so that the output follows the image instead (s1 = 10 relu(red) - 5, red the
normalised red channel: foreground where the red value exceeds ~153): windows whose foreground
is between 10% and 90% run, as windows along object boundaries do with trained weights, and
the local step is timed too (the same weights in both implementations).

3840x2160 inputs are synthesised by resizing the sample (bicubic image, nearest mask).
CPU timings on a shared machine vary with the other users' load: compare runs made together.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "refine_samples"


def _load_inputs(image_path: str, mask_path: str, size: str):
  import cv2
  import numpy as np
  from PIL import Image
  image = np.asarray(Image.open(image_path).convert("RGB"))
  mask = np.asarray(Image.open(mask_path).convert("L"))
  if size != "native":
    w, h = (int(v) for v in size.lower().split("x"))
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_CUBIC)
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
  return image, mask


def _maxrss_gb() -> float:
  import resource
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB


# ----------------------------------------------------------------------------- workers

def _repeat(fn, n: int):
  """(seconds of each of n calls of fn, the last result)."""
  times, out = [], None
  for _ in range(n):
    t = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - t)
  return times, out


def _jax_refine(args):
  """(load seconds, refine() -> RefineResult) of psp_jax's Refiner on the benchmark's input."""
  if args.compile_cache:  # as the psp-jax commands do (psp_jax.compile_cache)
    from psp_jax import compile_cache
    compile_cache.enable({compile_cache.ENV: args.compile_cache})
  t0 = time.perf_counter()
  from psp_jax.refine.api import Refiner
  bucket = None if args.bucket is None else (args.bucket if args.bucket == "official"
                                              else int(args.bucket))
  refiner = Refiner(args.checkpoint, dtype=args.dtype, bucket=bucket)
  load_s = time.perf_counter() - t0
  image, mask = _load_inputs(args.image, args.mask, args.size)
  return load_s, lambda: refiner.refine_result(image, mask, fast=args.mode == "fast", L=args.L)


def worker_jax(args) -> dict:
  import numpy as np
  load_s, refine = _jax_refine(args)
  times, res = _repeat(refine, args.repeats)
  if args.save_prob:
    np.save(args.save_prob, res.probability)
  info = res.info
  h, w = res.probability.shape[:2]
  return {"impl": "psp_jax", "size": f"{w}x{h}", "mode": args.mode,
          "L": args.L, "load_s": load_s, "first_s": times[0], "warm_s": times[1:],
          "windows_run": info.windows_run, "windows_total": info.windows_total,
          "global_canvas": info.global_canvas, "window_canvas": info.window_canvas,
          "maxrss_gb": _maxrss_gb()}


def _official_modules(path: str):
  """The package's eval helpers and model, without its __init__ (which needs torchvision)."""
  import types
  pkg_dir = pathlib.Path(path) / "segmentation_refinement"
  if not pkg_dir.is_dir():
    raise SystemExit(f"--official {path}: no segmentation_refinement/ package inside")
  sys.path.insert(0, str(pathlib.Path(path)))
  pkg = types.ModuleType("segmentation_refinement")
  pkg.__path__ = [str(pkg_dir)]
  sys.modules["segmentation_refinement"] = pkg
  from segmentation_refinement import eval_helper
  from segmentation_refinement.models.psp import pspnet
  return eval_helper, pspnet


def _official_refine(args):
  """(load seconds, refine() -> (1, 1, H, W) probabilities) of the authors' code."""
  import numpy as np
  import torch
  torch.set_num_threads(args.threads)
  eval_helper, pspnet = _official_modules(args.official)
  t0 = time.perf_counter()
  net = pspnet.RefinementModule()
  sd = torch.load(args.torch_weights)
  net.load_state_dict({k[len("module."):]: v for k, v in sd.items()})
  net.eval()
  load_s = time.perf_counter() - t0
  image, mask = _load_inputs(args.image, args.mask, args.size)
  from psp_jax.constants import IMAGENET_MEAN, IMAGENET_STD
  mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)

  def refine():
    # the package's Refiner.refine: ToTensor + Normalize, mask > 127 to +-1
    im = torch.from_numpy(((image / 255.0 - mean) / std).astype(np.float32).transpose(2, 0, 1))[None]
    seg = torch.from_numpy(((mask > 127).astype(np.float32) - 0.5) / 0.5)[None, None]
    with torch.no_grad():
      if args.mode == "fast":
        return eval_helper.process_im_single_pass(net, im, seg, args.L)
      return eval_helper.process_high_res_im(net, im, seg, args.L)
  return load_s, refine


def worker_official(args) -> dict:
  import numpy as np
  load_s, refine = _official_refine(args)
  times, out = _repeat(refine, args.repeats)
  if args.save_prob:
    np.save(args.save_prob, out[0, 0].numpy())
  h, w = out.shape[2:]
  return {"impl": "official", "size": f"{w}x{h}", "mode": args.mode,
          "L": args.L, "load_s": load_s, "first_s": times[0], "warm_s": times[1:],
          "maxrss_gb": _maxrss_gb()}


def worker_pair(args) -> dict:
  """Both implementations in one process, warm, timed in --pairs interleaved pairs (ours, then
  the official): the median over pairs of official time / our time (> 1: ours is faster)."""
  import numpy as np
  _, ours = _jax_refine(args)
  _, theirs = _official_refine(args)
  res, out = ours(), theirs()  # compile / warm up
  prob_jax, prob_official = res.probability, out[0, 0].numpy()
  pairs = []
  for _ in range(args.pairs):
    t = time.perf_counter()
    ours()
    a = time.perf_counter() - t
    t = time.perf_counter()
    theirs()
    pairs.append((a, time.perf_counter() - t))
  ratios = [b / a for a, b in pairs]
  h, w = prob_jax.shape[:2]
  return {"impl": "pair", "size": f"{w}x{h}", "mode": args.mode, "L": args.L,
          "ours_s": [a for a, _ in pairs], "official_s": [b for _, b in pairs],
          "ratio_median": float(np.median(ratios)), "ratio_min": min(ratios), "ratio_max": max(ratios),
          "max_abs_dp": float(np.abs(prob_jax - prob_official).max()),
          "windows_run": res.info.windows_run, "windows_total": res.info.windows_total}


# ----------------------------------------------------------------------------- checkpoints

def _follow_image(final_11: "np.ndarray", final_11_bias, final_21, final_21_bias,
                  in_axis: int, out_axis: int) -> None:
  """In place: hidden unit 0 of final_11 = relu(red channel of the image), s1 = 10 unit0 - 5.
  final_11 sees [decoder features (C), image (3)], so the red channel is input C."""
  c = final_11.shape[in_axis] - 3
  for a in (final_11, final_11_bias, final_21, final_21_bias):
    a[...] = 0
  idx = [0] * final_11.ndim
  idx[in_axis], idx[out_axis] = c, 0
  final_11[tuple(idx)] = 1.0
  final_21.reshape(-1)[0] = 10.0
  final_21_bias[...] = -5.0


def make_checkpoint(directory: pathlib.Path, official: str | None, windows: str = "random"
                    ) -> tuple[str, str | None]:
  """(psp_jax checkpoint, torch state_dict or None) of a randomly initialised full model
  (windows='image': with the output following the image, see the module docstring)."""
  import numpy as np
  ckpt = directory / "ckpt"
  if official:
    import torch
    _, pspnet = _official_modules(official)
    torch.manual_seed(0)
    net = pspnet.RefinementModule().eval()
    if windows == "image":
      with torch.no_grad():
        arrays = [getattr(getattr(net, layer), kind).detach().numpy()
                  for layer in ("final_11", "final_21") for kind in ("weight", "bias")]
        _follow_image(*arrays, 1, 0)
    weights = directory / "official_random.pth"
    torch.save({"module." + k: v for k, v in net.state_dict().items()}, weights)
    from psp_jax.convert.torch_checkpoint import convert_checkpoint
    convert_checkpoint(weights, "cascadepsp", ckpt)
    return str(ckpt), str(weights)
  import jax
  from psp_jax import checkpoint
  from psp_jax.models.refinement import RefinementModule
  model = RefinementModule()
  rng = np.random.default_rng(0)

  def draw(path, s):
    name = path[-1].key
    if name in ("var", "scale"):
      return np.ones(s.shape, s.dtype)
    if name == "mean":
      return np.zeros(s.shape, s.dtype)
    if name == "bias":  # BN shifts 0; conv biases (small in PyTorch) 0 too
      return np.zeros(s.shape, s.dtype)
    bound = 1.0 / np.sqrt(np.prod(s.shape[:-1]))
    return rng.uniform(-bound, bound, s.shape).astype(s.dtype)

  variables = jax.tree_util.tree_map_with_path(
      draw, checkpoint.init_variables(model, abstract=True))
  if windows == "image":
    p = variables["params"]
    _follow_image(p["final_11"]["kernel"], p["final_11"]["bias"], p["final_21"]["kernel"],
                  p["final_21"]["bias"], 2, 3)
  checkpoint.save_checkpoint(ckpt, variables, {"format_version": 1,
                                               "model": checkpoint.model_config(model),
                                               "source": {"what": "random weights (benchmark)"}})
  return str(ckpt), None


# ----------------------------------------------------------------------------- driver

def _parse_ops(items: list[str]) -> dict[str, int]:
  """--ops NAME=INT items -> {NAME: INT}; a name psp_jax.models.ops does not define is refused."""
  from psp_jax.models import ops  # pylint: disable=import-outside-toplevel
  try:
    return ops.parse_switches(items, "--ops")
  except ValueError as e:
    raise SystemExit(str(e)) from None


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--image", default=str(SAMPLES / "big_sample_image.jpg"))
  parser.add_argument("--mask", default=str(SAMPLES / "big_sample_mask.jpg"))
  parser.add_argument("--sizes", default="native,3840x2160", help="comma list: native or WxH")
  parser.add_argument("--modes", default="fast,full", help="comma list of fast, full")
  parser.add_argument("--L", type=int, default=900)
  parser.add_argument("--repeats", type=int, default=2, help="refines per subprocess (1st compiles); 0: only the --pairs run")
  parser.add_argument("--dtype", default=None, help="psp_jax compute dtype (bfloat16 on GPUs)")
  parser.add_argument("--bucket", default=None, help="psp_jax bucket (default: the Refiner's)")
  parser.add_argument("--official", default=None, help="dir holding segmentation_refinement/")
  parser.add_argument("--threads", type=int, default=2, help="torch threads for --official")
  parser.add_argument("--windows", choices=["random", "image"], default="random",
                      help="'image': make the output follow the image so local windows run "
                           "(module docstring)")
  parser.add_argument("--compile-cache", default=None,
                      help="psp_jax persistent compilation cache folder (run twice: the second "
                           "run's first refine loads the compiled programs)")
  parser.add_argument("--pairs", type=int, default=0,
                      help="with --official: also time both in one process, warm, in N "
                           "interleaved pairs, and report the median of official/ours")
  parser.add_argument("--out", default=None, help="write the results as JSON here")
  parser.add_argument("--ops", action="append", default=[], metavar="NAME=INT",
                      help="set a rewrite switch of psp_jax.models.ops in our workers, e.g. "
                           "--ops POINTWISE_DOT_MIN_WEIGHTS=0 (repeatable; the state before a "
                           "rewrite)")
  # worker mode (internal)
  parser.add_argument("--worker", choices=["jax", "official", "pair"], default=None,
                      help=argparse.SUPPRESS)
  parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
  parser.add_argument("--torch-weights", help=argparse.SUPPRESS)
  parser.add_argument("--size", help=argparse.SUPPRESS)
  parser.add_argument("--mode", help=argparse.SUPPRESS)
  parser.add_argument("--save-prob", help=argparse.SUPPRESS)
  args = parser.parse_args()
  switches = _parse_ops(args.ops)
  if args.worker:
    if switches and args.worker in ("jax", "pair"):
      sys.path.insert(0, str(ROOT))
      from psp_jax.models import ops  # pylint: disable=import-outside-toplevel
      for name, value in switches.items():
        setattr(ops, name, value)
    result = {"jax": worker_jax, "official": worker_official, "pair": worker_pair}[args.worker](args)
    print("RESULT " + json.dumps(result), flush=True)
    return

  sys.path.insert(0, str(ROOT))
  results = []
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    t = time.perf_counter()
    ckpt, weights = make_checkpoint(tmp, args.official, args.windows)
    print(f"random full-width checkpoint written in {time.perf_counter() - t:.1f} s", flush=True)
    impls = (["jax"] + (["official"] if args.official else [])) if args.repeats > 0 else []
    if args.official and args.pairs:
      impls.append("pair")
    if not impls:
      raise SystemExit("--repeats 0 runs nothing unless --official DIR --pairs N is given")
    for size in args.sizes.split(","):
      for mode in args.modes.split(","):
        probs = {}
        for impl in impls:
          if impl != "pair":
            probs[impl] = tmp / f"{impl}_{size}_{mode}.npy"
          cmd = [sys.executable, __file__, "--worker", impl, "--checkpoint", ckpt,
                 "--image", args.image, "--mask", args.mask, "--size", size, "--mode", mode,
                 "--L", str(args.L), "--repeats", str(args.repeats), "--threads", str(args.threads),
                 "--pairs", str(args.pairs)]
          if impl in probs:
            cmd += ["--save-prob", str(probs[impl])]
          if args.dtype:
            cmd += ["--dtype", args.dtype]
          if args.bucket:
            cmd += ["--bucket", args.bucket]
          for item in args.ops:
            cmd += ["--ops", item]
          if args.compile_cache and impl == "jax":
            cmd += ["--compile-cache", args.compile_cache]
          if impl in ("official", "pair"):
            cmd += ["--official", args.official, "--torch-weights", weights]
          env = dict(os.environ, PYTHONWARNINGS="ignore")
          proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
          line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
          if proc.returncode or not line:
            print(f"{impl} {size} {mode} failed:\n{proc.stderr[-3000:]}", flush=True)
            continue
          r = json.loads(line[0][len("RESULT "):])
          results.append(r)
          if impl == "pair":
            print(f"pairs    {r['size']:>9s} {mode:4s} L={args.L}: ours "
                  f"{', '.join(f'{x:.2f}' for x in r['ours_s'])} s; official "
                  f"{', '.join(f'{x:.2f}' for x in r['official_s'])} s; official/ours, median of "
                  f"{args.pairs} interleaved pairs: {r['ratio_median']:.2f} (range "
                  f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}; > 1: ours faster); max |dp| "
                  f"{r['max_abs_dp']:.1e}", flush=True)
            continue
          warm = f", warm {min(r['warm_s']):.1f} s" if r["warm_s"] else ""
          win = (f", windows {r['windows_run']}/{r['windows_total']}" if "windows_total" in r
                 and r["windows_total"] else "")
          print(f"{impl:8s} {r['size']:>9s} {mode:4s} L={args.L}: load {r['load_s']:.1f} s, "
                f"first refine {r['first_s']:.1f} s{warm}{win}, peak RSS {r['maxrss_gb']:.2f} GiB",
                flush=True)
        if len(probs) == 2 and all(p.exists() for p in probs.values()):
          import numpy as np
          a, b = np.load(probs["jax"]), np.load(probs["official"])
          du8 = np.abs((a * np.float32(255)).astype(np.uint8).astype(int)
                       - (b * np.float32(255)).astype(np.uint8).astype(int)).max()
          print(f"         psp_jax vs official: max |dp| {np.abs(a - b).max():.2e}, "
                f"max |d uint8| {du8}, binary masks differ at "
                f"{int(((a * 255).astype(np.uint8) > 127).__ne__((b * 255).astype(np.uint8) > 127).sum())} px",
                flush=True)
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
  main()
