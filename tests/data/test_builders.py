"""TFDS builders: prepare tiny fixtures in the real layouts and load them back (no TensorFlow)."""
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from data_fixtures import (ROOT, config, loaded_labels, rgb, save_gray_png, save_image, write_ade,
                           write_camvid, write_cityscapes, write_folder, write_voc)
from psp_jax.data import labels as L
from psp_jax.data import synthetic as S
from psp_jax.data.builders import make_builder, open_dataset, prepare
from psp_jax.data.classes import CAMVID_CLASSES


def test_tensorflow_is_not_needed():
  assert "tensorflow" not in sys.modules or sys.modules["tensorflow"] is None or \
      not hasattr(sys.modules["tensorflow"], "constant"), "the data code imported TensorFlow"


def _lut(pairs):
  return np.vectorize(lambda v: pairs[int(v)])


# --- one builder per dataset ------------------------------------------------------------------
def test_ade20k_maps_0_to_ignore_and_shifts_classes_once(tmp_path):
  raw = write_ade(tmp_path / "dl")
  ds = open_dataset(config("ade20k", tmp_path / "dl", tmp_path / "tfds"))
  assert {k: len(v) for k, v in ds.sources.items()} == {"train": 3, "validation": 2}
  assert ds.num_classes == 150 and ds.class_names[0] == "wall"
  got = {**loaded_labels(ds, "train"), **loaded_labels(ds, "validation")}
  assert set(got) == set(raw)
  for name, lab in raw.items():
    expected = np.where(lab == 0, 255, lab.astype(np.int32) - 1)
    # Mapping applied twice would send raw 1 -> 0 -> 255 and raw 2 -> 1 -> 0.
    np.testing.assert_array_equal(got[name], expected, err_msg=name)
  assert 149 in np.unique(np.concatenate([g.ravel() for g in got.values()]))
  meta = ds.split_info("train")
  assert meta["num_examples"] == 3 and meta["max_height"] == 20 and meta["max_width"] == 24
  assert sum(meta["class_pixels"]) + meta["ignore_pixels"] == 3 * 20 * 24


def test_cityscapes_label_ids_to_train_ids(tmp_path):
  raw = write_cityscapes(tmp_path / "cs")
  ds = open_dataset(config("cityscapes", tmp_path / "cs", tmp_path / "tfds"))
  assert {k: len(v) for k, v in ds.sources.items()} == {"train": 2, "validation": 1}
  got = loaded_labels(ds, "train")
  lut = {7: 0, 26: 13, 0: 255, 33: 18, 1: 255, 24: 11}
  for name, lab in raw.items():
    if name in got:
      np.testing.assert_array_equal(got[name], _lut(lut)(lab))


def test_voc_palette_indices_and_sbd_train_aug(tmp_path):
  pytest.importorskip("scipy", reason="SBD .mat annotations are read with scipy")
  raw = write_voc(tmp_path / "voc")
  ds = open_dataset(config("voc", tmp_path / "voc", tmp_path / "tfds"))
  assert {k: len(v) for k, v in ds.sources.items()} == {"train": 2, "validation": 1, "train_aug": 4}
  aug = loaded_labels(ds, "train_aug")
  # train_aug = SBD (train + val) + VOC train - VOC val.
  assert set(aug) == {"2007_000001.jpg", "2007_000002.jpg", "2008_000010.jpg", "2008_000011.jpg"}
  for name, lab in aug.items():
    np.testing.assert_array_equal(lab, raw[name[:-4]], err_msg=name)  # palette indices, 255 kept
  val = loaded_labels(ds, "validation")["2007_000003.jpg"]
  np.testing.assert_array_equal(val, raw["2007_000003"])  # the VOC annotation, not the SBD one
  assert {0, 15, 20, 255} <= set(np.unique(val).tolist())


def test_camvid_fixture_with_test_split_and_list_prefix(tmp_path):
  raw = write_camvid(tmp_path / "CamVid")
  ds = open_dataset(config("camvid", tmp_path / "CamVid", tmp_path / "tfds"))
  assert {k: len(v) for k, v in ds.sources.items()} == {"train": 3, "validation": 2, "test": 2}
  got = {**loaded_labels(ds, "train"), **loaded_labels(ds, "test")}
  for name, lab in got.items():
    np.testing.assert_array_equal(lab, np.where(raw[name] == 11, 255, raw[name]))


def test_camvid_rgb_annotations_through_the_colour_table(tmp_path):
  raw = write_camvid(tmp_path / "CamVid", n=(2, 1, 0), rgb_annotations=True)
  ds = open_dataset(config("camvid", tmp_path / "CamVid", tmp_path / "tfds"))
  for name, lab in loaded_labels(ds, "train").items():
    np.testing.assert_array_equal(lab, np.where(raw[name] == 11, 255, raw[name]))


