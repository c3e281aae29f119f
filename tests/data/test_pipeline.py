"""Grain pipelines: determinism, restore, per-process slices, evaluation padding, label checks."""
import numpy as np
import pytest

from data_fixtures import config
from psp_jax.data import labels as L
from psp_jax.data import pipeline
from psp_jax.data.builders import PreparedDataset, open_dataset

N_TRAIN, N_VAL = 24, 7


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  cfg = _cfg(tmp_path_factory.mktemp("tfds_syn"))
  return cfg, open_dataset(cfg)


def _cfg(data_dir, **kw):
  cfg = config("synthetic", "", data_dir, crop_size=(25, 25), **kw)
  cfg.synthetic = dict(num_train=N_TRAIN, num_val=N_VAL, size=(24, 32), seed=0, options={})
  cfg.augmentation.enabled = True
  cfg.eval_pad_size = None
  return cfg


def _take(it, n):
  out = [next(it) for _ in range(n)]
  if hasattr(it, "close"):
    it.close()
  return out


def test_train_batches_shapes_types_and_label_range(dataset):
  cfg, ds = dataset
  batch = next(pipeline.train_iterator(cfg, 8, process_index=0, process_count=1, dataset=ds))
  assert batch["image"].shape == (8, 25, 25, 3) and batch["image"].dtype == np.float32
  assert batch["label"].shape == (8, 25, 25) and batch["label"].dtype == np.int32
  assert set(np.unique(batch["label"]).tolist()) <= set(range(ds.num_classes)) | {255}
  assert abs(float(batch["image"].mean())) < 2.0


def test_same_seed_same_batches_other_seed_differs(dataset):
  cfg, ds = dataset
  a = _take(pipeline.train_iterator(cfg, 4, process_index=0, process_count=1, dataset=ds), 4)
  b = _take(pipeline.train_iterator(cfg, 4, process_index=0, process_count=1, dataset=ds), 4)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])
  cfg2 = cfg.copy_and_resolve_references()
  cfg2.seed = 1
  c = _take(pipeline.train_iterator(cfg2, 4, process_index=0, process_count=1, dataset=ds), 4)
  assert not all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, c))


def test_restored_iterator_yields_exactly_the_next_batch(dataset):
  cfg, ds = dataset
  it = pipeline.train_iterator(cfg, 4, process_index=0, process_count=1, dataset=ds)
  for _ in range(7):  # past the first epoch (6 batches of 4 from 24 records)
    next(it)
  state = it.get_state()
  expected = _take(it, 2)
  fresh = pipeline.train_iterator(cfg, 4, process_index=0, process_count=1, dataset=ds)
  fresh.set_state(state)
  got = _take(fresh, 2)
  for x, y in zip(expected, got):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["index"], y["index"])


def test_worker_processes_give_the_same_stream_and_restore(dataset):
  cfg, ds = dataset
  ref = _take(pipeline.train_iterator(cfg, 4, process_index=0, process_count=1, dataset=ds), 5)
  cfg2 = cfg.copy_and_resolve_references()
  cfg2.worker_count = 2
  it = pipeline.train_iterator(cfg2, 4, process_index=0, process_count=1, dataset=ds)
  try:
    got = [next(it) for _ in range(3)]
    state = it.get_state()
  finally:
    it.close()
  for x, y in zip(ref, got):
    np.testing.assert_array_equal(x["image"], y["image"])
  it = pipeline.train_iterator(cfg2, 4, process_index=0, process_count=1, dataset=ds)
  try:
    it.set_state(state)
    np.testing.assert_array_equal(next(it)["image"], ref[3]["image"])
  finally:
    it.close()


def test_epochs_are_reshuffled_and_augmented_differently(dataset):
  cfg, ds = dataset
  batches = _take(pipeline.train_iterator(cfg, 4, process_index=0, process_count=1, dataset=ds), 12)
  first = np.concatenate([b["index"] for b in batches[:6]])
  second = np.concatenate([b["index"] for b in batches[6:]])
  assert sorted(first.tolist()) == list(range(N_TRAIN)) == sorted(second.tolist())
  assert not np.array_equal(first, second)


