"""DenseCRF against CascadePSP on the same coarse masks: IoU and mBA of the input, the CRF (its
parameters grid-searched on held-out masks), CascadePSP, and the CRF after CascadePSP.

  python experiments/crf_vs_cascadepsp.py --dataset synthetic --checkpoint runs/cascade_demo \
      --out experiments/results/crf_vs_cascadepsp_synthetic
  python experiments/crf_vs_cascadepsp.py --dataset camvid --checkpoint runs/cascade_real \
      --out experiments/results/crf_vs_cascadepsp_camvid

Data (with ground truth): 'synthetic' = the object masks of the synthetic scenes
(configs/data.py:synthetic_objects, 256 px), 'camvid' = CamVid's class-agnostic objects
(configs/data.py:camvid_objects, 360x480 road scenes from ../shared/data/camvid). The coarse
masks are the refinement evaluation's perturbations of the ground truth (the same on every
run). The CRF is tuned on `--tune` examples of the TRAINING split (held out from the reported
validation examples) by pooled IoU over a small grid: the mask's confidence c (the unary is
log(c) on the mask's label and log(1 - c) on the other) and the bilateral weight and standard
deviations, the spatial term at DeepLab's (w_pos 3, xy_pos 3); the four DeepLab presets are in
the grid too. 'CRF after CascadePSP' runs the tuned CRF on CascadePSP's soft output (clipped to
[1 - c, c]). Timing columns are seconds per image on this machine (CPU named in the output).
IoU is pooled over the examples, mBA the mean of per-example boundary accuracies (as
`psp-jax evaluate` on a refinement checkpoint).

--samples also runs the tuned CRF, CascadePSP and both on the real photographs of
../shared/data/refine_samples. They have no ground truth (their README): the table gives each
method's IoU with the input mask and the pixels it adds and removes, and STEM.png shows them
(columns: input, CRF, CascadePSP, CascadePSP + CRF; the mask in green).
"""
from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from configs import data as data_configs  # noqa: E402
from psp_jax.data.refine_pipeline import refine_eval_examples  # noqa: E402
from psp_jax import cpu_info  # noqa: E402
from psp_jax.evaluate.boundary import boundary_accuracy  # noqa: E402
from psp_jax.postprocess import dense_crf  # noqa: E402
from psp_jax.postprocess.params import CRFParams  # noqa: E402
from psp_jax.postprocess.presets import PRESETS, resolve  # noqa: E402
from psp_jax.refine.api import Refiner  # noqa: E402

# Weak settings (w_bi 1, c 0.95) are in, so the tuned CRF can stay close to its input where
# the CRF does not help.
GRID = {"confidence": (0.6, 0.8, 0.95), "w_bi": (1.0, 4.0, 10.0), "xy_bi": (30.0, 80.0),
        "rgb_bi": (5.0, 13.0)}


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dataset", choices=("synthetic", "camvid"), required=True)
  p.add_argument("--checkpoint", required=True, help="a CascadePSP workdir or checkpoint")
  p.add_argument("--data_dir", default="runs/tfds", help="where the prepared datasets live")
  p.add_argument("--camvid", default=str(ROOT.parent / "shared" / "data" / "camvid"))
  p.add_argument("--tune", type=int, default=12, help="training-split examples the CRF is tuned on")
  p.add_argument("--images", type=int, default=60, help="validation examples reported")
  p.add_argument("--L", type=int, default=480, help="CascadePSP's working resolution")
  p.add_argument("--samples", action="store_true",
                 help="also refine ../shared/data/refine_samples (no ground truth; STEM.png)")
  p.add_argument("--out", required=True, help="output stem: writes STEM.md and STEM.json")
  return p.parse_args(argv)


def data_config(args):
  if args.dataset == "synthetic":
    cfg = data_configs.synthetic_objects()
  else:
    cfg = data_configs.camvid_objects()
    cfg.manual_dir = args.camvid
  cfg.data_dir = args.data_dir
  return cfg


def mask_probabilities(soft: np.ndarray, confidence: float) -> np.ndarray:
  """(H, W) foreground probability or {0, 1} mask -> (H, W, 2) probabilities in [1-c, c]."""
  p = np.clip(np.asarray(soft, np.float32), 1.0 - confidence, confidence)
  return np.stack([1.0 - p, p], axis=-1)


