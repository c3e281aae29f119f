"""psp-jax predict --crf and Segmenter(crf=...): the DenseCRF between probabilities and labels."""
import jax
import numpy as np
import pytest
from PIL import Image

from psp_jax import checkpoint as ckpt_lib
from psp_jax.checkpoint import model_config
from psp_jax.models import PSPNet
from psp_jax.postprocess import dense_crf
from psp_jax.segment import Segmenter, predict_main

from crf_samples import camvid_pair


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
  model = PSPNet(5, depth=18, width=8, head_features=16, aux_features=8, bins=(1, 2))
  variables = ckpt_lib.init_variables(model, jax.random.key(0))
  meta = {"format_version": 1, "model": model_config(model), "source": {"test": True},
          "preprocessing": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
          "inference": {"crop_size": [33, 33], "base_size": None, "scales": [1.0], "flip": False}}
  path = tmp_path_factory.mktemp("ckpt") / "model"
  ckpt_lib.save_checkpoint(path, {"params": variables["params"],
                                  "batch_stats": variables["batch_stats"]}, meta)
  return path


def test_segmenter_crf_is_the_crf_of_its_probabilities(ckpt, shared_data, tmp_path):
  image = camvid_pair(shared_data)[0][100:140, 200:257]
  plain = Segmenter(ckpt)
  probs = np.asarray(plain.predictor.probabilities(image))[:40, :57]
  expected = dense_crf(image, probs / probs.sum(-1, keepdims=True), "v2_resnet",
                       inputs="probabilities").argmax(-1)
  labels = Segmenter(ckpt, crf="v2_resnet").predict(image)
  assert labels.shape == (40, 57) and labels.dtype == np.int32
  np.testing.assert_array_equal(labels, expected)
  src, out = tmp_path / "crop.png", tmp_path / "out"
  Image.fromarray(image).save(src)
  assert predict_main(["--checkpoint", str(ckpt), "--input", str(src), "--output", str(out),
                       "--crf", "v2_resnet"]) == 0
  np.testing.assert_array_equal(np.asarray(Image.open(out / "crop.png")), expected)


def test_unknown_crf_preset_is_an_error(ckpt, tmp_path, capsys):
  src = tmp_path / "flat.png"
  Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(src)
  assert predict_main(["--checkpoint", str(ckpt), "--input", str(src), "--output",
                       str(tmp_path / "o"), "--crf", "v9"]) != 0
  assert "unknown CRF preset 'v9'" in capsys.readouterr().err
