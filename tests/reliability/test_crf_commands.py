"""DenseCRF through the commands, on a trained PSPNet run: `psp-jax evaluate --config.eval.crf`
reports the numbers without and with it; `psp-jax predict --crf` writes the CRF's labels. (The
DeepLab side is tests/train/test_deeplab_end_to_end.py.)"""
import json

import numpy as np
from cli_fixtures import CONFIG, tiny
from PIL import Image

from psp_jax import main


def test_evaluate_and_predict_with_a_crf_preset(trained_workdir, data_dir, tmp_path, capsys):
  before = {p.name: json.loads(p.read_text()) for p in (trained_workdir / "eval").glob("*.json")}
  out = tmp_path / "eval.json"
  assert main.run(["evaluate", "--config", CONFIG, "--workdir", str(trained_workdir), "--output",
                   str(out), *tiny(data_dir), "--config.eval.crf=v2_resnet"]) == 0
  metrics = json.loads(out.read_text())
  assert metrics["crf"]["setting"] == "v2_resnet" and metrics["crf"]["params"]["w_bi"] == 4.0
  plain = before[f"validation_step{metrics['step']}.json"]  # training's own final evaluation
  assert metrics["mIoU"] == plain["mIoU"] and "crf" not in plain  # the CRF leaves them alone
  assert np.sum(metrics["crf"]["confusion_matrix"]) == np.sum(metrics["confusion_matrix"])
  report = sorted((trained_workdir / "eval").glob("*.md"), key=lambda p: p.stat().st_mtime)[-1]
  assert "With DenseCRF `v2_resnet`" in report.read_text()

  src = tmp_path / "in"
  src.mkdir()
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 255, (40, 52, 3), np.uint8)).save(src / "noise.png")
  for crf, name in (("", "plain"), ("v2_resnet:w_bi=0,w_pos=0", "identity")):
    assert main.run(["predict", "--checkpoint", str(trained_workdir), "--input", str(src), "--output",
                     str(tmp_path / name), *(["--crf", crf] if crf else [])]) == 0
  # with both kernel weights at 0 the CRF is the identity on the argmax
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "identity" / "noise.png")),
                                np.asarray(Image.open(tmp_path / "plain" / "noise.png")))
  capsys.readouterr()
  assert main.run(["predict", "--checkpoint", str(trained_workdir), "--input", str(src), "--output",
                   str(tmp_path / "bad"), "--crf", "v9_nope"]) != 0
  assert "v9_nope" in capsys.readouterr().err
