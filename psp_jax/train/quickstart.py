"""Quickstart: train a small PSPNet on the embedded synthetic scenes and watch the loss fall.

  python -m psp_jax.train.quickstart [--steps 120] [--batch_size 16] [--devices N]

Runs on whatever devices JAX sees (a CPU works: about two minutes on two cores), with the
real data-parallel train step (SyncBN over the 'data' mesh axis, poly schedule, 10x head
learning rate, aux loss 0.4), then evaluates mIoU on held-out scenes.
"""
from __future__ import annotations

import sys
import time

import jax
import ml_collections
import numpy as np
from absl import app, flags
from tqdm import tqdm

from psp_jax.checkpoint import init_variables
from psp_jax.data.synthetic import SYNTHETIC_CLASSES, generate_scenes
from psp_jax.evaluate.metrics import segmentation_metrics
from psp_jax.models import PSPNet
from psp_jax.parallel import make_mesh
from psp_jax.train.optim import make_optimizer
from psp_jax.train.state import create_train_state
from psp_jax.train.step import make_eval_step, make_train_step
from psp_jax.preprocessing import Preprocessing

flags.DEFINE_integer("steps", 120, "Training steps.")
flags.DEFINE_integer("batch_size", 16, "Global batch size (divisible by the device count).")
flags.DEFINE_integer("size", 65, "Scene side in pixels (8k+1 suits align_corners resizing).")
flags.DEFINE_integer("train_scenes", 256, "Number of distinct training scenes.")
flags.DEFINE_integer("devices", None, "Use the first N devices (default: all).")
flags.DEFINE_integer("seed", 0, "Random seed (data and initialisation).")
FLAGS = flags.FLAGS

def normalise(images: np.ndarray) -> np.ndarray:
  return Preprocessing().normalize(images)  # PSPNet's: ImageNet mean/std on 0-1 RGB


def main(argv):
  del argv
  mesh = make_mesh(FLAGS.devices)
  num_classes = len(SYNTHETIC_CLASSES)
  size = (FLAGS.size, FLAGS.size)
  print(f"devices: {mesh.devices.size} x {jax.devices()[0].platform}; global batch "
        f"{FLAGS.batch_size} ({FLAGS.batch_size // mesh.devices.size} per device, SyncBN over all)")
  train_x, train_y = generate_scenes(FLAGS.train_scenes, size, seed=FLAGS.seed)
  val_x, val_y = generate_scenes(64, size, seed=FLAGS.seed + 1000)
  model = PSPNet(num_classes, depth=18, stem="classic", width=16, head_features=64,
                 aux_features=32)
  variables = init_variables(model, jax.random.key(FLAGS.seed))
  optim = ml_collections.ConfigDict(dict(
      name="sgd", base_lr=0.02, momentum=0.9, weight_decay=1e-4, schedule="poly", power=0.9,
      lr_multipliers={"ppm": 10.0, "head": 10.0, "aux_head": 10.0}))
  optimizer = make_optimizer(optim, variables["params"], FLAGS.steps)
  state = create_train_state(variables, optimizer.tx, jax.random.key(FLAGS.seed + 1), mesh)
  step = make_train_step(model, optimizer, mesh, num_classes=num_classes, aux_weight=0.4)
  rng = np.random.default_rng(FLAGS.seed)
  start = time.time()
  bar = tqdm(range(FLAGS.steps), desc="train", unit="step")
  for i in bar:
    idx = rng.choice(len(train_x), FLAGS.batch_size, replace=False)
    flip = rng.random(FLAGS.batch_size) < 0.5
    x = np.where(flip[:, None, None, None], train_x[idx, :, ::-1], train_x[idx])
    y = np.where(flip[:, None, None], train_y[idx, :, ::-1], train_y[idx])
    state, metrics = step(state, normalise(x), y.astype(np.int32))
    if i % 10 == 0 or i == FLAGS.steps - 1:
      m = jax.device_get(metrics)
      bar.set_postfix(loss=f"{m['loss']:.3f}", acc=f"{m['pixel_acc']:.3f}")
      tqdm.write(f"step {i + 1:4d}  loss {m['loss']:.4f} (main {m['main_loss']:.4f}, aux "
                 f"{m['aux_loss']:.4f})  pixel acc {m['pixel_acc']:.3f}  lr {m['lr/base']:.5f}")
  train_time = time.time() - start
  eval_step = make_eval_step(model, mesh, num_classes=num_classes)
  cm = np.zeros((num_classes, num_classes), np.int64)
  per_eval = mesh.devices.size * 2
  for i in range(0, len(val_x) - per_eval + 1, per_eval):
    cm += np.asarray(eval_step(state.variables, normalise(val_x[i:i + per_eval]),
                               val_y[i:i + per_eval].astype(np.int32)))
  result = segmentation_metrics(cm, SYNTHETIC_CLASSES)
  print(f"\ntrained {FLAGS.steps} steps in {train_time:.1f} s; held-out scenes: "
        f"mIoU {100 * result['mIoU']:.1f}  mAcc {100 * result['mAcc']:.1f}  "
        f"aAcc {100 * result['aAcc']:.1f}")


def cli_main(argv: list[str]) -> int:
  """`psp-jax quickstart [flags]`."""
  if {"-h", "--help"} & set(argv):
    print(__doc__)
    print(FLAGS.module_help(sys.modules[__name__]))
    return 0
  app.run(main, argv=["psp-jax quickstart", *argv])
  return 0


if __name__ == "__main__":
  app.run(main)