def test_rgb_annotation_with_unknown_colour_is_an_error(tmp_path):
  write_camvid(tmp_path / "CamVid", n=(2, 1, 0), rgb_annotations=True)
  bad = tmp_path / "CamVid" / "trainannot" / "0001TP_train001.png"
  arr = np.array(__import__("PIL.Image").Image.open(bad))
  arr[0, 0] = (1, 2, 3)
  save_image(bad, arr)
  with pytest.raises(L.BadExampleError, match=r"0001TP_train001\.png.*colours not in the colour table.*\(1, 2, 3\)"):
    prepare(config("camvid", tmp_path / "CamVid", tmp_path / "tfds"), verbose=False)


def test_folder_palette_masks_read_as_indices(tmp_path):
  raw = write_folder(tmp_path / "f", mode="P")
  cfg = config("folder", tmp_path / "f", tmp_path / "tfds", num_classes=3, class_names=["a", "b", "c"])
  ds = open_dataset(cfg)
  assert sorted(ds.sources) == ["train", "validation"]
  for name, lab in loaded_labels(ds, "validation").items():
    np.testing.assert_array_equal(lab, raw[name])


def test_folder_binary_0_255_masks_need_an_explicit_mapping(tmp_path):
  write_folder(tmp_path / "f", values=(0, 255))
  cfg = config("folder", tmp_path / "f", tmp_path / "tfds", num_classes=2, class_names=["bg", "fg"])
  with pytest.raises(ValueError, match="only the values 0 and 255.*label_map"):
    prepare(cfg, verbose=False)
  assert not make_builder(cfg).is_prepared()
  cfg.label_map = {0: 0, 255: 1}
  ds = open_dataset(cfg)
  for lab in loaded_labels(ds, "train").values():
    assert set(np.unique(lab).tolist()) == {0, 1}


def test_folder_rgb_masks_with_colours(tmp_path):
  root = tmp_path / "f"
  colours = np.array([(0, 0, 0), (255, 0, 0), (0, 255, 0)], np.uint8)
  lab = np.arange(12 * 16).reshape(12, 16) % 3
  save_image(root / "images" / "a.png", rgb(12, 16, 0))
  save_image(root / "masks" / "a.png", colours[lab])
  cfg = config("folder", root, tmp_path / "tfds", num_classes=2, class_names=["x", "y"],
               colors=[[255, 0, 0], [0, 255, 0]])
  cfg.ignore_colors = [[0, 0, 0]]
  ds = open_dataset(cfg)
  assert list(ds.sources) == ["train"]  # flat images/ masks/ -> one split
  np.testing.assert_array_equal(loaded_labels(ds, "train")["images/a.png"],
                                np.where(lab == 0, 255, lab - 1))


def test_synthetic_builder_stores_the_generated_scenes(tmp_path):
  cfg = config("synthetic", "", tmp_path / "tfds")
  cfg.synthetic = dict(num_train=6, num_val=3, size=(24, 32), seed=4, options={})
  ds = open_dataset(cfg)
  assert {k: len(v) for k, v in ds.sources.items()} == {"train": 6, "validation": 3}
  assert ds.class_names == S.SYNTHETIC_CLASSES
  labs = loaded_labels(ds, "validation")
  _, expected = S.generate_scene(S.scene_seed(5, 2), (24, 32))
  np.testing.assert_array_equal(labs["synthetic/validation/000002"], expected)
  rec = next(ds.sources["validation"][i] for i in range(3)
             if ds.sources["validation"][i]["name"] == b"synthetic/validation/000002")
  np.testing.assert_array_equal(L.decode_image(rec["image"]), S.generate_scene(S.scene_seed(5, 2), (24, 32))[0])


def test_prepare_prints_counts_histogram_and_warns_on_absent_classes(tmp_path, capsys):
  write_folder(tmp_path / "f", values=(0, 1))
  cfg = config("folder", tmp_path / "f", tmp_path / "tfds", num_classes=3, class_names=["a", "b", "never"])
  prepare(cfg)
  out = capsys.readouterr().out
  assert "train: 3 examples" in out and "validation: 3 examples" in out
  assert "a 50.00%" in out and "b 50.00%" in out
  assert "WARNING" in out and "never" in out


def test_config_changes_prepare_a_new_dataset(tmp_path):
  write_folder(tmp_path / "f", values=(0, 1, 2))
  cfg = config("folder", tmp_path / "f", tmp_path / "tfds", num_classes=3, class_names=["a", "b", "c"])
  first = open_dataset(cfg)
  cfg.label_map = {0: 255, 1: 0, 2: 1}
  cfg.num_classes, cfg.class_names = 2, ["b", "c"]
  second = open_dataset(cfg)
  assert first.builder.data_path != second.builder.data_path
  assert set(np.unique(loaded_labels(second, "train")["images/train/img0.jpg"]).tolist()) == {0, 1, 255}


