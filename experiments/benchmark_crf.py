"""DenseCRF: speed and agreement of our JAX implementation, side by side in one run.

  .venv/bin/python experiments/benchmark_crf.py [--quick]

Prints the CPU model, then
  1. speed: seconds per image (after compilation; compile time apart) of the lattice CRF at
     360x480 with 11 classes (CamVid) and 500x375 with 21 classes (VOC-sized), 10 iterations,
     single images and a batch; pydensecrf on the same inputs when it is installed (the
     optional `crf` extra); the exact all-pairs CRF on 64x64;
  2. agreement, fast against exact, on CamVid crops (64x64) and on random images: max and mean
     |difference| of the normalised bilateral filter of the first Q, and after 10 iterations
     the mean |difference| of Q and the argmax agreement; the same against pydensecrf at full
     size;
  3. why the lattice and not a bilateral grid: the grid's size at the presets (counted).
Unaries are noisy one-hot logits of the CamVid labels (noise std 1): the CRF has work to do.
"""
from __future__ import annotations

import argparse
import pathlib
import time

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from psp_jax import cpu_info
from psp_jax.postprocess import PRESETS, mean_field
from psp_jax.postprocess.kernels import bilateral_features, exact_filter
from psp_jax.postprocess.permutohedral import build_lattice, lattice_filter

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"


def camvid(index: int):
  names = sorted((DATA / "val").glob("*.png"))
  image = cv2.imread(str(names[index]))[..., ::-1]
  label = cv2.imread(str(DATA / "valannot" / names[index].name), cv2.IMREAD_GRAYSCALE)
  return np.ascontiguousarray(image), label


def noisy_logits(label, k, seed=0):
  onehot = np.eye(k, dtype=np.float32)[np.minimum(label, k - 1)]
  return onehot + np.random.default_rng(seed).normal(0, 1.0, onehot.shape).astype(np.float32)


def timed(fn, repeats):
  t = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return first, float(np.median(times))


def pydensecrf_run(dcrf, image, logits, p):
  h, w, k = logits.shape
  z = logits - logits.max(-1, keepdims=True)
  unary = -(z - np.log(np.exp(z).sum(-1, keepdims=True)))
  norm = {"symmetric": dcrf.NORMALIZE_SYMMETRIC, "per_pixel": dcrf.NORMALIZE_AFTER}[p.normalisation]
  crf = dcrf.DenseCRF2D(w, h, k)
  crf.setUnaryEnergy(np.ascontiguousarray(unary.reshape(-1, k).T, dtype=np.float32))
  crf.addPairwiseGaussian(sxy=p.xy_pos, compat=p.w_pos, normalization=norm)
  crf.addPairwiseBilateral(sxy=p.xy_bi, srgb=p.rgb_bi, rgbim=np.ascontiguousarray(image),
                           compat=p.w_bi, normalization=norm)
  return np.array(crf.inference(p.iterations)).T.reshape(h, w, k)


