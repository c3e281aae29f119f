"""The grid-search helper over (images, scores, labels)."""
import numpy as np
import pytest

from psp_jax.postprocess import grid_search
from psp_jax.postprocess.grid_search import confusion, miou

from crf_samples import NUM_CLASSES, camvid_pair, noisy_logits


def test_confusion_and_miou_by_hand():
  labels = np.array([[0, 0, 1, 255]])
  preds = np.array([[0, 1, 1, 0]])
  cm = confusion(labels, preds, 2, 255)
  assert cm.tolist() == [[1, 1], [0, 1]]
  assert miou(cm) == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_grid_rows_best_and_a_zero_weight_setting(shared_data):
  images, scores, labels = [], [], []
  for name, seed in (("0016E5_07959.png", 0), ("0016E5_08009.png", 1)):
    image, label = camvid_pair(shared_data, name)
    images.append(image[::6, ::6])
    labels.append(np.where(label[::6, ::6] == 11, 255, label[::6, ::6]))
    scores.append(noisy_logits(label[::6, ::6], 1.2, seed))
  out = grid_search(images, scores, labels, {"w_bi": (0.0, 5.0), "rgb_bi": (10,)},
                    num_classes=NUM_CLASSES, base={"preset": "v1_deeplab", "w_pos": 0.0})
  assert [r["params"].w_bi for r in out["grid"]] == [0.0, 5.0]
  assert all(r["params"].xy_bi == 50 and r["params"].w_pos == 0.0 for r in out["grid"])
  # all kernel weights 0: the CRF is the identity on the argmax
  assert out["grid"][0]["mIoU"] == pytest.approx(out["no_crf"])
  assert out["best"] is out["grid"][1] and out["grid"][1]["mIoU"] > out["no_crf"] + 0.1
  with pytest.raises(ValueError, match=r"grid keys must be some of"):
    grid_search(images, scores, labels, {"sigma": (1,)}, num_classes=NUM_CLASSES)
  with pytest.raises(ValueError, match="image 0 is"):
    grid_search(images[:1], [scores[1][:-1]], labels[:1], {"w_bi": (1,)}, num_classes=NUM_CLASSES)