# --- bad input --------------------------------------------------------------------------------
def test_corrupt_image_names_the_file_or_is_skipped_and_reported(tmp_path, capsys):
  write_ade(tmp_path / "dl")
  bad = tmp_path / "dl" / "ADEChallengeData2016" / "images" / "training" / "ADE_train_00000002.jpg"
  bad.write_bytes(bad.read_bytes()[:100])  # truncated JPEG
  with pytest.raises(L.BadExampleError, match=r"ADE_train_00000002\.jpg: corrupt"):
    prepare(config("ade20k", tmp_path / "dl", tmp_path / "tfds"), verbose=False)
  cfg = config("ade20k", tmp_path / "dl", tmp_path / "tfds", skip_bad_examples=True)
  ds = open_dataset(cfg)
  assert len(ds.sources["train"]) == 2
  skipped = ds.split_info("train")["skipped"]
  assert len(skipped) == 1 and "ADE_train_00000002.jpg" in skipped[0][0]
  assert "skipped 1 bad examples" in capsys.readouterr().out


def test_unreadable_annotation_and_size_mismatch_and_bad_values(tmp_path):
  root = tmp_path / "dl"
  write_ade(root)
  ann = root / "ADEChallengeData2016" / "annotations" / "training"
  (ann / "ADE_train_00000001.png").write_bytes(b"not a png")
  cfg = config("ade20k", root, tmp_path / "tfds")
  with pytest.raises(L.BadExampleError, match=r"ADE_train_00000001\.png: corrupt or unsupported annotation"):
    prepare(cfg, verbose=False)
  save_gray_png(ann / "ADE_train_00000001.png", np.zeros((5, 5)))
  with pytest.raises(L.BadExampleError, match=r"ADE_train_00000001\.png: annotation size 5x5 differs from image size 24x20"):
    prepare(cfg, verbose=False)
  save_gray_png(ann / "ADE_train_00000001.png", np.full((20, 24), 200))
  with pytest.raises(L.BadExampleError, match=r"ADE_train_00000001\.png: annotation values \[200\] are neither"):
    prepare(cfg, verbose=False)
  (ann / "ADE_train_00000001.png").unlink()
  with pytest.raises(L.BadExampleError, match=r"ADE_train_00000001\.png: unreadable file"):
    prepare(cfg, verbose=False)
  assert not make_builder(cfg).is_prepared()


def test_missing_split_or_empty_folder_names_the_expected_path(tmp_path):
  root = tmp_path / "dl"
  write_ade(root)
  val = root / "ADEChallengeData2016" / "images" / "validation"
  for p in val.iterdir():
    p.unlink()
  with pytest.raises(FileNotFoundError, match=f"expected validation images at {val}"):
    prepare(config("ade20k", root, tmp_path / "tfds"), verbose=False)
  val.rmdir()
  with pytest.raises(FileNotFoundError, match=str(val)):
    prepare(config("ade20k", root, tmp_path / "tfds"), verbose=False)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    prepare(config("camvid", tmp_path / "nowhere", tmp_path / "tfds"), verbose=False)
  (tmp_path / "empty" / "images" / "train").mkdir(parents=True)
  (tmp_path / "empty" / "masks" / "train").mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "empty" / "images" / "train")):
    prepare(config("folder", tmp_path / "empty", tmp_path / "tfds", class_names=["a", "b"]), verbose=False)


# --- interrupted prepare ----------------------------------------------------------------------
def test_exception_mid_generation_leaves_nothing_that_loads(tmp_path, monkeypatch):
  write_folder(tmp_path / "f", n=6)
  cfg = config("folder", tmp_path / "f", tmp_path / "tfds", num_classes=3, class_names=["a", "b", "c"])
  from psp_jax.data.builders.folder import PspFolder
  original = PspFolder._load_example
  calls = {"n": 0}

  def failing(self, item):
    calls["n"] += 1
    if calls["n"] == 4:
      raise RuntimeError("simulated crash")
    return original(self, item)

  monkeypatch.setattr(PspFolder, "_load_example", failing)
  with pytest.raises(RuntimeError, match="simulated crash"):
    prepare(cfg, verbose=False)
  monkeypatch.setattr(PspFolder, "_load_example", original)
  builder = make_builder(cfg)
  assert not builder.is_prepared()
  with pytest.raises(FileNotFoundError, match="not prepared"):
    open_dataset(cfg, prepare_if_needed=False)
  ds = open_dataset(cfg)  # prepares again, completely
  assert len(ds.sources["train"]) == 6 and len(ds.sources["validation"]) == 6


