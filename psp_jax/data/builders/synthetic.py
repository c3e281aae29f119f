"""The synthetic look-alike scenes of `psp_jax.data.synthetic` as a prepared TFDS dataset.

Nothing to download: `data.manual_dir` is not needed. Options (data.synthetic): num_train,
num_val, size [H, W], seed, options (keyword options of `generate_scene`, e.g. classes,
object_size, num_objects). Scene i of split s is `generate_scene(scene_seed(seed + k_s, i))`
with k_train = 0, k_validation = 1, so the content is a pure function of the options.
Labels are class indices already (no mapping).
"""
from __future__ import annotations

import pathlib

import numpy as np

from psp_jax.data import labels as L
from psp_jax.data import synthetic as S
from psp_jax.data.builders.base import Item, SegmentationBuilder

import cv2


class PspSynthetic(SegmentationBuilder, skip_registration=True):
  __doc__ = __doc__
  name = "psp_synthetic"
  HOMEPAGE = ""

  def _split_generators(self, dl_manager):
    self.info.metadata["class_names"] = list(self.class_names())
    self.info.metadata["ignore_label"] = L.IGNORE_LABEL
    self.info.metadata.setdefault("splits", {})
    return {split: self._generate_examples(split, items) for split, items in self.items(pathlib.Path(".")).items()}

  def _scene_options(self) -> dict:
    opts = dict(self.params.get("options") or {})
    return {k: tuple(v) if isinstance(v, list) else v for k, v in opts.items()}

  def class_names(self) -> tuple[str, ...]:
    return S.synthetic_classes(self._scene_options().get("classes"))[0]

  def label_map(self) -> L.LabelMap:
    return L.LabelMap.identity(self.num_classes, ())

  def read_raw_label(self, item: Item) -> np.ndarray:
    return item.label

  def _load_example(self, item: Item):
    seed = item.image
    image, label = S.generate_scene(seed, tuple(self.params.get("size", (64, 64))), **self._scene_options())
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return super()._load_example(Item(item.key, buf.tobytes(), label, item.name))

  def items(self, root):
    seed = int(self.params.get("seed", 0))
    out = {}
    for k, (split, n) in enumerate((("train", self.params.get("num_train", 512)),
                                    ("validation", self.params.get("num_val", 128)))):
      out[split] = [Item(key=f"{split}/{i:06d}", image=S.scene_seed(seed + k, i), label=None,
                         name=f"synthetic/{split}/{i:06d}") for i in range(int(n))]
    return out
