"""Split-level metrics: hand-computed confusion matrices, absent classes, full-split evaluation\nagainst a direct computation, max_images, the empty matrix."""
import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from configs import data as data_configs
from psp_jax.data import eval_iterator
from psp_jax.evaluate.evaluator import evaluate_split, local_image_count, metrics_markdown
from psp_jax.data.synthetic import SYNTHETIC_CLASSES
from psp_jax.evaluate.metrics import confusion_matrix, lookalike_metrics, segmentation_metrics


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


def test_lookalike_metrics_from_a_hand_computed_confusion_matrix():
  names = ["ground", "boat", "car", "bird", "cow"]
  cm = np.array([[10, 0, 0, 0, 0],
                 [0, 6, 3, 0, 1],    # boat: 3 of its 10 pixels called car
                 [0, 1, 4, 0, 0],    # car: 1 of 5 called boat
                 [0, 0, 0, 8, 0],
                 [0, 0, 0, 2, 0]])   # cow: every pixel lost (2 to bird): IoU 0
  m = lookalike_metrics(cm, names, (("boat", "car"), ("bird", "cow")))
  ious = [6 / (10 + 7 - 6), 4 / (5 + 7 - 4), 8 / (8 + 10 - 8), 0.0]
  assert m["lookalike_mIoU"] == pytest.approx(np.mean(ious))
  assert m["twin_rate"] == pytest.approx((3 + 1 + 0 + 2) / (10 + 5 + 8 + 2))
  assert m["twins"] == pytest.approx({"boat->car": 0.3, "car->boat": 0.2, "bird->cow": 0.0, "cow->bird": 1.0})
  with pytest.raises(ValueError, match=r"data.lookalike_groups.*unknown: \['cat'\]"):
    lookalike_metrics(cm, names, (("boat", "cat"),))
  with pytest.raises(ValueError, match="at least two classes"):
    lookalike_metrics(cm, names, (("boat",),))


class PerPixel(nn.Module):
  """A per-pixel linear classifier: sliding windows, their overlaps and flips cannot change its
  output, so the evaluation must equal argmax(x @ W + b) pixel by pixel."""
  num_classes: int

  @nn.compact
  def __call__(self, x, train=False):
    del train
    return nn.Dense(self.num_classes)(x)


def _config(data_cfg, max_images=0):
  return ml_collections.ConfigDict(dict(
      data=data_cfg, eval=dict(split="validation", crop_size=(25, 25), base_size=None, scales=(1.0,),
                               flip=True, stride_rate=2 / 3, window_batch=2, max_images=max_images)))


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
  data_cfg = data_configs.synthetic()
  data_cfg.data_dir = str(tmp_path_factory.mktemp("tfds"))
  data_cfg.synthetic = dict(num_train=4, num_val=5, size=(29, 37), seed=0, options={})
  data_cfg.eval_pad_size = (29, 37)
  model = PerPixel(11)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 1, 1, 3)))
  return _config(data_cfg), model, variables


def _direct_confusion(cfg, variables, count):
  """The confusion matrix of the first `count` validation images, straight from the weights."""
  dense = variables["params"]["Dense_0"]
  w, b = np.asarray(dense["kernel"], np.float64), np.asarray(dense["bias"], np.float64)
  cm = np.zeros((11, 11), np.int64)
  seen = 0
  for batch in eval_iterator(cfg.data, "validation"):
    for i in np.flatnonzero(batch["valid"]):
      if seen == count:
        return cm, seen
      h, w_ = int(batch["height"][i]), int(batch["width"][i])
      pred = np.argmax(batch["image"][i, :h, :w_].astype(np.float64) @ w + b, axis=-1)
      label = batch["label"][i, :h, :w_]
      keep = label != 255
      np.add.at(cm, (label[keep], pred[keep]), 1)
      seen += 1
  return cm, seen


def test_evaluate_split_equals_a_direct_computation(tiny_setup, tmp_path):
  cfg, model, variables = tiny_setup
  metrics = evaluate_split(model, variables, cfg, workdir=str(tmp_path), step=7, progress=False)
  expected, count = _direct_confusion(cfg, variables, count=None)
  assert count == metrics["images"] == 5
  assert expected.sum() > 0.9 * 5 * 29 * 37  # nearly every pixel labelled
  np.testing.assert_array_equal(np.asarray(metrics["confusion_matrix"]), expected)
  assert metrics["mIoU"] == pytest.approx(segmentation_metrics(expected)["mIoU"])
  report = json.loads((tmp_path / "eval" / "validation_step7.json").read_text())
  assert report["mIoU"] == pytest.approx(metrics["mIoU"])
  assert (tmp_path / "eval" / "validation_step7.md").read_text().startswith("# Evaluation")
  assert "flip on" in metrics["protocol"] and "SUBSET" not in metrics["protocol"]
  # the synthetic scenes' config names their look-alike groups: the report carries their metrics
  assert cfg.data.lookalike_groups == (("boat", "car"), ("bird", "cow"))
  assert metrics["lookalike_mIoU"] == pytest.approx(lookalike_metrics(
      expected, SYNTHETIC_CLASSES, cfg.data.lookalike_groups)["lookalike_mIoU"], nan_ok=True)
  assert set(metrics["twins"]) == {"boat->car", "car->boat", "bird->cow", "cow->bird"}
  assert "Look-alike classes" in (tmp_path / "eval" / "validation_step7.md").read_text()


def test_max_images_evaluates_exactly_the_first_images(tiny_setup):
  cfg, model, variables = tiny_setup
  metrics = evaluate_split(model, variables, _config(cfg.data, max_images=2), progress=False)
  expected, count = _direct_confusion(cfg, variables, count=2)
  assert metrics["images"] == count == 2
  assert "SUBSET: first 2 of 5 images" in metrics["protocol"]
  np.testing.assert_array_equal(np.asarray(metrics["confusion_matrix"]), expected)
  with pytest.raises(ValueError, match=r"eval.max_images=-1: must be >= 0"):
    evaluate_split(model, variables, _config(cfg.data, max_images=-1), progress=False)


def test_each_process_takes_its_share_of_the_first_images():
  # process p reads records p, p + P, ...: of the first 5 records, 0, 2, 4 and 1, 3
  assert [local_image_count(5, p, 2) for p in range(2)] == [3, 2]
  assert [local_image_count(2, p, 4) for p in range(4)] == [1, 1, 0, 0]
  assert local_image_count(0, 0, 2) is None  # 0: no limit
  for m in range(1, 12):
    assert sum(local_image_count(m, p, 3) for p in range(3)) == m


def test_an_evaluation_without_labelled_pixels_is_an_error(tmp_path):
  """Labels that are all 'ignore' give an empty confusion matrix: no metrics, an error."""
  for split in ("train", "val"):
    for i in range(2):
      for kind, array in (("images", np.full((12, 16, 3), 90 + i, np.uint8)),
                          ("masks", np.full((12, 16), 255, np.uint8))):
        (tmp_path / "f" / kind / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(tmp_path / "f" / kind / split / f"img{i}.png")
  data_cfg = data_configs.folder()
  data_cfg.update(manual_dir=str(tmp_path / "f"), data_dir=str(tmp_path / "tfds"), num_classes=2,
                  class_names=["a", "b"], label_map={0: 0, 255: 255}, worker_count=0)
  model = PerPixel(2)
  variables = model.init(jax.random.key(0), jnp.zeros((1, 1, 1, 3)))
  with pytest.raises(ValueError, match=r"split 'validation' \(2 images, eval.max_images=0\) counted "
                                       r"no labelled pixel"):
    evaluate_split(model, variables, _config(data_cfg), progress=False)
