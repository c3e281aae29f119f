"""Any TFDS catalog dataset with an image and a segmentation mask (`data.name = "tfds:<name>"`).

This path exists for users who have TensorFlow installed: catalog builders encode and decode
with TensorFlow while preparing. psp_jax never requires TensorFlow; without it this raises a
clear error. The dataset is prepared in ArrayRecord format so Grain can read it by index;
records are decoded by TFDS to NumPy arrays. Config: `data.tfds.image_key`,
`data.tfds.label_key` (feature names), `data.tfds.label_map` ({raw: class or 255}, optional;
applied when loading, which is the only place a catalog dataset is mapped), data.num_classes.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Any

import numpy as np

from psp_jax.data import labels as L
from psp_jax.data.prepared import DEFAULT_DATA_DIR, PreparedDataset, get as _get


@dataclasses.dataclass(frozen=True)
class _CatalogRecords:
  """Random access over a TFDS data source, renaming/mapping fields to psp_jax's layout."""
  source: Any
  image_key: str
  label_key: str
  table: np.ndarray | None

  def __len__(self):
    return len(self.source)

  def __getitem__(self, index):
    r = self.source[index]
    label = np.asarray(r[self.label_key])
    if label.ndim == 3:
      label = label[..., 0]
    if self.table is not None:
      mapped = self.table[label.astype(np.int64)]
      if (mapped < 0).any():
        raise ValueError(f"catalog record {index}: mask values {np.unique(label[mapped < 0])[:10].tolist()} "
                         "are not in data.tfds.label_map")
      label = mapped
    label = label.astype(np.uint8)
    image = np.asarray(r[self.image_key])
    return {"image": image, "label": label, "name": f"record {index}".encode(),
            "height": image.shape[0], "width": image.shape[1]}


def open_catalog(data_cfg):
  name = _get(data_cfg, "name")[len("tfds:"):]
  if importlib.util.find_spec("tensorflow") is None:
    raise ImportError(f"data.name='tfds:{name}' prepares a TFDS catalog dataset, which needs TensorFlow "
                      "(pip install tensorflow). The psp_jax builders (ade20k, voc, cityscapes, camvid, "
                      "folder, synthetic) do not.")
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  tcfg = _get(data_cfg, "tfds", {})
  data_dir = os.path.expanduser(_get(data_cfg, "data_dir", DEFAULT_DATA_DIR))
  builder = tfds.builder(name, data_dir=data_dir)
  if not builder.is_prepared():
    manual = _get(data_cfg, "manual_dir")
    builder.download_and_prepare(
        file_format="array_record",
        download_config=tfds.download.DownloadConfig(manual_dir=manual or None))
  sources = builder.as_data_source()
  num_classes = int(_get(data_cfg, "num_classes"))
  lm = _get(tcfg, "label_map")
  table = None
  if lm:
    table = L.LabelMap.from_pairs({int(k): int(v) for k, v in dict(lm).items()}, num_classes, 65536).table
  image_key, label_key = _get(tcfg, "image_key", "image"), _get(tcfg, "label_key", "segmentation_mask")
  wrapped = {s: _CatalogRecords(src, image_key, label_key, table) for s, src in sources.items()}
  names = tuple(_get(data_cfg, "class_names", [str(i) for i in range(num_classes)]))
  # Image sizes are not recorded for catalog datasets: set data.eval_pad_size for evaluation.
  return PreparedDataset(sources=wrapped, class_names=names, num_classes=num_classes,
                         metadata={"class_names": list(names), "splits": {}}, builder=builder)
