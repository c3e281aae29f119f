"""eval.refine: a segmentation evaluation scores CascadePSP on top of the model's prediction
(every predicted class refined, psp_jax/evaluate/post_steps.py), on all or a spaced subset
of the images, against the unrefined prediction on the same images."""
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
from psp_jax.preprocessing import Preprocessing
from psp_jax.refine.api import Refiner
from psp_jax.refine.on_segmentation import segmentation_steps


class Linear(nn.Module):
  """A per-pixel classifier of 11 classes."""

  @nn.compact
  def __call__(self, x, train=False):
    del train
    return nn.Dense(11)(x)


def _confusion(label, pred):
  cm = np.zeros((11, 11), np.int64)
  keep = label != 255
  np.add.at(cm, (label[keep], pred[keep]), 1)
  return cm


def test_refine_labels_without_background_keeps_the_labels_no_class_claims(refiner):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
  labels = np.zeros((40, 48), np.int32)
  labels[:, 16:32], labels[:, 32:] = 3, 7
  out, probs = refiner.refine_labels(image, labels, L=64, fast=True, background=None,
                                     return_probabilities=True)
  assert sorted(probs) == [0, 3, 7]  # class 0 is an object too
  stack = np.stack([probs[c] for c in (0, 3, 7)])
  claimed = stack.max(0) >= 0.5
  expected = np.where(claimed, np.array([0, 3, 7])[stack.argmax(0)], labels)
  np.testing.assert_array_equal(out, expected)
  assert (~claimed).any() and claimed.any()  # both branches are exercised by this image


def test_evaluate_split_scores_the_refined_prediction(tmp_path, tiny_ckpt):
  data_cfg = data_configs.synthetic()
  data_cfg.data_dir = str(tmp_path / "tfds")
  data_cfg.synthetic = dict(num_train=2, num_val=3, size=(29, 37), seed=0, options={})
  data_cfg.eval_pad_size = (29, 37)
  cfg = ml_collections.ConfigDict(dict(data=data_cfg, eval=dict(
      split="validation", crop_size=(25, 25), base_size=None, scales=(1.0,), flip=False,
      stride_rate=2 / 3, window_batch=2, max_images=0, crf="", crf_images=0,
      refine=dict(checkpoint=tiny_ckpt, L=64, stages="global", images=2))))
  model = Linear()
  variables = model.init(jax.random.key(0), jnp.zeros((1, 1, 1, 3)))
  with pytest.raises(ValueError, match="eval.refine.checkpoint is set: pass its step"):
    evaluate_split(model, variables, cfg, progress=False)  # the evaluate layer cannot make it
  metrics = evaluate_split(model, variables, cfg, workdir=str(tmp_path), step=2, progress=False,
                           steps=segmentation_steps(cfg.eval))
  refined = metrics["refine"]
  assert refined["images"] == 2 and refined["checkpoint"] == tiny_ckpt and refined["L"] == 64
  assert metrics["cost"]["refine_ms_per_image"] > 0 and "crf" not in metrics
  # the same numbers directly: records 0 and 1 of 3 (evenly spaced), refined by psp_jax.Refiner
  pre = Preprocessing.from_meta(data_cfg)
  predictor = SlidingWindowPredictor(lambda v, x: model.apply(v, x), variables, 11,
                                     InferenceSettings(crop_size=(25, 25), base_size=None,
                                                       preprocessing=pre))
  ref = Refiner(tiny_ckpt)
  index, with_refine, without, everything = 0, 0, 0, 0
  for batch in eval_iterator(data_cfg, "validation"):
    for i in np.flatnonzero(batch["valid"]):
      h, w = int(batch["height"][i]), int(batch["width"][i])
      image, label = batch["image"][i, :h, :w], batch["label"][i, :h, :w]
      pred = np.asarray(predictor.probabilities(image, normalized=True))[:h, :w].argmax(-1)
      everything = everything + _confusion(label, pred)
      if index in (0, 1):
        rgb = np.clip(np.rint(pre.denormalize(image)), 0, 255).astype(np.uint8)
        out = ref.refine_labels(rgb, pred.astype(np.int32), L=64, stages="global", background=None)
        with_refine = with_refine + _confusion(label, out)
        without = without + _confusion(label, pred)
      index += 1
  np.testing.assert_array_equal(np.asarray(refined["confusion_matrix"]), with_refine)
  assert refined["without"]["mIoU"] == pytest.approx(segmentation_metrics(without)["mIoU"])
  assert metrics["mIoU"] == pytest.approx(segmentation_metrics(everything)["mIoU"])
  assert not np.array_equal(with_refine, without)  # the refiner changed something
  report = (tmp_path / "eval" / "validation_step2.md").read_text()
  assert "| with refinement |" in report and "2 evenly spaced images" in report
  cfg.eval.refine.checkpoint = str(tmp_path / "nothing")
  with pytest.raises((ValueError, FileNotFoundError), match="nothing"):
    segmentation_steps(cfg.eval)
