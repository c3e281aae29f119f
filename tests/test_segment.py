"""Prediction from a checkpoint: Python API and `psp-jax predict` writing palette/colour/overlay PNGs."""
import jax
import numpy as np
import pytest
from PIL import Image

import psp_jax
from psp_jax import checkpoint as ckpt_lib
from psp_jax.checkpoint import model_config
from psp_jax.models import PSPNet
from psp_jax.segment import Segmenter, inference_settings_from_meta, predict_main

PALETTE = [[0, 0, 0], [200, 10, 10], [10, 200, 10], [10, 10, 200], [250, 250, 0]]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
  model = PSPNet(5, depth=18, width=8, head_features=16, aux_features=8, bins=(1, 2))
  variables = ckpt_lib.init_variables(model, jax.random.key(0))
  meta = {"format_version": 1, "model": model_config(model), "source": {"test": True},
          "classes": {"names": ["a", "b", "c", "d", "e"], "palette": PALETTE},
          "preprocessing": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
          "inference": {"crop_size": [33, 33], "base_size": 48, "scales": [1.0], "flip": False}}
  path = tmp_path_factory.mktemp("ckpt") / "model"
  ckpt_lib.save_checkpoint(path, {"params": variables["params"],
                                  "batch_stats": variables["batch_stats"]}, meta)
  return path


def test_settings_come_from_the_checkpoint():
  s = inference_settings_from_meta({"classes": {"dataset": "cityscapes"}})
  assert s.crop_size == (713, 713) and s.base_size == 2048
  s = inference_settings_from_meta({"inference": {"crop_size": [33, 33], "base_size": 48}},
                                   flip=True)
  assert s.crop_size == (33, 33) and s.base_size == 48 and s.flip


def test_python_api_load_and_predict(ckpt, shared_data):
  image = np.asarray(Image.open(shared_data / "ade_val_00001515.jpg").convert("RGB"))
  labels = psp_jax.predict(ckpt, image)
  assert labels.shape == image.shape[:2] and labels.dtype == np.int32
  assert 0 <= labels.min() and labels.max() < 5
  model, variables = psp_jax.load(ckpt)
  assert isinstance(model, PSPNet) and model.num_classes == 5
  np.testing.assert_array_equal(labels, Segmenter(ckpt).predict(image))


def test_predict_cli_writes_index_color_and_overlay(ckpt, shared_data, tmp_path, capsys):
  src = tmp_path / "in"
  src.mkdir()
  Image.open(shared_data / "ade_val_00001515.jpg").save(src / "scene.jpg")
  Image.fromarray(np.full((40, 57, 3), 120, np.uint8)).save(src / "flat.png")
  out = tmp_path / "out"
  assert predict_main(["--checkpoint", str(ckpt), "--input", str(src), "--output", str(out),
                       "--opacity", "0.3"]) == 0
  for stem, size in (("scene", (806, 512)), ("flat", (57, 40))):
    index = Image.open(out / f"{stem}.png")
    assert index.mode == "P" and index.size == size
    assert np.asarray(index.getpalette()[:15]).reshape(5, 3).tolist() == PALETTE
    labels = np.asarray(index)
    color = np.asarray(Image.open(out / f"{stem}_color.png"))
    np.testing.assert_array_equal(color, np.asarray(PALETTE, np.uint8)[labels])
    assert Image.open(out / f"{stem}_overlay.png").size == size
  assert "wrote 6 files for 2 image(s)" in capsys.readouterr().out


def test_predict_cli_errors_name_the_input(ckpt, tmp_path, capsys):
  assert predict_main(["--checkpoint", str(ckpt), "--input", str(tmp_path / "nope.jpg"),
                       "--output", str(tmp_path / "o")]) == 2
  assert "--input " + str(tmp_path / "nope.jpg") + ": does not exist" in capsys.readouterr().err
  with pytest.raises(SystemExit) as e:
    predict_main(["--checkpoint", str(ckpt), "--input", str(tmp_path), "--output",
                  str(tmp_path / "o"), "--opacity", "2"])
  assert e.value.code == 2
  assert "argument --opacity: expected a number in [0, 1], got 2.0" in capsys.readouterr().err
