"""Write the demo's short report: metrics of its last evaluation and example predictions.

  python experiments/demo_report.py --workdir runs/demo

Reads <workdir>/eval/*.json (written by `psp-jax train` / `psp-jax evaluate`), labels a few
held-out synthetic scenes (never seen in training: a different seed) with the run's best
checkpoint, and writes <workdir>/report.md plus <workdir>/report_examples.png
(rows: scene | ground truth | prediction).
"""
from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
from PIL import Image

from psp_jax.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_PALETTE, generate_scenes
from psp_jax.segment import Segmenter
from psp_jax.visualize import colorize


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--examples", type=int, default=4)
  parser.add_argument("--size", type=int, default=193)
  args = parser.parse_args()
  workdir = pathlib.Path(args.workdir)
  reports = sorted((workdir / "eval").glob("*.json"), key=lambda p: p.stat().st_mtime)
  if not reports:
    raise SystemExit(f"no evaluation reports in {workdir / 'eval'}: run psp-jax train first")
  metrics = json.loads(reports[-1].read_text())
  best = workdir / "checkpoints_best"
  segmenter = Segmenter(best if best.is_dir() else workdir)
  images, labels = generate_scenes(args.examples, (args.size, args.size), seed=987654)
  rows = []
  correct = 0
  for image, label in zip(images, labels):
    pred = segmenter.predict(image)
    correct += int((pred == label).sum())
    rows.append(np.concatenate([image, colorize(label, SYNTHETIC_PALETTE),
                                colorize(pred, SYNTHETIC_PALETTE)], axis=1))
  Image.fromarray(np.concatenate(rows, axis=0)).save(workdir / "report_examples.png")
  pct = lambda x: "n/a" if x is None else f"{100 * x:.1f}"  # noqa: E731
  lines = [
      "# psp_jax demo report", "",
      f"Run: `{workdir}`; evaluation `{reports[-1].name}` (step {metrics.get('step')}, "
      f"{metrics.get('images')} held-out images, {metrics.get('protocol')}).", "",
      "| mIoU | mAcc | aAcc |", "|---:|---:|---:|",
      f"| {pct(metrics['mIoU'])} | {pct(metrics['mAcc'])} | {pct(metrics['aAcc'])} |", "",
      "| class | IoU | labelled pixels |", "|---|---:|---:|"]
  lines += [f"| {r['class']} | {pct(r['iou'])} | {r['pixels']} |" for r in metrics["per_class"]]
  lines += ["", f"![examples](report_examples.png)  rows: scene | ground truth | prediction "
                f"({args.examples} new scenes, pixel accuracy "
                f"{100 * correct / labels.size:.1f}%)", "",
            "Classes: " + ", ".join(f"{i} {n}" for i, n in enumerate(SYNTHETIC_CLASSES))]
  (workdir / "report.md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines[:7]))
  print(f"wrote {workdir / 'report.md'} and {workdir / 'report_examples.png'}")


if __name__ == "__main__":
  main()
