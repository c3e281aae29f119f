"""Class-agnostic object masks from segmentation labels (psp_jax/data/objects.py) and the
refinement pipelines that use them (`data.objects`): components, sizes, classes, crops on
the object, evaluation examples."""
import cv2
import numpy as np
import pytest
from PIL import Image

from data_fixtures import config, data_configs, rgb, save_gray_png, save_image
from psp_jax.data import refine_pipeline as R
from psp_jax.data.objects import ObjectMasks, box_crop

NAMES = ["background", "car", "person", "tree"]


def scene(h=40, w=48) -> np.ndarray:
  """Class 1: a 10x10 square and a 3x3 square (9 px); class 2: an 8-connected diagonal pair of
  6x6 squares (one component of 72 px) and a 5x5 square; class 3 absent; an ignore strip."""
  lab = np.zeros((h, w), np.uint8)
  lab[2:12, 2:12] = 1
  lab[30:33, 40:43] = 1
  lab[20:26, 20:26] = 2
  lab[26:32, 26:32] = 2  # touches the first square only at a corner: 8-connected
  lab[2:7, 30:35] = 2
  lab[:, -2:] = 255
  return lab


def test_components_sizes_and_classes():
  lab = scene()
  objects = ObjectMasks(classes=(1, 2, 3), min_pixels=20)
  found = objects.find(lab)
  assert [(c, int(m.sum())) for c, m in found] == [(1, 100), (2, 25), (2, 72)]  # raster order
  for c, m in found:
    assert (lab[m] == c).all()
    assert cv2.connectedComponents(m.astype(np.uint8), connectivity=8)[0] == 2  # one component
  # the size threshold is inclusive; merging makes one object per class
  assert [int(m.sum()) for _, m in ObjectMasks(classes=(1,), min_pixels=9).find(lab)] == [100, 9]
  merged = ObjectMasks(classes=(1, 2), min_pixels=20, merge_per_class=True).find(lab)
  assert [(c, int(m.sum())) for c, m in merged] == [(1, 100), (2, 97)]  # the 9 px square stays out
  # ignore (255) and absent classes give nothing, even when listed
  assert ObjectMasks(classes=(3,), min_pixels=1).find(lab) == []


def test_components_of_a_real_camvid_annotation(shared_data):
  """Every object of a real CamVid label is one connected single-class region >= min_pixels,
  and the objects together with the dropped small components are exactly the class pixels."""
  from psp_jax.data.classes import CAMVID_CLASSES
  path = sorted((shared_data / "camvid" / "valannot").glob("*.png"))[0]
  lab = np.asarray(Image.open(path))
  objects = ObjectMasks.from_config({"classes": ["Car", "Pedestrian", "Tree"], "min_pixels": 50},
                                    CAMVID_CLASSES)
  assert objects.classes == (5, 8, 9)
  found = objects.find(lab)
  assert found, f"{path.name}: expected objects"
  for c in objects.classes:
    kept = np.zeros(lab.shape, bool)
    for k, m in found:
      if k == c:
        assert m.sum() >= 50 and not (kept & m).any()
        kept |= m
    small = (lab == c) & ~kept
    if small.any():  # whatever was dropped lies in components below the size
      count, comp, stats, _ = cv2.connectedComponentsWithStats(small.astype(np.uint8), connectivity=8)
      assert stats[1:, cv2.CC_STAT_AREA].max() < 50


def test_pick_draws_every_object_and_eval_picks_without_replacement():
  lab = scene()
  objects = ObjectMasks(classes=(1, 2), min_pixels=20, eval_per_image=2)
  sizes = {int(objects.pick(lab, np.random.default_rng(s)).sum()) for s in range(40)}
  assert sizes == {100, 72, 25}
  chosen = objects.pick_eval(lab, np.random.default_rng(0))
  assert len(chosen) == 2 and chosen[0][1].sum() != chosen[1][1].sum()
  assert objects.pick(np.zeros((8, 8), np.uint8), np.random.default_rng(0)) is None