def speed(args, dcrf):
  print("\n## 1. Speed (seconds per image; 10 iterations; median of repeats after the first call)")
  print("| size | classes | preset | ours first call (compile+run) | ours | ours batch of 4, per image "
        "| pydensecrf | pydensecrf / ours |")
  print("|---|---|---|---|---|---|---|---|")
  image, label = camvid(0)
  cases = [((360, 480), 11), ((375, 500), 21)]
  for (h, w), k in cases:
    im = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    lab = cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST)
    logits = noisy_logits(lab, k)
    for name in args.presets:
      p = PRESETS[name]
      first, ours = timed(lambda: mean_field(im[None], logits[None], p), args.repeats)
      if args.batch:
        ims, lgs = np.stack([im] * 4), np.stack([logits] * 4)
        _, b4 = timed(lambda: mean_field(ims, lgs, p), max(1, args.repeats // 2))
        b4 = f"{b4 / 4:.2f}"
      else:
        b4 = "-"
      if dcrf is not None:
        t = time.perf_counter()
        for _ in range(args.repeats):
          pydensecrf_run(dcrf, im, logits, p)
        theirs = (time.perf_counter() - t) / args.repeats
        cmp = f"{theirs:.2f} | {theirs / ours:.2f}"
      else:
        cmp = "not installed | -"
      print(f"| {h}x{w} | {k} | {name} | {first:.1f} | {ours:.2f} | {b4} | {cmp} |")
  im, lab = image[100:164, 200:264], label[100:164, 200:264]
  logits = noisy_logits(lab, 11)
  first, exact = timed(lambda: mean_field(im[None], logits[None], PRESETS["v2_resnet"],
                                          method="exact"), args.repeats)
  _, fast = timed(lambda: mean_field(im[None], logits[None], PRESETS["v2_resnet"]), args.repeats)
  print(f"\nexact all-pairs CRF, 64x64, 11 classes, v2_resnet: {exact:.3f} s "
        f"(first call {first:.1f} s); lattice at 64x64: {fast:.3f} s")


def filtered(features, values, fast):
  """The per-pixel-normalised bilateral filter of `values` (B, N, K)."""
  ones = jnp.ones(values.shape[:2] + (1,))
  if fast:
    lattice = build_lattice(features, features.shape[1] * 6)
    return lattice_filter(lattice, values) / lattice_filter(lattice, ones)
  return exact_filter(features, values) / exact_filter(features, ones)


def agreement(args, dcrf):
  print("\n## 2. Agreement, lattice (ours, fast) against the exact all-pairs CRF")
  print("| input | preset | normalisation | filter max abs | filter mean abs | Q mean abs (10 it) "
        "| argmax agreement (10 it) |")
  print("|---|---|---|---|---|---|---|")
  rng = np.random.default_rng(0)
  inputs = []
  for i, (y, x) in enumerate([(100, 200), (150, 50), (250, 380), (40, 300)][:args.crops]):
    image, label = camvid(i * 20)
    inputs.append((f"CamVid val crop {i}", image[y:y + 64, x:x + 64], label[y:y + 64, x:x + 64]))
  inputs.append(("random image", rng.integers(0, 256, (64, 64, 3)).astype(np.uint8),
                 rng.integers(0, 11, (64, 64))))
  for what, im, lab in inputs:
    logits = noisy_logits(lab, 11)
    q0 = jax.nn.softmax(jnp.asarray(logits).reshape(1, -1, 11), -1)
    for name in args.presets:
      for norm in ("per_pixel", "symmetric"):
        p = PRESETS[name].replace(normalisation=norm)
        feats = bilateral_features(jnp.asarray(im[None], jnp.float32), p.xy_bi, p.rgb_bi)
        diff = np.abs(np.asarray(filtered(feats, q0, True) - filtered(feats, q0, False)))
        exact = np.asarray(mean_field(im[None], logits[None], p, method="exact")[0])
        fast = np.asarray(mean_field(im[None], logits[None], p)[0])
        agree = (exact.argmax(-1) == fast.argmax(-1)).mean()
        print(f"| {what} | {name} | {norm} | {diff.max():.4f} | {diff.mean():.5f} | "
              f"{np.abs(exact - fast).mean():.5f} | {agree:.4f} |")
  if dcrf is None:
    print("\npydensecrf: not installed (pip install -e '.[crf]'), no comparison")
    return
  print("\n### Against pydensecrf, whole CamVid val images (360x480, 11 classes, 10 iterations)")
  print("| image | preset | normalisation | Q mean abs | argmax agreement |")
  print("|---|---|---|---|---|")
  for i in range(args.crops):
    image, label = camvid(i * 20)
    logits = noisy_logits(label, 11)
    for name in args.presets:
      for norm in ("per_pixel", "symmetric"):
        p = PRESETS[name].replace(normalisation=norm)
        ours = np.asarray(mean_field(image[None], logits[None], p)[0])
        theirs = pydensecrf_run(dcrf, image, logits, p)
        print(f"| {i * 20} | {name} | {norm} | {np.abs(ours - theirs).mean():.5f} | "
              f"{(ours.argmax(-1) == theirs.argmax(-1)).mean():.4f} |")


def grid_size():
  print("\n## 3. A bilateral grid at the presets (360x480 image, 11 classes)")
  print("A dense 5-D grid with one cell per standard deviation (the coarsest a linear splat allows)"
        " has (W/xy+1)(H/xy+1)(256/rgb+1)^3 cells; a sparse one still splats 2^5 = 32 vertices per"
        " pixel against the lattice's 6. Lattice points counted on CamVid val image 0:")
  print("| preset | dense grid cells | dense grid float32 MB (x11 classes) | lattice points "
        "| splat entries grid / lattice |")
  print("|---|---|---|---|---|")
  image, _ = camvid(0)
  for name, p in PRESETS.items():
    cells = (480 / p.xy_bi + 1) * (360 / p.xy_bi + 1) * (256 / p.rgb_bi + 1) ** 3
    feats = bilateral_features(jnp.asarray(image[None], jnp.float32), p.xy_bi, p.rgb_bi)
    points = int(build_lattice(feats, feats.shape[1] * 6).count[0])
    print(f"| {name} | {cells:.3g} | {cells * 11 * 4 / 2 ** 20:.0f} | {points} | {32 / 6:.1f} |")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=sorted(PRESETS))
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--crops", type=int, default=3, help="CamVid images for the agreement")
  parser.add_argument("--no-batch", dest="batch", action="store_false")
  parser.add_argument("--only", choices=["speed", "agreement", "grid"], default=None)
  args = parser.parse_args()
  try:
    import pydensecrf.densecrf as dcrf  # pylint: disable=import-outside-toplevel
  except ImportError:
    dcrf = None
  print(f"CPU: {cpu_info.read_cpuinfo().model} ({len(jax.devices())} JAX device(s): {jax.devices()[0].platform}); "
        f"jax {jax.__version__}; pydensecrf: {'installed' if dcrf else 'not installed'}")
  print(f"load average at start: {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}")
  if args.only in (None, "speed"):
    speed(args, dcrf)
  if args.only in (None, "agreement"):
    agreement(args, dcrf)
  if args.only in (None, "grid"):
    grid_size()


if __name__ == "__main__":
  main()
