"""Grain input pipelines: per-process training and evaluation batches from a `data` config.

  it = train_iterator(data_cfg, global_batch_size)        # infinite, per-process batches
  batch = next(it)   # {'image': f32 (B, crop_h, crop_w, 3), 'label': i32 (B, crop_h, crop_w),
                     #  'index': i32 (B,) record indices (for debugging)}
  state = it.get_state(); ...; it.set_state(state)        # resume on exactly the next batch
  for batch in eval_iterator(data_cfg, split="validation"): ...

Multi-process: every process calls the same function; process p of P reads only its slice
of the records (`grain.sharding.ShardOptions(p, P)`; pass `process_index`/`process_count`
explicitly to simulate processes in tests, default `jax.process_index()/process_count()`),
and yields batches of global_batch / P examples, which `psp_jax.parallel.shard_batch`
assembles into the global batch.

Training: the process's records (the split cut to a multiple of P so every process has as
many) are shuffled with a new permutation each epoch and repeated forever; batches are always full
(an infinite stream has no partial batch; with `num_epochs` the last partial batch is
dropped), so every host runs the same number of steps.
Each example's augmentation draws from `np.random.default_rng((seed, epoch, record index))`:
the stream depends on (seed, process count, batch size) only, not on worker or thread
counts. Worker processes: `data.worker_count` (0 = decode in threads of this process),
`data.prefetch` batches buffered per worker.

Evaluation: images keep their original size; a batch pads them to a fixed bucket
(`data.eval_pad_size`, default the split's largest image, recorded when preparing) with 0
(the normalised mean pixel) and labels with 255, and carries 'mask' (bool (B, H, W), True on
real pixels), 'valid' (bool (B,), False for padding samples), 'height'/'width' (the real
size) and 'index' (record index, -1 for padding). Process p evaluates records p, p+P, ...;
all processes run ceil(ceil(N / P) / B) steps, the missing slots being padding samples
(valid False, label all 255) that count nowhere. Batch size per process: data.eval_batch_size
(default 1). Sliding-window inference crops image[:height, :width] (psp_jax.evaluate).

Labels are validated as they are loaded: a value that is neither a class nor 255 is a hard
error naming the example.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterator, Mapping, Sequence

import grain
import numpy as np

from psp_jax.data import labels as L
from psp_jax.data import transforms as T
from psp_jax.data.datasets import PreparedDataset, open_dataset
from psp_jax.preprocessing import Preprocessing


def _get(cfg, key, default=None):
  try:
    v = cfg.get(key, default)
  except AttributeError:
    v = getattr(cfg, key, default)
  return default if v is None else v


def preprocessing(data_cfg) -> Preprocessing:
  """The normalisation a data config asks for (data.mean/std/input_scale/channel_order)."""
  return Preprocessing.from_meta({k: _get(data_cfg, k) for k in
                                  ("mean", "std", "input_scale", "channel_order")})


def _process(process_index, process_count) -> tuple[int, int]:
  if process_index is None or process_count is None:
    import jax  # pylint: disable=import-outside-toplevel
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in [0, {process_count})")
  return int(process_index), int(process_count)


def _pair(v) -> tuple[int, int]:
  if isinstance(v, int):
    return (v, v)
  v = tuple(int(x) for x in v)
  if len(v) != 2:
    raise ValueError(f"expected a size (H, W), got {v}")
  return v


def _name(record) -> str:
  n = record.get("name", b"?")
  return n.decode() if isinstance(n, bytes) else str(n)


@dataclasses.dataclass(frozen=True)
class Decode:
  """A stored record -> (uint8 RGB image, uint8 label); validates the label values."""
  num_classes: int
  image_key: str = "image"
  label_key: str = "label"
  split: str = ""

  def __call__(self, index: int, record: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    where = f"{self.split} record {index} ({_name(record)})"
    try:
      image = L.decode_image(record[self.image_key])
      label = L.decode_label(record[self.label_key])
    except Exception as e:
      raise ValueError(f"{where}: cannot decode ({e})") from e
    if label.shape != image.shape[:2]:
      raise ValueError(f"{where}: label shape {label.shape} differs from image shape {image.shape[:2]}")
    L.check_label(label, self.num_classes, where)
    return image, label


def example_rng(seed: int, position: int, records_per_epoch: int, index: int) -> np.random.Generator:
  """The augmentation RNG of the example at stream `position` (record `index`): a function of
  (seed, epoch, record) only, so worker and thread counts never change the stream."""
  return np.random.default_rng((seed, position // records_per_epoch, index))


@dataclasses.dataclass(frozen=True)
class TrainMap:
  """(stream position, (record index, record)) -> augmented example; picklable for workers."""
  decode: Decode
  aug: T.Augment
  crop_size: tuple[int, int]
  preprocessing: Preprocessing
  seed: int
  records_per_epoch: int

  def __call__(self, position: int, item) -> dict:
    index, record = item
    rng = example_rng(self.seed, position, self.records_per_epoch, index)
    image, label = self.decode(index, record)
    image, label = T.train_transform(image, label, rng, self.aug, self.crop_size, self.preprocessing)
    return {"image": image, "label": label, "index": np.int32(index)}


@dataclasses.dataclass(frozen=True)
class EvalMap:
  """Global record index (or -1 = padding) -> padded evaluation example."""
  source: Any
  decode: Decode
  pad_size: tuple[int, int]
  preprocessing: Preprocessing

  def __call__(self, index: int) -> dict:
    ph, pw = self.pad_size
    out = {"image": np.zeros((ph, pw, 3), np.float32), "label": np.full((ph, pw), L.IGNORE_LABEL, np.int32),
           "mask": np.zeros((ph, pw), bool), "valid": np.bool_(False), "height": np.int32(0),
           "width": np.int32(0), "index": np.int32(-1)}
    if index < 0:
      return out
    image, label = self.decode(index, self.source[index])
    h, w = label.shape
    if h > ph or w > pw:
      raise ValueError(f"{self.decode.split} record {index}: image {h}x{w} is larger than the evaluation "
                       f"bucket data.eval_pad_size={self.pad_size}")
    image, label = T.eval_transform(image, label, self.preprocessing)
    out["image"][:h, :w] = image
    out["label"][:h, :w] = label
    out["mask"][:h, :w] = True
    out.update(valid=np.bool_(True), height=np.int32(h), width=np.int32(w), index=np.int32(index))
    return out


@dataclasses.dataclass(frozen=True)
class _WithIndex:
  """Attach the record index (MapDataset indices run past the length in later epochs)."""
  num_records: int

  def __call__(self, index: int, record):
    return index % self.num_records, record


def _read_options(data_cfg) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=int(_get(data_cfg, "read_threads", 2)),
                           prefetch_buffer_size=int(_get(data_cfg, "prefetch", 2)))


def _init_worker(worker_index: int, worker_count: int) -> None:
  """Worker processes are the parallelism: OpenCV's own thread pool would oversubscribe."""
  del worker_index, worker_count
  import cv2  # pylint: disable=import-outside-toplevel
  cv2.setNumThreads(1)


