"""The run's `seed` decides the training data order (through `tasks.base.data_config`): the same
seed gives the same record order, another seed another, for segmentation and refinement."""
import ml_collections
import numpy as np
import pytest

from data_fixtures import config
from psp_jax.data import open_dataset, pipeline
from psp_jax.data.refine_pipeline import refine_train_iterator
from psp_jax.tasks.base import data_config

N_TRAIN, BATCH = 12, 4  # 3 batches per epoch


def _run_config(data_cfg, seed: int, data_seed: int = 0) -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict({"seed": seed, "data": data_cfg.copy_and_resolve_references()})
  cfg.data.seed = data_seed
  return cfg


@pytest.fixture(scope="module")
def segmentation(tmp_path_factory):
  cfg = config("synthetic", "", tmp_path_factory.mktemp("tfds_order"), crop_size=(16, 16))
  cfg.synthetic = dict(num_train=N_TRAIN, num_val=2, size=(16, 16), seed=0, options={})
  cfg.eval_pad_size = None
  return cfg, open_dataset(cfg)


def _order(segmentation, seed: int, data_seed: int = 0, epochs: int = 2) -> list[list[int]]:
  """Record indices of the first `epochs` epochs of the training stream, one list per epoch."""
  data_cfg, ds = segmentation
  it = pipeline.train_iterator(data_config(_run_config(data_cfg, seed, data_seed)), BATCH,
                               process_index=0, process_count=1, dataset=ds)
  per_epoch = N_TRAIN // BATCH
  indices = [next(it)["index"].tolist() for _ in range(epochs * per_epoch)]
  return [sum(indices[e * per_epoch:(e + 1) * per_epoch], []) for e in range(epochs)]


def test_same_seed_same_order(segmentation):
  assert _order(segmentation, 3) == _order(segmentation, 3)


def test_another_seed_another_order_of_the_same_records(segmentation):
  orders = {seed: _order(segmentation, seed) for seed in (0, 1, 2)}
  for order in orders.values():
    assert all(sorted(epoch) == list(range(N_TRAIN)) for epoch in order)
  assert orders[0][0] != orders[1][0] != orders[2][0] != orders[0][0]


def test_seed_zero_keeps_data_seed_and_seed_is_not_added_to_it(segmentation):
  data_cfg, ds = segmentation
  assert data_config(_run_config(data_cfg, 0, data_seed=5)).seed == 5
  direct = data_cfg.copy_and_resolve_references()
  direct.seed = 5  # the pipeline on data.seed alone, no run seed
  it = pipeline.train_iterator(direct, BATCH, process_index=0, process_count=1, dataset=ds)
  assert sum((next(it)["index"].tolist() for _ in range(N_TRAIN // BATCH)), []) == _order(
      segmentation, 0, data_seed=5)[0]
  # seed 1 with data.seed 0 is not seed 0 with data.seed 1 (nor seed 0 with data.seed 0)
  assert _order(segmentation, 1, data_seed=0)[0] != _order(segmentation, 0, data_seed=1)[0]
  assert _order(segmentation, 0, data_seed=1)[0] != _order(segmentation, 0, data_seed=0)[0]


def test_refinement_batches_follow_the_seed(tmp_path):
  data_cfg = config("synthetic_objects", "", tmp_path / "tfds", crop_size=(16, 16))
  data_cfg.synthetic = dict(num_train=N_TRAIN, num_val=2, size=(32, 32), seed=0, options={})
  ds = open_dataset(data_cfg)

  def masks(seed):
    it = refine_train_iterator(data_config(_run_config(data_cfg, seed)), BATCH, dataset=ds,
                               process_index=0, process_count=1)
    return np.stack([next(it)["gt"] for _ in range(N_TRAIN // BATCH)])

  first = masks(0)
  np.testing.assert_array_equal(masks(0), first)
  assert not np.array_equal(masks(1), first)