def crf_mask(image: np.ndarray, soft: np.ndarray, params: CRFParams, confidence: float) -> np.ndarray:
  probs = dense_crf(image, mask_probabilities(soft, confidence), params, inputs="probabilities")
  return probs[..., 1] > probs[..., 0]


class Scores:
  """Pooled IoU and mean boundary accuracy of one method over the examples."""

  def __init__(self):
    self.inter, self.union, self.mba, self.seconds = 0, 0, [], []

  def add(self, mask: np.ndarray, gt: np.ndarray, seconds: float = 0.0) -> None:
    self.inter += int((mask & gt).sum())
    self.union += int((mask | gt).sum())
    self.mba.append(boundary_accuracy(mask, gt))
    self.seconds.append(seconds)

  def row(self) -> dict:
    return {"IoU": self.inter / max(self.union, 1), "mBA": float(np.nanmean(self.mba)),
            "seconds_per_image": float(np.median(self.seconds)) if self.seconds else 0.0,
            "n": len(self.mba)}


def candidates() -> list[tuple[str, CRFParams, float]]:
  base = resolve("v2_resnet")
  out = [(f"{name} c={c}", p, c) for name, p in PRESETS.items() for c in GRID["confidence"]]
  for c, w, xy, rgb in itertools.product(*GRID.values()):
    params = CRFParams(**{**base.to_dict(), "w_bi": w, "xy_bi": xy, "rgb_bi": rgb, "w_pos": 3.0,
                          "xy_pos": 3.0})
    out.append((f"w_bi={w:g} xy_bi={xy:g} rgb_bi={rgb:g} c={c}", params, c))
  return out


def tune(examples, verbose: bool = True) -> tuple[str, CRFParams, float, list]:
  """The grid setting of highest pooled IoU on the tuning examples."""
  rows, grid = [], candidates()
  for label, params, c in grid:
    s = Scores()
    for _, image, gt, coarse in examples:
      s.add(crf_mask(image, coarse > 0, params, c), gt > 0)
    rows.append({"setting": label, **s.row()})
    if verbose:
      print(f"  tune {label:40s} IoU {100 * rows[-1]['IoU']:.2f} mBA {100 * rows[-1]['mBA']:.2f}", flush=True)
  best = max(range(len(rows)), key=lambda i: rows[i]["IoU"])
  label, params, c = grid[best]
  return label, params, c, rows


