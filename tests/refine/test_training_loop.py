"""CascadePSP training through the shared loop: a tiny run, its checkpoint refines, it resumes."""
import json

import numpy as np
import pytest

from configs import cascadepsp


def _tiny_config(data_dir, steps=4):
  cfg = cascadepsp.demo()
  cfg.model.width = 8
  cfg.model.passes = 1  # a third of the program to compile; the 3-pass step: tests/train
  cfg.data.data_dir = str(data_dir)
  cfg.data.synthetic = dict(num_train=8, num_val=3, size=(64, 64), seed=0, options={})
  cfg.data.crop_size = (32, 32)
  cfg.train.steps = steps
  cfg.train.batch_size = 8
  cfg.train.checkpoint_every = 2
  cfg.train.log_every = 2
  cfg.eval.every = 0
  cfg.eval.L = 72
  return cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  from psp_jax.train import loop
  root = tmp_path_factory.mktemp("cascade_train")
  cfg = _tiny_config(root / "tfds")
  result = loop.train_and_evaluate(cfg, root / "run")
  return cfg, root, result


def test_tiny_run_trains_evaluates_and_saves_a_refiner_checkpoint(trained):
  cfg, root, result = trained
  assert result["step"] == 4 and result["best_step"] == 4
  for k in ("IoU", "mBA", "IoU_input", "mBA_input"):
    assert 0.0 <= result[k] <= 100.0, (k, result[k])
  assert result["best_IoU"] == pytest.approx(result["IoU"])
  assert result["num_images"] == 3 and result["stages"] == "global+local"
  log = (root / "run" / "train.log").read_text()
  assert "ce/s8c" in log and "l1l2/s1" in log and "grad " in log and "input_iou" in log
  report = json.loads((root / "run" / "eval" / "refine_validation_step4.json").read_text())
  assert report["IoU"] == pytest.approx(result["IoU"])
  # the training checkpoint is a Refiner checkpoint
  from psp_jax.refine.api import Refiner
  refiner = Refiner(root / "run", bucket=64)
  image = np.random.default_rng(0).integers(0, 255, (40, 56, 3), np.uint8)
  mask = np.zeros((40, 56), np.uint8)
  mask[10:30, 15:40] = 255
  out = refiner.refine(image, mask, fast=True, L=64)
  assert out.shape == (40, 56) and out.dtype == np.uint8
  assert refiner.meta["inference"] == {"L": 72, "stages": "global+local"}


def test_resume_continues_from_the_checkpoint(trained):
  from psp_jax.train import loop
  cfg, root, _ = trained
  cfg = _tiny_config(root / "tfds", steps=6)
  result = loop.train_and_evaluate(cfg, root / "run")
  assert result["step"] == 6
  assert "resumed from" in (root / "run" / "train.log").read_text()


def test_bad_loss_weights_are_named(tmp_path):
  from psp_jax.train import loop
  cfg = _tiny_config(tmp_path / "tfds")
  cfg.train.loss.ce_weights = (1.0, 1.0)
  with pytest.raises(ValueError, match="train.loss.ce_weights must have 6"):
    loop.train_and_evaluate(cfg, tmp_path / "run")
