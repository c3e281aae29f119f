"""eval.crf: the segmentation evaluation reports the numbers without and with the DenseCRF."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import data as data_configs
from psp_jax.data import eval_iterator
from psp_jax.evaluate.evaluator import evaluate_split
from psp_jax.evaluate.inference import InferenceSettings, SlidingWindowPredictor
from psp_jax.evaluate.metrics import segmentation_metrics
from psp_jax.postprocess import dense_crf
from psp_jax.preprocessing import Preprocessing


class Linear(nn.Module):
  """A per-pixel classifier: windows cannot change its output."""

  @nn.compact
  def __call__(self, x, train=False):
    del train
    return nn.Dense(11)(x)


def test_evaluate_split_with_and_without_crf(tmp_path):
  data_cfg = data_configs.synthetic()
  data_cfg.data_dir = str(tmp_path / "tfds")
  data_cfg.synthetic = dict(num_train=2, num_val=2, size=(29, 37), seed=0, options={})
  data_cfg.eval_pad_size = (29, 37)
  cfg = ml_collections.ConfigDict(dict(data=data_cfg, eval=dict(
      split="validation", crop_size=(25, 25), base_size=None, scales=(1.0,), flip=False,
      stride_rate=2 / 3, window_batch=2, max_images=0, crf="v1_deeplab:w_pos=2")))
  model = Linear()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 1, 1, 3)))
  metrics = evaluate_split(model, variables, cfg, workdir=str(tmp_path), step=3, progress=False)
  cfg.eval.crf = ""
  plain = evaluate_split(model, variables, cfg, progress=False)
  assert "crf" not in plain and metrics["mIoU"] == plain["mIoU"]
  crf = metrics["crf"]
  assert crf["setting"] == "v1_deeplab:w_pos=2" and crf["params"]["w_pos"] == 2.0
  # the CRF numbers from a direct computation: the predictor's probabilities, the RGB image
  pre = Preprocessing.from_meta(data_cfg)
  predictor = SlidingWindowPredictor(lambda v, x: model.apply(v, x), variables, 11,
                                     InferenceSettings(crop_size=(25, 25), base_size=None,
                                                       preprocessing=pre))
  cm = np.zeros((11, 11), np.int64)
  for batch in eval_iterator(data_cfg, "validation"):
    for i in np.flatnonzero(batch["valid"]):
      h, w = int(batch["height"][i]), int(batch["width"][i])
      image, label = batch["image"][i, :h, :w], batch["label"][i, :h, :w]
      probs = np.asarray(predictor.probabilities(image, normalized=True))[:h, :w]
      rgb = np.clip(np.rint(pre.denormalize(image)), 0, 255).astype(np.uint8)
      q = dense_crf(rgb, probs / probs.sum(-1, keepdims=True), crf["params"],
                    inputs="probabilities")
      keep = label != 255
      np.add.at(cm, (label[keep], q.argmax(-1)[keep]), 1)
  np.testing.assert_array_equal(np.asarray(crf["confusion_matrix"]), cm)
  assert crf["mIoU"] == pytest.approx(segmentation_metrics(cm)["mIoU"])
  report = (tmp_path / "eval" / "validation_step3.md").read_text()
  assert "| without CRF |" in report and "| with CRF |" in report
