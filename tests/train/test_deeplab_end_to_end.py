"""DeepLab v1 / v2 / v3 through the commands users run: `psp-jax train` on a mini config, then
`psp-jax evaluate` (with and without DenseCRF) and `psp-jax predict --crf`, on the synthetic
scenes and on the shared CamVid. Widths are shrunk so each run takes seconds; the recipes'
mechanics (v1's shrunk-label loss, v2's multi-scale fusion, v3's ASPP) run as configured."""
import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from psp_jax import main

ROOT = pathlib.Path(__file__).resolve().parents[2]

# 65 px scenes (8k + 1, as v1's label shrink needs): the rates shrink with the feature maps
SMALL_SYNTHETIC = ["--config.data.synthetic.num_train=4", "--config.data.synthetic.num_val=2",
                   "--config.data.synthetic.size=(65,65)", "--config.data.crop_size=(65,65)",
                   "--config.data.eval_pad_size=(65,65)", "--config.eval.crop_size=(65,65)",
                   "--config.eval.base_size=65", "--config.data.prepare_threads=1",
                   "--config.data.read_threads=1"]
FAST = ["--config.train.steps=2", "--config.train.batch_size=2", "--config.train.num_devices=1", "--config.train.checkpoint_every=2",
        "--config.train.log_every=1", "--config.eval.max_images=2", "--config.eval.window_batch=1"]
TINY = {
    "deeplabv1_synthetic_mini": ["--config.model.width=4", "--config.model.fc_features=8",
                                 "--config.model.rate=4"],  # a 9x9 pool5 map
    # v2's ResNet path at two scales (the MSC max and the loss on each scale and on the max)
    "deeplabv2_synthetic_mini": ["--config.model.width=2", "--config.model.scales=(1.0,0.5)",
                                 "--config.model.rates=(1,2,3,4)"],
    "deeplabv3_synthetic_mini": ["--config.model.width=4", "--config.model.aspp_features=8",
                                 "--config.model.rates=(1,2,3)"],  # OS16: a 5x5 map
}


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
  return tmp_path_factory.mktemp("tfds_synthetic_deeplab")


def _train(config, workdir, extra):
  assert main.run(["train", "--config", f"{ROOT}/configs/deeplab.py:{config}", "--workdir",
                   str(workdir), *FAST, *extra]) == 0
  result = json.loads((workdir / "train_result.json").read_text())
  assert result["images"] == 2 and 0.0 <= result["mIoU"] <= 1.0
  return result


@pytest.mark.parametrize("config", sorted(TINY))
def test_train_then_evaluate_on_the_synthetic_scenes(config, synthetic_dir, tmp_path):
  extra = [f"--config.data.data_dir={synthetic_dir}", *SMALL_SYNTHETIC, *TINY[config]]
  trained = _train(config, tmp_path / "run", extra)
  out = tmp_path / "eval.json"
  assert main.run(["evaluate", "--config", f"{ROOT}/configs/deeplab.py:{config}", "--workdir",
                   str(tmp_path / "run"), "--output", str(out), *FAST, *extra]) == 0
  evaluated = json.loads(out.read_text())
  # the same checkpoint and protocol: the same numbers as the run's own final evaluation
  assert evaluated["mIoU"] == pytest.approx(trained["mIoU"]) and evaluated["step"] == 2
  assert evaluated["lookalike_mIoU"] == pytest.approx(trained["lookalike_mIoU"], nan_ok=True)


def test_camvid_train_evaluate_with_crf_and_predict_with_crf(shared_path, tmp_path, capsys):
  camvid = shared_path("data/camvid", "shared CamVid")
  config = f"{ROOT}/configs/deeplab.py:deeplabv1_camvid_mini"
  extra = [f"--config.data.manual_dir={camvid}", f"--config.data.data_dir={tmp_path / 'tfds'}",
           "--config.model.width=4", "--config.model.fc_features=8"]
  _train("deeplabv1_camvid_mini", tmp_path / "run", extra)
  out = tmp_path / "eval.json"
  assert main.run(["evaluate", "--config", config, "--workdir", str(tmp_path / "run"), "--output",
                   str(out), *FAST, *extra, "--config.eval.max_images=1",
                   "--config.eval.crf=v1_largefov"]) == 0
  metrics = json.loads(out.read_text())
  assert metrics["images"] == 1 and metrics["crf"]["setting"] == "v1_largefov"
  assert 0.0 <= metrics["crf"]["mIoU"] <= 1.0 and 0.0 <= metrics["mIoU"] <= 1.0
  # the CRF sees every labelled pixel the plain evaluation counts
  assert np.sum(metrics["crf"]["confusion_matrix"]) == np.sum(metrics["confusion_matrix"])
  photo = sorted((camvid / "val").glob("*.png"))[0]
  src = tmp_path / "photos"
  src.mkdir()
  Image.fromarray(np.asarray(Image.open(photo).convert("RGB"))[:90, :120]).save(src / "street.png")
  capsys.readouterr()
  assert main.run(["predict", "--checkpoint", str(tmp_path / "run"), "--input", str(src),
                   "--output", str(tmp_path / "pred"), "--crf", "v1_largefov"]) == 0
  mask = np.asarray(Image.open(tmp_path / "pred" / "street.png"))
  assert mask.shape == (90, 120) and mask.max() < 11