def _maybe_workers(ds, data_cfg):
  workers = int(_get(data_cfg, "worker_count", 0))
  if workers > 0:
    from absl import flags  # pylint: disable=import-outside-toplevel
    if not flags.FLAGS.is_parsed():  # Grain reads absl flags; programs without absl.app
      flags.FLAGS.mark_as_parsed()   # (scripts, tests) run with their defaults
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                     per_worker_buffer_size=int(_get(data_cfg, "prefetch", 2))),
                        worker_init_fn=_init_worker)
  return ds


def per_process_batch(global_batch_size: int, process_count: int) -> int:
  if global_batch_size % process_count:
    raise ValueError(f"global batch {global_batch_size} must be divisible by the {process_count} processes")
  return global_batch_size // process_count


def train_dataset(data_cfg, global_batch_size: int, *, process_index: int | None = None,
                  process_count: int | None = None, dataset: PreparedDataset | None = None,
                  num_epochs: int | None = None) -> grain.IterDataset:
  """The training IterDataset of this process (iterate it for per-process batches).

  num_epochs None: infinite stream (iteration-based training). An int: that many epochs,
  the last partial batch dropped.
  """
  records = train_records(data_cfg, global_batch_size, process_index=process_index,
                          process_count=process_count, dataset=dataset, num_epochs=num_epochs)
  mapper = TrainMap(
      decode=Decode(records.dataset.num_classes, split=records.split),
      aug=T.Augment.from_config(_get(data_cfg, "augmentation")),
      crop_size=_pair(_get(data_cfg, "crop_size", 473)),
      preprocessing=preprocessing(data_cfg),
      seed=int(_get(data_cfg, "seed", 0)), records_per_epoch=records.per_shard)
  return batched(records, mapper, data_cfg)


@dataclasses.dataclass(frozen=True)
class TrainRecords:
  """This process's training stream before augmentation: `ds` yields (record index, record)
  at stream positions 0, 1, ... (shuffled per epoch, repeated); see `train_records`."""
  ds: grain.MapDataset
  dataset: PreparedDataset
  split: str
  per_shard: int
  batch: int