def test_killed_prepare_process_leaves_nothing_that_loads(tmp_path):
  data_dir = tmp_path / "tfds"
  script = textwrap.dedent(f"""
      import sys, time
      sys.path.insert(0, {str(ROOT / 'tests' / 'data')!r})
      from data_fixtures import config
      from psp_jax.data import synthetic
      from psp_jax.data.builders import prepare
      original = synthetic.generate_scene
      def slow(*a, **k):
        time.sleep(0.05)
        return original(*a, **k)
      synthetic.generate_scene = slow
      cfg = config("synthetic", "", {str(data_dir)!r})
      cfg.synthetic = dict(num_train=400, num_val=4, size=(16, 16), seed=0, options={{}})
      prepare(cfg, verbose=False)
  """)
  proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 60
    while time.time() < deadline and not list(data_dir.glob("psp_synthetic/*/incomplete.*")):
      assert proc.poll() is None, "the preparing process ended before it could be killed"
      time.sleep(0.05)
    time.sleep(0.5)  # mid-generation
    assert proc.poll() is None
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  cfg = config("synthetic", "", data_dir)
  cfg.synthetic = dict(num_train=400, num_val=4, size=(16, 16), seed=0, options={})
  assert list(data_dir.glob("psp_synthetic/*/incomplete.*")), "expected the temporary folder to remain"
  assert not make_builder(cfg).is_prepared()
  with pytest.raises(FileNotFoundError, match="not prepared"):
    open_dataset(cfg, prepare_if_needed=False)
  ds = open_dataset(cfg)
  assert len(ds.sources["train"]) == 400


# --- the real CamVid copy ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def camvid(tmp_path_factory, shared_path):
  shared = shared_path("data/camvid", "shared CamVid")
  cfg = config("camvid", shared, tmp_path_factory.mktemp("tfds_camvid"))
  return open_dataset(cfg)


def test_real_camvid_counts_and_histogram(camvid, shared_data):
  assert len(camvid.sources["train"]) == 367 and len(camvid.sources["validation"]) == 101
  assert "test" not in camvid.sources
  info = camvid.split_info("train")
  px = np.asarray(info["class_pixels"], np.float64)
  frac = px / (px.sum() + info["ignore_pixels"])
  names = list(CAMVID_CLASSES)
  assert (px > 0).all()
  top3 = {names[i] for i in np.argsort(frac)[-3:]}
  assert top3 == {"Road", "Building", "Sky"}, dict(zip(names, frac))
  assert 0.0 < info["ignore_pixels"] / (px.sum() + info["ignore_pixels"]) < 0.1
  assert info["max_height"] == 360 and info["max_width"] == 480
  rec = camvid.sources["validation"][0]
  lab = L.decode_label(rec["label"])
  assert lab.shape == (360, 480) and set(np.unique(lab).tolist()) <= set(range(11)) | {255}
  assert L.decode_image(rec["image"]).shape == (360, 480, 3)


def test_num_classes_mismatch_is_an_error(tmp_path):
  write_folder(tmp_path / "f")
  cfg = config("folder", tmp_path / "f", tmp_path / "tfds", num_classes=4, class_names=["a", "b", "c"])
  with pytest.raises(ValueError, match="data.num_classes=4 but dataset"):
    open_dataset(cfg)


def test_catalog_datasets_need_tensorflow_only_on_that_path(tmp_path):
  import importlib.util
  cfg = config("tfds_catalog", "", tmp_path / "tfds")
  cfg.name = "tfds:some_segmentation_dataset"
  cfg.num_classes = 3
  from psp_jax.data import datasets
  with pytest.raises(ValueError, match="open it with psp_jax.data.open_dataset"):
    open_dataset(cfg)  # the builders know nothing of catalog datasets
  if importlib.util.find_spec("tensorflow") is None:
    with pytest.raises(ImportError, match="needs TensorFlow"):
      datasets.open_dataset(cfg)
  else:
    pytest.skip("TensorFlow is installed here: the catalog path would try to download")


def test_voc_train_aug_from_segmentation_class_aug_pngs(tmp_path):
  raw = write_voc(tmp_path / "voc", sbd=False)
  aug_dir = tmp_path / "voc" / "SegmentationClassAug"
  extra = np.full((16, 20), 9, np.uint8)
  extra[0] = 255
  save_gray_png(aug_dir / "2008_000099.png", extra)
  save_image(tmp_path / "voc" / "VOCdevkit" / "VOC2012" / "JPEGImages" / "2008_000099.jpg", rgb(16, 20, 9))
  save_gray_png(aug_dir / "2007_000003.png", raw["2007_000003"])  # a val image: excluded
  ds = open_dataset(config("voc", tmp_path / "voc", tmp_path / "tfds"))
  got = loaded_labels(ds, "train_aug")
  assert set(got) == {"2008_000099.jpg"}
  np.testing.assert_array_equal(got["2008_000099.jpg"], extra)