def test_two_processes_read_disjoint_slices_covering_the_split(dataset):
  cfg, ds = dataset
  seen = []
  for p in range(2):
    batches = list(pipeline.train_iterator(cfg, 8, process_index=p, process_count=2, dataset=ds, num_epochs=1))
    assert len(batches) == N_TRAIN // 2 // 4  # per-process batch = 8 / 2, partial batch dropped
    assert all(b["image"].shape[0] == 4 for b in batches)
    seen.append(set(np.concatenate([b["index"] for b in batches]).tolist()))
  assert not seen[0] & seen[1]
  assert seen[0] | seen[1] == set(range(N_TRAIN))


def test_global_batch_must_split_over_processes(dataset):
  cfg, ds = dataset
  with pytest.raises(ValueError, match="divisible"):
    pipeline.train_iterator(cfg, 5, process_index=0, process_count=2, dataset=ds)


def test_eval_keeps_original_labels_and_pads_with_masked_samples(dataset):
  cfg, ds = dataset
  src = ds.sources["validation"]
  per_process = []
  for p in range(2):
    batches = list(pipeline.eval_iterator(cfg, "validation", batch_size=3, process_index=p, process_count=2,
                                          dataset=ds))
    assert len(batches) == pipeline.eval_steps(N_VAL, 2, 3) == 2  # same number of steps on every host
    per_process.append(batches)
    for b in batches:
      assert b["image"].shape == (3, 24, 32, 3) and b["label"].shape == (3, 24, 32)
      for k in range(3):
        if not b["valid"][k]:
          assert b["index"][k] == -1 and not b["mask"][k].any() and (b["label"][k] == 255).all()
          continue
        i = int(b["index"][k])
        stored = L.decode_label(src[i]["label"])
        h, w = stored.shape
        assert (b["height"][k], b["width"][k]) == (h, w)
        np.testing.assert_array_equal(b["label"][k][:h, :w], stored)
        assert b["mask"][k][:h, :w].all() and b["mask"][k].sum() == h * w
  idx = [set(int(i) for b in bs for i, v in zip(b["index"], b["valid"]) if v) for bs in per_process]
  assert not idx[0] & idx[1] and idx[0] | idx[1] == set(range(N_VAL))
  valid = sum(int(b["valid"].sum()) for bs in per_process for b in bs)
  assert valid == N_VAL


def test_eval_pad_bucket_larger_than_images(dataset):
  cfg, ds = dataset
  cfg2 = cfg.copy_and_resolve_references()
  cfg2.eval_pad_size = (30, 40)
  b = next(pipeline.eval_iterator(cfg2, "validation", process_index=0, process_count=1, dataset=ds))
  assert b["image"].shape == (1, 30, 40, 3)
  assert (b["label"][0, 24:] == 255).all() and (b["label"][0, :, 32:] == 255).all()
  assert not b["mask"][0, 24:].any()
  np.testing.assert_array_equal(b["image"][0, 24:], 0.0)


class _Source(list):
  pass


def test_pipeline_rejects_labels_outside_the_classes_naming_the_example():
  import cv2
  ok, img = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
  lab = np.zeros((8, 8), np.uint8)
  lab[3, 3] = 7
  records = _Source([{"image": img.tobytes(), "label": L.encode_label(lab), "name": b"bad_example.png",
                      "height": 8, "width": 8}] * 4)
  ds = PreparedDataset(sources={"train": records, "validation": records}, class_names=("a", "b", "c"),
                       num_classes=3, metadata={"splits": {"validation": {"max_height": 8, "max_width": 8}}})
  cfg = config("synthetic", "", "/nonexistent", crop_size=(8, 8))
  with pytest.raises(ValueError, match=r"bad_example\.png.*label values \[7\] outside classes 0\.\.2"):
    next(pipeline.train_iterator(cfg, 2, process_index=0, process_count=1, dataset=ds))
  with pytest.raises(ValueError, match=r"bad_example\.png.*\[7\]"):
    next(pipeline.eval_iterator(cfg, "validation", process_index=0, process_count=1, dataset=ds))