def train_records(data_cfg, global_batch_size: int, *, process_index: int | None = None,
                  process_count: int | None = None, dataset: PreparedDataset | None = None,
                  num_epochs: int | None = None) -> TrainRecords:
  """The sharded, per-epoch shuffled, repeated records of `data.train_split` for this process
  (shared by every training pipeline; the module docstring tells the rules)."""
  pi, pc = _process(process_index, process_count)
  batch = per_process_batch(global_batch_size, pc)
  dataset = dataset or open_dataset(data_cfg)
  split = _get(data_cfg, "train_split", "train")
  if split not in dataset.sources:
    raise ValueError(f"data.train_split={split!r} not among the prepared splits {sorted(dataset.sources)}")
  source = dataset.sources[split]
  shard = grain.sharding.ShardOptions(shard_index=pi, shard_count=pc, drop_remainder=True)
  n = len(source) - len(source) % pc  # every process gets as many records (drop_remainder)
  per_shard = n // pc
  if per_shard < batch and num_epochs is not None:
    raise ValueError(f"split {split!r}: {per_shard} records per process < batch {batch}")
  if per_shard == 0:
    raise ValueError(f"split {split!r} has {len(source)} records, fewer than the {pc} processes")
  ds = grain.MapDataset.source(source).map_with_index(_WithIndex(len(source)))
  ds = ds[:n][shard.shard_index::shard.shard_count]
  if bool(_get(data_cfg, "shuffle", True)):
    ds = ds.shuffle(seed=int(_get(data_cfg, "seed", 0)) % 2**32)
  ds = ds.repeat(num_epochs)
  return TrainRecords(ds=ds, dataset=dataset, split=split, per_shard=per_shard, batch=batch)


def batched(records: TrainRecords, mapper, data_cfg) -> grain.IterDataset:
  """records -> `mapper(position, (index, record))` -> full batches, through the configured
  worker processes (`mapper` must be picklable)."""
  return batch_examples(records.ds.map_with_index(mapper), records.batch, data_cfg)


def batch_examples(examples: grain.MapDataset, batch: int, data_cfg) -> grain.IterDataset:
  """Unbatched training examples -> full batches of `batch`, through the configured workers."""
  ds = examples.batch(batch, drop_remainder=True)
  return _maybe_workers(ds.to_iter_dataset(_read_options(data_cfg)), data_cfg)


def train_iterator(data_cfg, global_batch_size: int, *, process_index: int | None = None,
                   process_count: int | None = None, dataset: PreparedDataset | None = None,
                   num_epochs: int | None = None) -> grain.DatasetIterator:
  """Iterator of per-process training batches with `get_state()` / `set_state()`."""
  return iter(train_dataset(data_cfg, global_batch_size, process_index=process_index,
                            process_count=process_count, dataset=dataset, num_epochs=num_epochs))


def eval_pad_size(data_cfg, dataset: PreparedDataset, split: str) -> tuple[int, int]:
  size = _get(data_cfg, "eval_pad_size")
  if size:
    return _pair(size)
  info = dataset.split_info(split)
  if not info.get("max_height"):
    raise ValueError(f"split {split!r} has no recorded image sizes; set data.eval_pad_size")
  return int(info["max_height"]), int(info["max_width"])


def eval_dataset(data_cfg, split: str | None = None, *, batch_size: int | None = None,
                 process_index: int | None = None, process_count: int | None = None,
                 dataset: PreparedDataset | None = None) -> grain.IterDataset:
  """One pass over `split` for this process: padded, masked batches (see the module doc)."""
  pi, pc = _process(process_index, process_count)
  dataset = dataset or open_dataset(data_cfg)
  split = split or _get(data_cfg, "eval_split", "validation")
  if split not in dataset.sources:
    raise ValueError(f"split {split!r} not among the prepared splits {sorted(dataset.sources)}")
  source = dataset.sources[split]
  batch = int(batch_size or _get(data_cfg, "eval_batch_size", 1))
  n = len(source)
  slots = math.ceil(math.ceil(n / pc) / batch) * batch
  indices = [k * pc + pi for k in range(slots)]
  indices = [i if i < n else -1 for i in indices]
  mapper = EvalMap(source, Decode(dataset.num_classes, split=split), eval_pad_size(data_cfg, dataset, split),
                   preprocessing(data_cfg))
  ds = grain.MapDataset.source(indices).map(mapper).batch(batch, drop_remainder=False)
  return _maybe_workers(ds.to_iter_dataset(_read_options(data_cfg)), data_cfg)


def eval_iterator(data_cfg, split: str | None = None, **kwargs) -> grain.DatasetIterator:
  """Iterator over one pass of evaluation batches (see `eval_dataset`)."""
  return iter(eval_dataset(data_cfg, split, **kwargs))


def eval_steps(num_records: int, process_count: int, batch_size: int) -> int:
  """Evaluation steps every process runs for a split of `num_records`."""
  return math.ceil(math.ceil(num_records / process_count) / batch_size)
