"""Checkpoints written before the model contract still load (tests/fixtures/README.md)."""
import pathlib
import shutil

import numpy as np

import psp_jax
from psp_jax import checkpoint as ckpt_lib
from psp_jax.models import build

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"


def test_old_checkpoint_loads_with_identical_logits():
  model, variables = psp_jax.load(FIXTURES / "ckpt_v0_pspnet")
  assert build.family_of(model).name == "pspnet" and model.num_classes == 11
  x = np.random.default_rng(0).normal(size=(1, 33, 33, 3)).astype(np.float32)
  logits = np.asarray(model.apply(variables, x, train=False))
  np.testing.assert_allclose(logits, np.load(FIXTURES / "ckpt_v0_pspnet_logits.npy"), rtol=1e-5,
                             atol=1e-5)


def test_old_checkpoint_predicts_and_initialises_a_new_model(tmp_path):
  ckpt = tmp_path / "ckpt"
  shutil.copytree(FIXTURES / "ckpt_v0_pspnet", ckpt)  # predict may not write into the fixture
  meta = ckpt_lib.read_meta(ckpt)
  assert "task" not in meta and meta["model"]["name"] == "pspnet"  # written before tasks existed
  image = np.random.default_rng(1).integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
  labels = psp_jax.predict(ckpt, image)
  assert labels.shape == (40, 50) and 0 <= labels.min() and labels.max() < 11
  target = ckpt_lib.init_variables(build.build_model(dict(meta["model"], num_classes=5)), 0)
  _, report = ckpt_lib.init_from_checkpoint(target, ckpt, log=None)
  assert report.loaded and any("classifier" in p for p, _ in report.reinitialized)
