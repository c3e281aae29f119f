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


def _setup(tmp_path, num_val=2):
  data_cfg = data_configs.synthetic()
  data_cfg.data_dir = str(tmp_path / "tfds")
  data_cfg.synthetic = dict(num_train=2, num_val=num_val, size=(29, 37), seed=0, options={})
  data_cfg.eval_pad_size = (29, 37)
  cfg = ml_collections.ConfigDict(dict(data=data_cfg, eval=dict(
      split="validation", crop_size=(25, 25), base_size=None, scales=(1.0,), flip=False,
      stride_rate=2 / 3, window_batch=2, max_images=0, crf="v1_deeplab:w_pos=2", crf_images=0)))
  model = Linear()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 1, 1, 3)))
  return cfg, model, variables


def _direct(cfg, model, variables, params):
  """Per record (in split order): the confusion matrices without and with the CRF, computed
  from the predictor's probabilities and the RGB image."""
  pre = Preprocessing.from_meta(cfg.data)
  predictor = SlidingWindowPredictor(lambda v, x: model.apply(v, x), variables, 11,
                                     InferenceSettings(crop_size=(25, 25), base_size=None,
                                                       preprocessing=pre))
  out = []
  for batch in eval_iterator(cfg.data, "validation"):
    for i in np.flatnonzero(batch["valid"]):
      h, w = int(batch["height"][i]), int(batch["width"][i])
      image, label = batch["image"][i, :h, :w], batch["label"][i, :h, :w]
      probs = np.asarray(predictor.probabilities(image, normalized=True))[:h, :w]
      rgb = np.clip(np.rint(pre.denormalize(image)), 0, 255).astype(np.uint8)
      q = dense_crf(rgb, probs / probs.sum(-1, keepdims=True), params, inputs="probabilities")
      keep = label != 255
      plain, crf = np.zeros((11, 11), np.int64), np.zeros((11, 11), np.int64)
      np.add.at(plain, (label[keep], probs.argmax(-1)[keep]), 1)
      np.add.at(crf, (label[keep], q.argmax(-1)[keep]), 1)
      out.append((plain, crf))
  return out


def test_evaluate_split_with_and_without_crf(tmp_path):
  cfg, model, variables = _setup(tmp_path)
  metrics = evaluate_split(model, variables, cfg, workdir=str(tmp_path), step=3, progress=False)
  cfg.eval.crf = ""
  plain = evaluate_split(model, variables, cfg, progress=False)
  assert "crf" not in plain and metrics["mIoU"] == plain["mIoU"]
  crf = metrics["crf"]
  assert crf["setting"] == "v1_deeplab:w_pos=2" and crf["params"]["w_pos"] == 2.0
  assert crf["images"] == 2 and "without" not in crf  # every image: the main numbers pair
  cm = sum(c for _, c in _direct(cfg, model, variables, crf["params"]))
  np.testing.assert_array_equal(np.asarray(crf["confusion_matrix"]), cm)
  assert crf["mIoU"] == pytest.approx(segmentation_metrics(cm)["mIoU"])
  report = (tmp_path / "eval" / "validation_step3.md").read_text()
  assert "| without CRF |" in report and "| with CRF |" in report


def test_crf_on_evenly_spaced_images_is_scored_against_no_crf_on_the_same_images(tmp_path):
  cfg, model, variables = _setup(tmp_path, num_val=4)
  cfg.eval.crf_images = 2
  metrics = evaluate_split(model, variables, cfg, workdir=str(tmp_path), step=1, progress=False)
  crf = metrics["crf"]
  assert crf["images"] == 2 and metrics["images"] == 4
  per_image = _direct(cfg, model, variables, crf["params"])
  chosen = [per_image[0], per_image[2]]  # records 0 and 2 of 4
  with_crf = sum(c for _, c in chosen)
  without = sum(p for p, _ in chosen)
  np.testing.assert_array_equal(np.asarray(crf["confusion_matrix"]), with_crf)
  assert crf["without"]["mIoU"] == pytest.approx(segmentation_metrics(without)["mIoU"])
  assert crf["mIoU"] == pytest.approx(segmentation_metrics(with_crf)["mIoU"])
  # the main numbers still cover all four images
  assert metrics["mIoU"] == pytest.approx(segmentation_metrics(sum(p for p, _ in per_image))["mIoU"])
  report = (tmp_path / "eval" / "validation_step1.md").read_text()
  assert "2 evenly spaced images" in report
  cfg.eval.crf_images = -1
  with pytest.raises(ValueError, match="eval.crf_images=-1"):
    evaluate_split(model, variables, cfg, progress=False)