def run_samples(refiner, params: CRFParams, conf: float, args, out: pathlib.Path) -> list[dict]:
  """The methods on the refine_samples photographs: change from the input, and a figure."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, str(ROOT / "experiments"))
  from refine_real_photos import PAIRS, SAMPLES, tile  # pylint: disable=import-outside-toplevel
  rows, figure = [], []
  for image_name, mask_name in PAIRS:
    image = np.asarray(Image.open(SAMPLES / image_name).convert("RGB"))
    mask = np.asarray(Image.open(SAMPLES / mask_name).convert("L")) > 127
    t = time.time()
    crf = crf_mask(image, mask, params, conf)
    crf_s = time.time() - t
    t = time.time()
    result = refiner.refine_result(image, mask.astype(np.uint8) * 255, L=args.L)
    refine_s = time.time() - t
    t = time.time()
    both = crf_mask(image, np.asarray(result.probability), params, conf)
    both_s = refine_s + time.time() - t
    tiles = [tile(image, mask, None, 320)]
    for method, m, sec in (("DenseCRF", crf, crf_s), ("CascadePSP", np.asarray(result.mask) > 0, refine_s),
                           ("CascadePSP + CRF", both, both_s)):
      rows.append({"sample": image_name, "method": method, "seconds": round(sec, 2),
                   "iou_with_input": float((m & mask).sum() / max((m | mask).sum(), 1)),
                   "added": int((m & ~mask).sum()), "removed": int((mask & ~m).sum())})
      tiles.append(tile(image, m, None, 320))
      print(f"{image_name:22s} {method:18s} IoU with input {100 * rows[-1]['iou_with_input']:.2f} "
            f"({sec:.1f} s)", flush=True)
    figure.append(np.concatenate(tiles, axis=1))
  width = max(r.shape[1] for r in figure)
  figure = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255)
                           for r in figure], axis=0)
  out.parent.mkdir(parents=True, exist_ok=True)
  # 256 colours: a fifth of the full-colour file's size, and enough for masks over photos
  Image.fromarray(figure).quantize(256).save(out.with_suffix(".png"), optimize=True)
  return rows


def main(argv=None) -> int:
  args = parse_args(argv)
  start = time.time()
  cfg = data_config(args)
  tuning = list(refine_eval_examples(cfg, "train", max_images=args.tune))
  print(f"tuning the CRF on {len(tuning)} training-split examples ({len(candidates())} settings)", flush=True)
  label, params, conf, grid_rows = tune(tuning)
  tuning_input = Scores()
  for _, _, gt, coarse in tuning:
    tuning_input.add(coarse > 0, gt > 0)
  tuning_input = tuning_input.row()
  best_row = max(grid_rows, key=lambda r: r["IoU"])
  print(f"best: {label} (tuning IoU {100 * best_row['IoU']:.2f}, its inputs {100 * tuning_input['IoU']:.2f})",
        flush=True)
  refiner = Refiner(args.checkpoint)
  methods = {k: Scores() for k in ("input", "crf", "cascadepsp", "cascadepsp_crf")}
  names = []
  for name, image, gt, coarse in refine_eval_examples(cfg, "validation", max_images=args.images):
    gt, coarse = gt > 0, coarse > 0
    names.append(name)
    methods["input"].add(coarse, gt)
    t = time.time()
    methods["crf"].add(crf_mask(image, coarse, params, conf), gt, time.time() - t)
    t = time.time()
    result = refiner.refine_result(image, coarse.astype(np.uint8) * 255, L=args.L)
    refine_s = time.time() - t
    methods["cascadepsp"].add(np.asarray(result.mask) > 0, gt, refine_s)
    t = time.time()
    methods["cascadepsp_crf"].add(crf_mask(image, np.asarray(result.probability), params, conf), gt,
                                  refine_s + time.time() - t)
  rows = {k: v.row() for k, v in methods.items()}
  sample_rows = run_samples(refiner, params, conf, args, pathlib.Path(args.out)) if args.samples else []
  cpu = cpu_info.read_cpuinfo().model
  command = "python experiments/crf_vs_cascadepsp.py " + " ".join(argv if argv is not None else sys.argv[1:])
  labels = {"input": "input (coarse mask)", "crf": f"DenseCRF (tuned: {label})",
            "cascadepsp": f"CascadePSP (L={args.L})", "cascadepsp_crf": "CascadePSP, then the same CRF"}
  md = [f"# DenseCRF vs CascadePSP on {args.dataset} objects", "",
        f"Made by: `{command}` ({time.time() - start:.0f} s on {cpu})", "",
        f"{len(names)} validation examples; CRF tuned on {len(tuning)} training-split examples over "
        f"{len(grid_rows)} settings (tuning set: inputs IoU {100 * tuning_input['IoU']:.2f} / mBA "
        f"{100 * tuning_input['mBA']:.2f}, the chosen CRF {100 * best_row['IoU']:.2f} / "
        f"{100 * best_row['mBA']:.2f}); checkpoint `{args.checkpoint}`.", "",
        "| method | IoU | mBA | s / image |", "|---|---:|---:|---:|"]
  for k, r in rows.items():
    md.append(f"| {labels[k]} | {100 * r['IoU']:.2f} | {100 * r['mBA']:.2f} | "
              + (f"{r['seconds_per_image']:.2f}" if k != "input" else "–") + " |")
  if sample_rows:
    md += ["", f"Real photographs without ground truth (../shared/data/refine_samples, CascadePSP at "
           f"L={args.L}; figure {pathlib.Path(args.out).name}.png):", "",
           "| sample | method | IoU with input | added px | removed px | s |", "|---|---|---:|---:|---:|---:|"]
    md += [f"| {r['sample']} | {r['method']} | {100 * r['iou_with_input']:.2f} | {r['added']} | "
           f"{r['removed']} | {r['seconds']:.1f} |" for r in sample_rows]
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.with_suffix(".md").write_text("\n".join(md) + "\n")
  out.with_suffix(".json").write_text(json.dumps(
      {"command": command, "cpu": cpu, "dataset": args.dataset, "checkpoint": args.checkpoint,
       "examples": names, "crf_setting": label, "crf_params": params.to_dict(), "confidence": conf,
       "tuning": grid_rows, "tuning_inputs": tuning_input, "results": rows, "samples": sample_rows,
       "seconds": round(time.time() - start, 1)}, indent=1) + "\n")
  print("\n".join(md))
  return 0


if __name__ == "__main__":
  sys.exit(main())