@pytest.mark.parametrize("cfg, message", [
    ({"min_pixel": 3}, r"unknown data.objects fields \['min_pixel'\]"),
    ({"classes": ["cat"]}, r"data.objects.classes: 'cat' is not a class"),
    ({"classes": [7]}, r"data.objects.classes: 7 is outside the classes 0..3"),
    ({"min_pixels": 0}, r"data.objects.min_pixels must be >= 1"),
    ({"eval_per_image": 0}, r"data.objects.eval_per_image must be >= 1"),
    ({"crop_to_box": -0.1}, r"data.objects.crop_to_box .* must be in \[0, 4\], got -0.1"),
])
def test_config_errors_name_the_key(cfg, message):
  with pytest.raises(ValueError, match=message):
    ObjectMasks.from_config(cfg, NAMES)


@pytest.fixture
def object_dataset(tmp_path):
  """A 'folder' segmentation dataset (4 classes) whose train and val labels are `scene()`,
  shifted per image, as refinement data (configs/data.py objects_of)."""
  for split in ("train", "val"):
    for i in range(4):
      save_image(tmp_path / "f" / "images" / split / f"im{i}.png", rgb(40, 48, i))
      save_gray_png(tmp_path / "f" / "masks" / split / f"im{i}.png", np.roll(scene(), i, axis=0))
  segmentation = config("folder", tmp_path / "f", tmp_path / "tfds", num_classes=4, class_names=NAMES)
  cfg = data_configs().objects_of(segmentation, ["car", "person"], min_pixels=20, eval_per_image=2)
  cfg.crop_size = (16, 16)
  return cfg


def test_training_examples_are_single_objects_inside_the_crop(object_dataset):
  it = R.refine_train_iterator(object_dataset, 4, process_index=0, process_count=1)
  sizes = set()
  for _ in range(6):
    batch = next(it)
    for gt in batch["gt"]:
      assert gt.any(), "crop_on_object: every crop holds part of its object"
      count = cv2.connectedComponents(gt.astype(np.uint8), connectivity=8)[0] - 1
      assert count == 1, "one object per example"
      sizes.add(int(gt.sum()))
  assert len(sizes) > 2  # different objects and placements are drawn


def test_evaluation_examples_name_their_object(object_dataset):
  examples = list(R.refine_eval_examples(object_dataset, "validation"))
  assert len(examples) == 8  # 4 images x eval_per_image 2
  names = [e[0] for e in examples]
  assert all(n.split("/")[-1].split("#")[0] in ("car", "person") for n in names), names
  for name, image, gt, coarse in examples:
    assert image.shape == (40, 48, 3) and gt.shape == (40, 48) and gt.sum() in (100, 72, 25)
    assert 0.7 < (gt & coarse).sum() / (gt | coarse).sum() < 1.0  # perturbed input
  again = list(R.refine_eval_examples(object_dataset, "validation"))
  assert all(a[0] == b[0] and np.array_equal(a[3], b[3]) for a, b in zip(examples, again))
  assert len(list(R.refine_eval_examples(object_dataset, "validation", max_images=3))) == 3


@pytest.fixture
def mixed_dataset(object_dataset, tmp_path):
  """object_dataset with a quarter of its training examples from a second folder dataset whose
  images are flat grey (so an example's source shows in its pixels)."""
  for split in ("train", "val"):
    for i in range(3):
      save_image(tmp_path / "g" / "images" / split / f"flat{i}.png", np.full((40, 48, 3), 90 + 40 * i, np.uint8))
      save_gray_png(tmp_path / "g" / "masks" / split / f"flat{i}.png", scene())
  other = config("folder", tmp_path / "g", tmp_path / "tfds_g", num_classes=4, class_names=NAMES)
  other = data_configs().objects_of(other, ["tree", "person"], min_pixels=20)
  return data_configs().mixed(object_dataset, other, 0.25)


def _flat(image: np.ndarray) -> bool:
  return bool(np.ptp(image.reshape(-1, 3), axis=0).max() < 1e-4)


