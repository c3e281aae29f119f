"""A tiny training config for the loop tests (seconds per run on a CPU)."""
from __future__ import annotations

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from configs import pspnet  # noqa: E402


def tiny_config(data_dir: str, *, steps: int = 6, num_devices: int | None = None,
                num_classes: int = 11, batch_size: int = 8):
  """configs/pspnet.py:demo shrunk: ResNet-18 of width 8, 33x33 synthetic scenes."""
  cfg = pspnet.demo()
  cfg.model.depth = 18
  cfg.model.stem = "classic"
  cfg.model.width = 8
  cfg.model.head_features = 16
  cfg.model.aux_features = 8
  cfg.model.bins = (1, 2)
  cfg.model.num_classes = num_classes
  cfg.data.data_dir = data_dir
  cfg.data.synthetic = dict(num_train=32, num_val=4, size=(33, 33), seed=0, options={})
  cfg.data.crop_size = (33, 33)
  cfg.data.eval_pad_size = (33, 33)
  cfg.data.worker_count = 0
  cfg.data.read_threads = 1
  cfg.data.prefetch = 1
  cfg.data.prepare_threads = 1
  cfg.train.steps = steps
  cfg.train.batch_size = batch_size
  cfg.train.checkpoint_every = 2
  cfg.train.keep_checkpoints = 10
  cfg.train.log_every = 2
  cfg.train.num_devices = num_devices
  cfg.eval.every = 0
  cfg.eval.crop_size = (33, 33)
  cfg.eval.base_size = 33
  cfg.eval.window_batch = 1
  cfg.eval.max_images = 2
  cfg.eval.log_images = 1          # optional fields train_and_evaluate reads with .get
  cfg.train.debug_nan_at_step = 0
  return cfg
