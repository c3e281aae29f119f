"""Input-pipeline throughput: training examples per second (full augmentation).

  python -m psp_jax.data.benchmark --dataset camvid --manual_dir ../shared/data/camvid \
      --data_dir /tmp/psp_tfds --crop 473 --batch 8 --workers 0 --batches 40

Two numbers are printed: the per-example transform alone (decode + augment + normalise, one
thread, no Grain: images/s of one worker) and the whole Grain pipeline with the requested
workers. The dataset is prepared first if needed (not timed).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import time

import numpy as np


def _data_config(name: str):
  path = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "data.py")
  spec = importlib.util.spec_from_file_location("psp_data_configs", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return getattr(module, name)()


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--dataset", default="camvid")
  p.add_argument("--manual_dir", default="../shared/data/camvid")
  p.add_argument("--data_dir", default="/tmp/psp_tfds")
  p.add_argument("--crop", type=int, default=473)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--workers", type=int, default=0)
  p.add_argument("--threads", type=int, default=1, help="read threads (per worker)")
  p.add_argument("--batches", type=int, default=40)
  p.add_argument("--no_aug", action="store_true", help="crop only (the paper's baseline)")
  p.add_argument("--cv2_threads", type=int, default=1,
                 help="OpenCV's own threads in this process (1 = a true single-worker number)")
  args = p.parse_args(argv)
  import cv2  # pylint: disable=import-outside-toplevel
  cv2.setNumThreads(args.cv2_threads)

  from psp_jax.data import pipeline, transforms  # pylint: disable=import-outside-toplevel
  from psp_jax.data.builders import open_dataset  # pylint: disable=import-outside-toplevel

  cfg = _data_config(args.dataset)
  cfg.manual_dir, cfg.data_dir = args.manual_dir, args.data_dir
  cfg.crop_size = (args.crop, args.crop)
  cfg.worker_count, cfg.read_threads = args.workers, args.threads
  cfg.augmentation.enabled = not args.no_aug
  ds = open_dataset(cfg)
  src = ds.sources[cfg.train_split]
  aug = transforms.Augment.from_config(cfg.augmentation)
  decode = pipeline.Decode(ds.num_classes, split=cfg.train_split)

  n = min(len(src), args.batches * args.batch)
  rng = np.random.default_rng(0)
  t0 = time.perf_counter()
  t_dec = 0.0
  for i in range(n):
    r = src[i % len(src)]
    t1 = time.perf_counter()
    image, label = decode(i, r)
    t_dec += time.perf_counter() - t1
    transforms.train_transform(image, label, rng, aug, cfg.crop_size)
  single = n / (time.perf_counter() - t0)
  print(f"single thread, no Grain: {single:.1f} images/s ({1000 / single:.1f} ms/image, "
        f"decode {1000 * t_dec / n:.1f} ms) for {args.crop}x{args.crop} crops, augmentation "
        f"{'off' if args.no_aug else 'on'}")

  it = pipeline.train_iterator(cfg, args.batch, process_index=0, process_count=1, dataset=ds)
  next(it)  # start-up (worker spawn) not timed
  t0 = time.perf_counter()
  for _ in range(args.batches):
    batch = next(it)
  dt = time.perf_counter() - t0
  rate = args.batches * args.batch / dt
  per = rate / max(args.workers, 1)
  print(f"grain pipeline, {args.workers} workers x {args.threads} threads: {rate:.1f} images/s "
        f"({per:.1f} per worker), batch {batch['image'].shape}")
  if hasattr(it, "close"):
    it.close()


if __name__ == "__main__":
  main()