def test_mixed_sources_give_their_share_of_training_examples(mixed_dataset):
  """data.mix: 1 in 4 examples comes from the second source (its images, its own object
  classes), with the main source's crop; evaluation stays on the main source."""
  it = R.refine_train_iterator(mixed_dataset, 4, process_index=0, process_count=1)
  flat = main = 0
  for _ in range(10):
    batch = next(it)
    assert batch["image"].shape == (4, 16, 16, 3)  # the main config's crop for both sources
    for image, gt in zip(batch["image"], batch["gt"]):
      if _flat(image):
        flat += 1
        assert int(gt.sum()) > 0  # the second source's objects ('person' is class 2 in both)
      else:
        main += 1
  assert flat == 10 and main == 30, (flat, main)
  names = [e[0] for e in R.refine_eval_examples(mixed_dataset, "validation")]
  assert len(names) == 8 and all(n.startswith("im") for n in names), names
  # resuming a mixed stream continues on exactly the next batch
  it = R.refine_train_iterator(mixed_dataset, 4, process_index=0, process_count=1)
  next(it)
  state = it.get_state()
  expected = next(it)
  again = R.refine_train_iterator(mixed_dataset, 4, process_index=0, process_count=1)
  again.set_state(state)
  np.testing.assert_array_equal(next(again)["image"], expected["image"])


@pytest.mark.parametrize("mix, message", [
    ({"data": None, "fraction": 1.0}, r"data.mix.fraction .* must be in \(0, 1\), got 1.0"),
    ({"fraction": 0.5}, r"data.mix must have the fields \['data', 'fraction'\]"),
    ({"data": {}, "weight": 0.5}, r"data.mix must have the fields"),
])
def test_mix_errors_name_the_key(mix, message):
  with pytest.raises(ValueError, match=message):
    R.mix_source({"mix": mix})


def test_box_crop_frames_the_object_with_its_context():
  """The crop is the object's box with `context` x its longer side around it, resized: a 10x20
  box with context 0.5 spans 40 image pixels (x U[0.85, 1.2]) in a 64 px crop, so the object's
  longer side covers 64 / 2 of it (within the jitter) and it stays inside the crop."""
  h, w = 120, 160
  mask = np.zeros((h, w), np.uint8)
  mask[50:60, 70:90] = 1  # 10 high, 20 wide
  image = np.zeros((h, w, 3), np.float32)
  image[..., 0] = np.arange(w)[None, :]  # red = x coordinate, to check the mapping
  rng = np.random.default_rng(0)
  for _ in range(20):
    img, crop, box = box_crop(image, mask, rng, (64, 64), 0.5, np.array([1.0, 2.0, 3.0], np.float32))
    assert img.shape == (64, 64, 3) and crop.shape == (64, 64) and crop.dtype == np.uint8
    ys, xs = np.nonzero(crop)
    width = xs.max() - xs.min() + 1
    assert 64 / 2 / 1.2 - 2 <= width <= 64 / 2 / 0.85 + 2, width
    assert 0.4 <= (ys.max() - ys.min() + 1) / width <= 0.6  # the aspect ratio is kept
    assert ys.min() > 0 and xs.min() > 0 and ys.max() < 63 and xs.max() < 63
    assert box == (0, 64, 0, 64)  # the object is far from the image's edges
    # image and mask are resampled by the same map: the mask's columns hold x in 70..89
    red = img[..., 0][crop > 0]
    assert 69 <= red.min() and red.max() <= 90


def test_box_crop_pads_outside_the_image():
  mask = np.zeros((40, 40), np.uint8)
  mask[0:12, 0:8] = 1  # in the corner: most of the context lies outside the image
  image = np.full((40, 40, 3), 200.0, np.float32)
  fill = np.array([1.0, 2.0, 3.0], np.float32)
  img, crop, (y0, y1, x0, x1) = box_crop(image, mask, np.random.default_rng(1), (32, 32), 1.0, fill)
  assert y0 > 0 and x0 > 0 and (y1, x1) == (32, 32)
  np.testing.assert_array_equal(img[0, 0], fill)  # padding
  np.testing.assert_array_equal(img[y0 + 1:y1 - 1, x0 + 1:x1 - 1], 200.0)  # image pixels
  assert not crop[:y0].any() and not crop[:, :x0].any() and crop.any()


def test_training_crops_to_the_object_box(object_dataset):
  """data.objects.crop_to_box: every training crop is one object framed by its box (resized up,
  so a 25-100 px object fills a good part of the 16 px crop instead of a corner of it)."""
  object_dataset.objects.crop_to_box = 0.25
  it = R.refine_train_iterator(object_dataset, 4, process_index=0, process_count=1)
  for _ in range(4):
    for gt in next(it)["gt"]:
      count = cv2.connectedComponents(gt.astype(np.uint8), connectivity=8)[0] - 1
      assert count == 1 and 0.15 < gt.mean() < 0.75, gt.mean()
