"""Refinement data: binary-mask datasets in their real layouts, and the CascadePSP training and
evaluation pipelines (crops, padding, colour, perturbed masks, determinism, resume)."""
import pathlib
import pickle

import numpy as np
import pytest

from data_fixtures import config, rgb, save_gray_png, save_image
from psp_jax.data import labels as L
from psp_jax.data import refine_pipeline as R
from psp_jax.data import transforms as T
from psp_jax.data.builders import make_builder, open_dataset
from psp_jax.data.builders.binary_masks import LayoutError
from psp_jax.data.perturb import mask_iou


# --- fixtures in the layouts as distributed -------------------------------------------------------
def blob_mask(h, w, seed):
  """0/255 mask with an ellipse and grey levels around the threshold (as JPEG-compressed masks)."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:h, :w]
  cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
  inside = ((yy - cy) / (0.3 * h)) ** 2 + ((xx - cx) / (0.3 * w)) ** 2 < 1
  m = np.where(inside, 255, 0).astype(np.uint8)
  m[0, :4] = [100, 127, 128, 200]  # threshold 127: 100, 127 -> 0; 128, 200 -> 1
  return m


def _pair(img_path, mask_path, h, w, seed, expected, mask_fn=save_gray_png):
  save_image(img_path, rgb(h, w, seed))
  m = blob_mask(h, w, seed)
  mask_fn(mask_path, m)
  expected[img_path] = (m > 127).astype(np.uint8)


def write_layout(layout: str, d: pathlib.Path, n: int = 3, h: int = 20, w: int = 24, seed: int = 0) -> dict:
  """Write `n` examples of `layout` under `d`; returns {image path: expected {0,1} label}."""
  exp = {}
  for i in range(n):
    s = seed + i
    if layout == "msra10k":
      base = d / "MSRA10K_Imgs_GT" / "Imgs"
      _pair(base / f"{i}.jpg", base / f"{i}.png", h, w, s, exp)
    elif layout == "dut_omron":
      _pair(d / "DUT-OMRON-image" / f"im{i}.jpg", d / "pixelwiseGT-new-PNG" / f"im{i}.png", h, w, s, exp)
    elif layout == "ecssd":
      _pair(d / "images" / f"{i:04d}.jpg", d / "ground_truth_mask" / f"{i:04d}.png", h, w, s, exp)
    elif layout == "fss1000":
      cls = d / "fewshot_data" / ("ant" if i % 2 else "zebra")
      # FSS-1000 masks are RGB PNGs with equal channels
      _pair(cls / f"{i + 1}.jpg", cls / f"{i + 1}.png", h, w, s, exp,
            lambda p, m: save_image(p, np.repeat(m[..., None], 3, -1)))
    elif layout == "duts":
      base = d / "DUTS-TR"
      _pair(base / "DUTS-TR-Image" / f"ILSVRC_{i}.jpg", base / "DUTS-TR-Mask" / f"ILSVRC_{i}.png", h, w, s, exp)
    elif layout == "pairs":
      _pair(d / "images" / f"x{i}.png", d / "masks" / f"x{i}.png", h, w, s, exp)
    elif layout == "flat":
      _pair(d / f"f{i}.jpg", d / f"f{i}.png", h, w, s, exp)
    else:
      raise ValueError(layout)
  return exp


def bm_config(tmp_path, sources, val_sources=(), **kw):
  cfg = config("binary_masks", "", tmp_path / "tfds", **kw)
  cfg.root = str(tmp_path)
  cfg.sources = [dict(s) for s in sources]
  cfg.val_sources = [dict(s) for s in val_sources]
  return cfg


def labels_by_name(ds, split):
  src = ds.sources[split]
  return {src[i]["name"].decode(): L.decode_label(src[i]["label"]) for i in range(len(src))}


LAYOUTS = ["msra10k", "dut_omron", "ecssd", "fss1000", "duts", "pairs", "flat"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_prepares_with_thresholded_masks(tmp_path, layout):
  exp = write_layout(layout, tmp_path / "src", n=3)
  ds = open_dataset(bm_config(tmp_path, [{"layout": layout, "dir": "src"}]))
  assert ds.class_names == ("background", "foreground") and sorted(ds.sources) == ["train"]
  got = labels_by_name(ds, "train")
  assert len(got) == 3
  by_file = {p.name: lab for p, lab in exp.items()}
  for name, lab in got.items():
    assert name.startswith(f"{layout}:")
    np.testing.assert_array_equal(lab, by_file[pathlib.PurePosixPath(name.split(":", 1)[1]).name], err_msg=name)
    assert lab[0, :4].tolist() == [0, 0, 1, 1]  # 100 and 127 are background, 128 and 200 foreground


def test_mixed_sources_and_a_validation_split(tmp_path):
  write_layout("msra10k", tmp_path / "MSRA", n=3)
  write_layout("fss1000", tmp_path / "FSS", n=4, seed=10)
  write_layout("ecssd", tmp_path / "ECSSD", n=2, seed=20)
  val = tmp_path / "DUTS"
  write_layout("duts", val, n=2, seed=30)
  cfg = bm_config(tmp_path, [{"layout": "msra10k", "dir": "MSRA"}, {"layout": "fss1000", "dir": "FSS"},
                             {"layout": "ecssd", "dir": str(tmp_path / "ECSSD")}],
                  [{"layout": "duts", "dir": "DUTS/DUTS-TR"}])
  ds = open_dataset(cfg)
  assert {k: len(v) for k, v in ds.sources.items()} == {"train": 9, "validation": 2}
  names = labels_by_name(ds, "train")
  assert sorted({n.split(":")[0] for n in names}) == ["ecssd", "fss1000", "msra10k"]
  assert sum(n.startswith("fss1000:fewshot_data/ant/") for n in names) == 2
  info = ds.split_info("train")
  assert sum(info["class_pixels"]) == 9 * 20 * 24 and info["ignore_pixels"] == 0


def test_sources_change_the_prepared_dataset(tmp_path):
  write_layout("flat", tmp_path / "a", n=2)
  write_layout("flat", tmp_path / "b", n=2)
  one = make_builder(bm_config(tmp_path, [{"layout": "flat", "dir": "a"}]))
  two = make_builder(bm_config(tmp_path, [{"layout": "flat", "dir": "a"}, {"layout": "flat", "dir": "b"}]))
  thr = make_builder(bm_config(tmp_path, [{"layout": "flat", "dir": "a"}], mask_threshold=200))
  assert len({one.builder_config.name, two.builder_config.name, thr.builder_config.name}) == 3


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_folder_without_the_layout_names_folder_and_layout(tmp_path, layout):
  (tmp_path / "empty").mkdir()
  save_image(tmp_path / "empty" / "stray.bmp", rgb(4, 4, 0))
  with pytest.raises(LayoutError, match=f"binary_masks source '{layout}'.*empty.*expected"):
    open_dataset(bm_config(tmp_path, [{"layout": layout, "dir": "empty"}]))


def test_configuration_errors(tmp_path):
  with pytest.raises(LayoutError, match="does not exist"):
    open_dataset(bm_config(tmp_path, [{"layout": "ecssd", "dir": "nowhere"}]))
  with pytest.raises(ValueError, match="layout 'voc' is not one of"):
    write_layout("flat", tmp_path / "f", n=1)
    open_dataset(bm_config(tmp_path, [{"layout": "voc", "dir": "f"}]))
  with pytest.raises(ValueError, match="data.sources is empty"):
    open_dataset(bm_config(tmp_path, []))
  with pytest.raises(ValueError, match=r"data.sources\[0\] must be"):
    make_builder(bm_config(tmp_path, [{"layout": "flat"}]))
  write_layout("duts", tmp_path / "D", n=1)
  save_image(tmp_path / "D" / "DUTS-TE" / "DUTS-TE-Image" / "t.jpg", rgb(4, 4, 0))
  (tmp_path / "D" / "DUTS-TE" / "DUTS-TE-Mask").mkdir()
  with pytest.raises(LayoutError, match="several DUTS parts"):
    open_dataset(bm_config(tmp_path, [{"layout": "duts", "dir": "D"}]))


def test_missing_mask_is_a_bad_example_named_or_skipped(tmp_path):
  write_layout("ecssd", tmp_path / "E", n=3)
  (tmp_path / "E" / "ground_truth_mask" / "0001.png").unlink()
  with pytest.raises(L.BadExampleError, match="0001.png"):
    open_dataset(bm_config(tmp_path, [{"layout": "ecssd", "dir": "E"}]))
  ds = open_dataset(bm_config(tmp_path, [{"layout": "ecssd", "dir": "E"}], skip_bad_examples=True))
  assert len(ds.sources["train"]) == 2 and len(ds.split_info("train")["skipped"]) == 1


# --- the training pipeline ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
  """synthetic_objects at 48 px: 12 train scenes, 4 validation scenes."""
  cfg = config("synthetic_objects", "", tmp_path_factory.mktemp("tfds_refine"), crop_size=(32, 32))
  cfg.synthetic = dict(num_train=12, num_val=4, size=(48, 48), seed=0, options={})
  return cfg, open_dataset(cfg)


def _take(it, n):
  return [next(it) for _ in range(n)]


def test_batches_shapes_types_and_values(synthetic):
  cfg, ds = synthetic
  batch = next(R.refine_train_iterator(cfg, 4, dataset=ds, process_index=0, process_count=1))
  assert sorted(batch) == ["gt", "image", "seg"]
  assert batch["image"].shape == (4, 32, 32, 3) and batch["image"].dtype == np.float32
  for k in ("seg", "gt"):
    assert batch[k].shape == (4, 32, 32) and batch[k].dtype == np.float32
    assert set(np.unique(batch[k]).tolist()) <= {0.0, 1.0}
  assert -2.2 < float(batch["image"].min()) and float(batch["image"].max()) < 2.7  # ImageNet-normalised


def test_seg_is_a_perturbed_gt(synthetic):
  cfg, ds = synthetic
  batches = _take(R.refine_train_iterator(cfg, 4, dataset=ds, process_index=0, process_count=1), 6)
  ious = [mask_iou(s, g) for b in batches for s, g in zip(b["seg"], b["gt"]) if g.any()]
  assert len(ious) > 10
  assert all(0.75 - 1e-9 <= i < 1.0 for i in ious), ious
  assert any(not np.array_equal(s, g) for b in batches for s, g in zip(b["seg"], b["gt"]))


def test_deterministic_and_resumes_on_the_next_batch(synthetic):
  cfg, ds = synthetic
  kw = dict(dataset=ds, process_index=0, process_count=1)
  a = _take(R.refine_train_iterator(cfg, 4, **kw), 5)
  it = R.refine_train_iterator(cfg, 4, **kw)
  _take(it, 3)  # past the first epoch (3 batches of 4 from 12 records)
  state = it.get_state()
  resumed = R.refine_train_iterator(cfg, 4, **kw)
  resumed.set_state(state)
  for x, y in zip(a[3:], _take(resumed, 2)):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)
  cfg2 = cfg.copy_and_resolve_references()
  cfg2.seed = 1
  b = _take(R.refine_train_iterator(cfg2, 4, **kw), 2)
  assert not np.array_equal(a[0]["seg"], b[0]["seg"])


def test_two_processes_split_the_global_batch(synthetic):
  cfg, ds = synthetic
  p0 = next(R.refine_train_iterator(cfg, 4, dataset=ds, process_index=0, process_count=2))
  p1 = next(R.refine_train_iterator(cfg, 4, dataset=ds, process_index=1, process_count=2))
  assert p0["image"].shape[0] == p1["image"].shape[0] == 2
  assert not np.array_equal(p0["image"], p1["image"])


def test_foreground_classes_map_labels_to_the_object_mask(synthetic):
  cfg, ds = synthetic
  cfg = cfg.copy_and_resolve_references()
  cfg.crop_size = (48, 48)
  cfg.shuffle = False
  cfg.refine_augment.crop = False
  cfg.refine_augment.flip_prob = 0.0
  batch = next(R.refine_train_iterator(cfg, 4, dataset=ds, process_index=0, process_count=1))
  src = ds.sources["train"]
  for i in range(4):
    label = L.decode_label(src[i]["label"])
    np.testing.assert_array_equal(batch["gt"][i], np.isin(label, [5, 6, 7, 8, 9, 10]).astype(np.float32))
  names = list(ds.class_names)
  table = R.foreground_table({"foreground_classes": ["car", 9]}, names)
  assert np.nonzero(table)[0].tolist() == [names.index("car"), 9] and table[255] == 0
  with pytest.raises(ValueError, match="'plane' is not a class"):
    R.foreground_table({"foreground_classes": ["plane"]}, names)
  with pytest.raises(ValueError, match="outside the classes 0..10"):
    R.foreground_table({"foreground_classes": [11]}, names)
  with pytest.raises(ValueError, match="foreground_classes is not set"):
    R.foreground_table({}, names)
  binary = R.foreground_table({}, ("background", "foreground"))
  assert binary[:2].tolist() == [0, 1] and binary[255] == 0  # ignore -> background


def test_images_smaller_than_the_crop_are_padded(tmp_path):
  write_layout("flat", tmp_path / "small", n=4, h=20, w=24)
  cfg = bm_config(tmp_path, [{"layout": "flat", "dir": "small"}], crop_size=(32, 40))
  cfg.refine_augment.grayscale_prob = 0.0
  batches = _take(R.refine_train_iterator(cfg, 4, process_index=0, process_count=1), 2)
  offsets = set()
  for b in batches:
    for img, gt, seg in zip(b["image"], b["gt"], b["seg"]):
      real = np.any(np.abs(img) > 1e-5, axis=-1)  # padding is the mean pixel: 0 after normalising
      ys, xs = np.nonzero(real)
      assert real.sum() == 20 * 24 and (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == (20, 24)
      assert not gt[~real].any()  # masks are padded with background
      offsets.add((int(ys.min()), int(xs.min())))
      assert seg.shape == (32, 40)
  assert len(offsets) > 1  # the image lands at random places in the crop


def test_crop_flip_and_colour_steps():
  rng = np.random.default_rng(0)
  image = rgb(10, 12, 3).astype(np.float32)
  mask = (rgb(10, 12, 4)[..., 0] > 127).astype(np.uint8)
  fill = T.mean_pixel()
  img, m, (y0, y1, x0, x1) = R.crop_with_padding(image, mask, rng, (6, 16), fill)
  assert img.shape == (6, 16, 3) and (y1 - y0, x1 - x0) == (6, 12)
  assert (img[:, :x0] == fill).all() and (img[:, x1:] == fill).all() and not m[:, :x0].any()
  off = R.RefineAugment(brightness=0, contrast=0, saturation=0, grayscale_prob=0)
  np.testing.assert_array_equal(R.color_jitter(image, rng, off), image)
  grey = R.color_jitter(image, rng, R.RefineAugment(grayscale_prob=1.0))
  assert np.allclose(grey[..., 0], grey[..., 1]) and np.allclose(grey[..., 1], grey[..., 2])
  jit = R.color_jitter(image, rng, R.RefineAugment(brightness=0.2, contrast=0, saturation=0, grayscale_prob=0))
  ratio = jit[image > 20] / image[image > 20]
  assert 0.8 <= ratio.min() and ratio.max() <= 1.2 and ratio.std() < 0.02  # one brightness factor
  flipped = R.refine_train_transform(image.astype(np.uint8), mask, np.random.default_rng(1),
                                     R.RefineAugment(crop=False, flip_prob=1.0, brightness=0, contrast=0,
                                                     saturation=0, grayscale_prob=0), (10, 12))
  np.testing.assert_array_equal(flipped["gt"], mask[:, ::-1])
  np.testing.assert_allclose(flipped["image"], T.normalize(image[:, ::-1]), atol=1e-5)
  with pytest.raises(ValueError, match="unknown data.refine_augment fields"):
    R.RefineAugment.from_config({"hue": 0.1})
  mapper = R.RefineTrainMap(decode=None, foreground=np.zeros(256, np.uint8), aug=R.RefineAugment(),
                            crop_size=(8, 8), preprocessing=T.DEFAULT, seed=0, records_per_epoch=1)
  assert pickle.loads(pickle.dumps(mapper)).aug == mapper.aug  # worker processes get a copy


# --- evaluation examples --------------------------------------------------------------------------
def test_eval_examples_are_full_size_deterministic_and_skip_empty_masks(tmp_path, capsys):
  write_layout("flat", tmp_path / "val", n=3, h=40, w=50)
  save_image(tmp_path / "val" / "zz_empty.jpg", rgb(40, 50, 9))
  save_gray_png(tmp_path / "val" / "zz_empty.png", np.zeros((40, 50), np.uint8))
  write_layout("flat", tmp_path / "train", n=2)
  cfg = bm_config(tmp_path, [{"layout": "flat", "dir": "train"}], [{"layout": "flat", "dir": "val"}])
  examples = R.refine_eval_examples(cfg, "validation", seed=3)
  a = list(examples)
  assert len(a) == 3 and examples.skipped == ["flat:zz_empty.jpg"]
  assert "1 skipped" in capsys.readouterr().out
  b = list(R.refine_eval_examples(cfg, "validation", seed=3))
  c = list(R.refine_eval_examples(cfg, "validation", seed=4))
  for (n1, im1, g1, c1), (n2, im2, g2, c2), (_, _, _, c3) in zip(a, b, c):
    assert n1 == n2 and im1.shape == (40, 50, 3) and im1.dtype == np.uint8
    assert g1.shape == c1.shape == (40, 50) and g1.dtype == c1.dtype == np.uint8
    assert set(np.unique(c1).tolist()) <= {0, 1}
    np.testing.assert_array_equal(c1, c2)
    assert 0.75 - 1e-9 <= mask_iou(c1, g1) < 1.0
  assert any(not np.array_equal(x[3], y) for x, y in zip(a, [e[3] for e in c]))
  assert len(list(R.refine_eval_examples(cfg, "validation", max_images=2))) == 2
  with pytest.raises(ValueError, match="data.val_sources"):
    R.refine_eval_examples(bm_config(tmp_path, [{"layout": "flat", "dir": "train"}]), "validation")


def test_example_configs_prepare_and_feed_the_pipeline(synthetic):
  from data_fixtures import data_configs
  bm = data_configs().binary_masks(root="/data/cascadepsp")
  assert [s["layout"] for s in bm.sources] == ["msra10k", "dut_omron", "ecssd", "fss1000"]
  assert bm.num_classes == 2 and list(bm.foreground_classes) == [1] and tuple(bm.crop_size) == (224, 224)
  assert R.RefineAugment.from_config(bm.refine_augment) == R.RefineAugment()  # config = the documented defaults
  so = data_configs().synthetic_objects()
  assert so.synthetic.size == (256, 256) and so.synthetic.num_val == 32
  cfg, ds = synthetic
  assert R.foreground_table(cfg, ds.class_names)[5:11].all() and not R.foreground_table(cfg, ds.class_names)[:5].any()
