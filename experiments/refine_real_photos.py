"""Refinement of real photographs without ground truth: does a refiner invent objects far from
the input mask? For each image/mask pair of ../shared/data/refine_samples and each refinement
checkpoint given, refine the mask and count the refined foreground pixels that lie farther
than `--far` x the image diagonal from every input-mask pixel (they cannot be a correction of
the input's boundary: they are new blobs). Writes a Markdown table, a JSON file and one
figure (rows: samples; columns: input, then each checkpoint; far pixels in red).

  python experiments/refine_real_photos.py --checkpoint synthetic=runs/cascade_demo \
      --checkpoint camvid=runs/cascade_real --out experiments/results/refine_real_photos
"""
from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys
import time

import cv2
import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from psp_jax.refine.api import Refiner  # noqa: E402

SAMPLES = ROOT.parent / "shared" / "data" / "refine_samples"
PAIRS = (("test_im1.jpg", "test_mask1.jpg"), ("test_im2.jpg", "test_mask2.jpg"),
         ("test_im3.jpg", "test_mask3.jpg"), ("big_sample_image.jpg", "big_sample_mask.jpg"))


def far_pixels(input_mask: np.ndarray, refined: np.ndarray, fraction: float) -> np.ndarray:
  """bool (H, W): refined foreground farther than fraction x diagonal from the input mask."""
  h, w = input_mask.shape
  distance = cv2.distanceTransform((~input_mask).astype(np.uint8), cv2.DIST_L2, 5)
  return refined & (distance > fraction * float(np.hypot(h, w)))


def measure(image: np.ndarray, mask: np.ndarray, refined: np.ndarray, fraction: float) -> dict:
  far = far_pixels(mask, refined, fraction)
  count, _ = cv2.connectedComponents(far.astype(np.uint8), connectivity=8)
  return {"input_pixels": int(mask.sum()), "refined_pixels": int(refined.sum()),
          "added": int((refined & ~mask).sum()), "removed": int((mask & ~refined).sum()),
          "far_pixels": int(far.sum()), "far_share": float(far.sum() / max(refined.sum(), 1)),
          "far_blobs": int(count - 1), "iou_with_input": float((mask & refined).sum() / max((mask | refined).sum(), 1))}


def tile(image: np.ndarray, mask: np.ndarray, far: np.ndarray | None, width: int) -> np.ndarray:
  """The image with the mask in green (far pixels in red), resized to `width`."""
  out = image.astype(np.float32)
  out[mask] = 0.5 * out[mask] + 0.5 * np.array([0, 255, 0], np.float32)
  if far is not None:
    out[far] = np.array([255, 0, 0], np.float32)
  out = out.astype(np.uint8)
  contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
  cv2.drawContours(out, contours, -1, (255, 255, 0), max(1, image.shape[1] // 300))
  h = round(image.shape[0] * width / image.shape[1])
  return cv2.resize(out, (width, h), interpolation=cv2.INTER_AREA)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--checkpoint", action="append", required=True, metavar="NAME=PATH",
                 help="a refinement checkpoint (workdir or checkpoint folder), repeatable")
  p.add_argument("--samples", type=pathlib.Path, default=SAMPLES, help="folder of the sample pairs")
  p.add_argument("--L", type=int, default=900, help="refinement L (default 900, the published)")
  p.add_argument("--stages", default="global+local", help="global | global+local | local")
  p.add_argument("--far", type=float, default=0.05, help="far = beyond this x the image diagonal")
  p.add_argument("--tile-width", type=int, default=320, help="width of each figure tile (px)")
  p.add_argument("--out", type=pathlib.Path, required=True, help="output stem (.md, .json, .png)")
  args = p.parse_args(argv)
  checkpoints = []
  for spec in args.checkpoint:
    if "=" not in spec:
      p.error(f"--checkpoint {spec!r}: expected NAME=PATH")
    name, path = spec.split("=", 1)
    checkpoints.append((name, pathlib.Path(path)))
  pairs = [(args.samples / a, args.samples / b) for a, b in PAIRS]
  missing = [str(x) for pair in pairs for x in pair if not x.exists()]
  if missing:
    p.error(f"sample files not found: {missing}")

  refiners = [(name, Refiner(path)) for name, path in checkpoints]
  rows, figure_rows, start = [], [], time.time()
  for image_path, mask_path in pairs:
    image = np.asarray(Image.open(image_path).convert("RGB"))
    mask = np.asarray(Image.open(mask_path).convert("L")) > 127
    tiles = [tile(image, mask, None, args.tile_width)]
    for name, refiner in refiners:
      t = time.time()
      refined = refiner.refine_result(image, mask, L=args.L, stages=args.stages).mask
      row = {"sample": image_path.name, "checkpoint": name, "seconds": round(time.time() - t, 2),
             **measure(image, mask, refined, args.far)}
      rows.append(row)
      print(f"{image_path.name:22s} {name:12s} far pixels {row['far_pixels']:7d} "
            f"({100 * row['far_share']:.2f}% of the refined mask, {row['far_blobs']} blobs)", flush=True)
      tiles.append(tile(image, refined, far_pixels(mask, refined, args.far), args.tile_width))
    figure_rows.append(np.concatenate(tiles, axis=1))
  width = max(r.shape[1] for r in figure_rows)
  figure = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                           for r in figure_rows], axis=0)
  args.out.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(figure).save(args.out.with_suffix(".png"))
  command = "python experiments/refine_real_photos.py " + " ".join(
      f"--checkpoint {s}" for s in args.checkpoint) + f" --L {args.L} --stages {args.stages} " \
      f"--far {args.far} --out {args.out}"
  summary = {"command": command, "far_fraction_of_diagonal": args.far, "L": args.L,
             "stages": args.stages, "checkpoints": {n: str(c) for n, c in checkpoints},
             "machine": platform.processor() or platform.machine(), "rows": rows,
             "seconds": round(time.time() - start, 1)}
  args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
  lines = [f"# Refining real photographs: pixels far from the input mask\n",
           f"`{command}` ({summary['seconds']} s). Far: refined foreground more than "
           f"{100 * args.far:g}% of the image diagonal from every input-mask pixel. "
           f"Figure: {args.out.with_suffix('.png').name} (columns: input, "
           + ", ".join(n for n, _ in checkpoints) + "; green the mask, red the far pixels).\n",
           "| sample | checkpoint | input px | refined px | added | removed | far px | far share | far blobs | IoU with input |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    lines.append(f"| {r['sample']} | {r['checkpoint']} | {r['input_pixels']} | {r['refined_pixels']} | "
                 f"{r['added']} | {r['removed']} | {r['far_pixels']} | {100 * r['far_share']:.2f}% | "
                 f"{r['far_blobs']} | {100 * r['iou_with_input']:.2f} |")
  args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
  print(f"wrote {args.out.with_suffix('.md')}, .json, .png")
  return 0


if __name__ == "__main__":
  sys.exit(main())
