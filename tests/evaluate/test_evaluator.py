"""Split-level metrics: hand-computed confusion matrices, absent classes, full-split evaluation."""
import json
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import data as data_configs
from psp_jax.evaluate.evaluator import evaluate_split, metrics_markdown
from psp_jax.evaluate.inference import InferenceSettings, SlidingWindowPredictor
from psp_jax.evaluate.metrics import confusion_matrix, segmentation_metrics
from psp_jax.models import PSPNet


def test_confusion_matrix_ignores_255_and_counts_rows_as_labels():
  labels = jnp.asarray([[0, 1, 1, 255], [2, 2, 255, 0]])
  preds = jnp.asarray([[0, 1, 2, 2], [2, 0, 1, 0]])
  cm = np.asarray(confusion_matrix(labels, preds, 3))
  np.testing.assert_array_equal(cm, [[2, 0, 0], [0, 1, 1], [1, 0, 1]])


def test_metrics_from_a_hand_computed_confusion_matrix():
  # rows = label, columns = prediction. Class c is predicted once but never labelled;
  # class d is neither labelled nor predicted: excluded from the means and listed.
  cm = np.array([[5, 1, 1, 0],
                 [2, 3, 0, 0],
                 [0, 0, 0, 0],
                 [0, 0, 0, 0]])
  m = segmentation_metrics(cm, ["a", "b", "c", "d"])
  iou_a = 5 / (7 + 7 - 5)  # TP / (labelled + predicted - TP)
  iou_b = 3 / (5 + 4 - 3)
  assert m["per_class"][0]["iou"] == pytest.approx(iou_a)
  assert m["per_class"][1]["iou"] == pytest.approx(iou_b)
  assert m["per_class"][2]["iou"] == 0.0
  assert math.isnan(m["per_class"][3]["iou"])
  assert m["absent_classes"] == ["d"]
  assert m["mIoU"] == pytest.approx((iou_a + iou_b + 0.0) / 3)
  assert m["mAcc"] == pytest.approx((5 / 7 + 3 / 5) / 2)  # recall over labelled classes only
  assert m["aAcc"] == pytest.approx(8 / 12)
  assert [r["pixels"] for r in m["per_class"]] == [7, 5, 0, 0]
  md = metrics_markdown(m, "t")
  assert "| a | 55.56 | 71.43 | 7 |" in md and "excluded from the means): d" in md


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
  data_cfg = data_configs.synthetic()
  data_cfg.data_dir = str(tmp_path_factory.mktemp("tfds"))
  data_cfg.synthetic = dict(num_train=4, num_val=5, size=(29, 37), seed=0, options={})
  data_cfg.eval_pad_size = (29, 37)
  cfg = ml_collections.ConfigDict(dict(
      data=data_cfg, eval=dict(split="validation", crop_size=(25, 25), base_size=None, scales=(1.0,),
                               flip=True, stride_rate=2 / 3, window_batch=2, max_images=0)))
  model = PSPNet(11, depth=18, width=8, head_features=16, aux_features=8, bins=(1, 2))
  variables = jax.jit(lambda: model.init(jax.random.key(0), jnp.zeros((1, 25, 25, 3))))()
  return cfg, model, variables


def test_evaluate_split_equals_per_image_predictions(tiny_setup, tmp_path):
  cfg, model, variables = tiny_setup
  metrics = evaluate_split(model, variables, cfg, workdir=str(tmp_path), step=7, progress=False)
  from psp_jax.data import open_dataset
  # Recompute independently: the same predictor on the decoded validation records.
  settings = InferenceSettings(crop_size=(25, 25), base_size=None, flip=True, window_batch=2)
  predictor = SlidingWindowPredictor(lambda v, x: model.apply(v, x, train=False), variables, 11,
                                     settings)
  source = open_dataset(cfg.data).sources["validation"]
  from psp_jax.data import eval_iterator
  expected = np.zeros((11, 11), np.int64)
  count = 0
  for batch in eval_iterator(cfg.data, "validation"):
    for i in np.flatnonzero(batch["valid"]):
      h, w = int(batch["height"][i]), int(batch["width"][i])
      pred = predictor.predict(batch["image"][i, :h, :w], normalized=True)
      label = batch["label"][i, :h, :w]
      keep = label != 255
      np.add.at(expected, (label[keep], pred[keep]), 1)
      count += 1
  assert count == len(source) == metrics["images"] == 5
  np.testing.assert_array_equal(np.asarray(metrics["confusion_matrix"]), expected)
  report = json.loads((tmp_path / "eval" / "validation_step7.json").read_text())
  assert report["mIoU"] == pytest.approx(metrics["mIoU"])
  assert (tmp_path / "eval" / "validation_step7.md").read_text().startswith("# Evaluation")
  assert "flip on" in metrics["protocol"]


def test_max_images_is_labelled_as_a_subset(tiny_setup):
  cfg, model, variables = tiny_setup
  cfg = ml_collections.ConfigDict(cfg.to_dict())
  cfg.eval.max_images = 2
  metrics = evaluate_split(model, variables, cfg, progress=False)
  assert metrics["images"] == 2 and "SUBSET" in metrics["protocol"]
  assert np.asarray(metrics["confusion_matrix"]).sum() <= 2 * 29 * 37
