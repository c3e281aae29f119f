"""The segmentation task: images + labels -> class logits, trained with cross-entropy (plus
the auxiliary loss), evaluated by sliding windows on a whole split (mIoU picks the best).

  psp-jax train --config configs/pspnet.py:demo --workdir runs/demo
  psp-jax evaluate --config configs/pspnet.py:demo --workdir runs/demo [--checkpoint best]

Any family whose task is 'segmentation' (psp_jax/models/contract.py) runs here: the step is
psp_jax.train.step.make_train_step; evaluation psp_jax.evaluate.evaluator.evaluate_split.
"""
from __future__ import annotations

import pathlib
from typing import Any

import jax
import numpy as np

from psp_jax.constants import IGNORE_LABEL
from psp_jax.parallel import local_copy
from psp_jax.tasks.base import TrainingTask, checkpoint_meta, get, prepare_dataset

NAME = "segmentation"
BEST_METRIC = "mIoU"
EVAL_METRICS = ("mIoU", "mAcc", "aAcc")
SUMMED_METRICS = ("loss", "main_loss", "aux_loss", "pixel_acc", "grad_norm")


def class_palette(data_cfg, dataset) -> np.ndarray:
  """(C, 3) uint8 colours: data.colors, else the builder's palette, else the synthetic scenes'
  palette, else a fixed (PASCAL-style) palette."""
  from psp_jax.visualize import default_palette  # pylint: disable=import-outside-toplevel
  num_classes = dataset.num_classes
  colors = get(data_cfg, "colors")
  if colors is None and dataset.builder is not None:
    colors = getattr(dataset.builder, "COLORS", None)
  if colors is None and get(data_cfg, "name") == "synthetic":
    try:
      from psp_jax.data.synthetic import synthetic_classes  # pylint: disable=import-outside-toplevel
      colors = synthetic_classes(dataset.class_names)[1]
    except ValueError:
      colors = None
  if colors is not None and len(colors) >= num_classes:
    return np.asarray(colors, np.uint8)[:num_classes].reshape(num_classes, 3)
  return default_palette(num_classes)


def segmentation_meta(config, model, dataset, palette: np.ndarray) -> dict[str, Any]:
  """The 'meta' item: everything `psp_jax.load` / `predict` need, plus the full config."""
  ev = config.eval
  return checkpoint_meta(
      config, model,
      classes={"names": list(dataset.class_names), "palette": palette.tolist(),
               "dataset": str(get(config.data, "name", ""))},
      preprocessing={"align_corners": bool(getattr(model, "align_corners", True)),
                     "ignore_label": int(get(config.data, "ignore_label", IGNORE_LABEL))},
      inference={"crop_size": list(ev.crop_size), "base_size": ev.get("base_size"),
                 "scales": list(ev.get("scales", (1.0,))), "flip": bool(ev.get("flip", False)),
                 "stride_rate": float(ev.get("stride_rate", 2.0 / 3.0)),
                 "window_batch": int(ev.get("window_batch", 2))})


def evaluate_during_training(model, variables, config, mesh, workdir, step) -> dict:
  """The whole evaluation split, sliding windows (psp_jax.evaluate.evaluator.evaluate_split)."""
  del mesh  # the evaluator runs on this process's devices
  from psp_jax.evaluate.evaluator import evaluate_split  # pylint: disable=import-outside-toplevel
  from psp_jax.refine.on_segmentation import segmentation_steps  # pylint: disable=import-outside-toplevel
  return evaluate_split(model, local_copy(variables), config, workdir=workdir, step=step,
                        progress=jax.process_index() == 0, steps=segmentation_steps(config.eval))


class PredictionLogger:
  """A few validation images with their label and predicted masks, side by side, to
  TensorBoard (process 0 only; one sliding-window predictor compiled once per run)."""

  def __init__(self, model, config, data_cfg, dataset, palette: np.ndarray, count: int):
    self.palette = palette
    self.samples = []
    self.predictor = None
    if count <= 0 or jax.process_index() != 0:
      return
    from psp_jax.data import eval_iterator  # pylint: disable=import-outside-toplevel
    from psp_jax.evaluate.evaluator import inference_settings  # pylint: disable=import-outside-toplevel
    from psp_jax.evaluate.inference import SlidingWindowPredictor  # pylint: disable=import-outside-toplevel
    split = config.eval.get("split", "validation")
    for batch in eval_iterator(data_cfg, split, process_index=0, process_count=1, dataset=dataset):
      for i in range(len(batch["valid"])):
        if batch["valid"][i] and len(self.samples) < count:
          h, w = int(batch["height"][i]), int(batch["width"][i])
          self.samples.append((batch["image"][i, :h, :w], batch["label"][i, :h, :w]))
      if len(self.samples) >= count:
        break
    settings = inference_settings(config.eval, config.data)
    self.preprocessing = settings.preprocessing
    self.predictor = SlidingWindowPredictor(lambda v, x: model.apply(v, x, train=False), None,
                                            dataset.num_classes, settings)

  def log(self, writer, variables, step: int) -> None:
    if self.predictor is None or not self.samples:
      return
    from psp_jax.visualize import colorize  # pylint: disable=import-outside-toplevel
    self.predictor.variables = local_copy(variables)
    for k, (image, label) in enumerate(self.samples):
      pred = self.predictor.predict(image, normalized=True)
      rgb = np.clip(self.preprocessing.denormalize(image), 0, 255).astype(np.uint8)
      panel = np.concatenate([rgb, colorize(label, self.palette), colorize(pred, self.palette)], 1)
      writer.image(step, f"eval/prediction_{k}", panel)


def native_objective(config, model):
  """The family's own loss when train.native_loss is True (ModelFamily.native_loss), else None;
  an error names the key when the family has none."""
  if not bool(get(config.train, "native_loss", False)):
    return None
  from psp_jax.models.build import family_of  # pylint: disable=import-outside-toplevel
  from psp_jax.train.losses import resolve_native_loss  # pylint: disable=import-outside-toplevel
  family = family_of(model)
  if not family.native_loss:
    raise ValueError(f"train.native_loss=True but the {family.name!r} family has no native loss "
                     "(it trains on the cross-entropy of the input-size logits): set it False")
  return resolve_native_loss(family.native_loss)


def training_task(config, data_cfg, model, global_batch: int, *,
                  evaluate_fn=None) -> TrainingTask:
  """Images + labels, cross-entropy with the auxiliary loss (train.aux_weight) and optional
  class weights (train.class_weights: one per class; `python -m psp_jax.data.class_weights`
  computes SegNet's median-frequency ones), mIoU by sliding-window evaluation."""
  from psp_jax.data import train_iterator  # pylint: disable=import-outside-toplevel
  from psp_jax.models.build import family_of  # pylint: disable=import-outside-toplevel
  from psp_jax.train.step import make_train_step  # pylint: disable=import-outside-toplevel
  dataset = prepare_dataset(data_cfg)
  num_classes = int(config.model.num_classes)
  if num_classes != dataset.num_classes:
    raise ValueError(f"model.num_classes={num_classes} but the dataset has {dataset.num_classes} classes")
  ignore_label = int(get(config.data, "ignore_label", IGNORE_LABEL))
  palette = class_palette(config.data, dataset)
  class_weights = get(config.train, "class_weights")
  weights = {"class_weights": tuple(float(w) for w in class_weights)} if class_weights else {}
  native_loss = native_objective(config, model)

  def make_step(optimizer, mesh):
    return make_train_step(
        model, optimizer, mesh, num_classes=num_classes,
        aux_weight=float(get(config.train, "aux_weight", 0.4)), ignore_label=ignore_label,
        sync_bn=bool(get(config.train, "sync_bn", True)),
        bn_group_size=config.train.get("bn_group_size"), native_loss=native_loss, **weights)

  return TrainingTask(
      name=NAME, meta=segmentation_meta(config, model, dataset, palette),
      train_iterator=train_iterator(data_cfg, global_batch, dataset=dataset), make_step=make_step,
      batch_arrays=lambda batch: (batch["image"], batch["label"]),
      evaluate=evaluate_fn or evaluate_during_training, summed_metrics=SUMMED_METRICS,
      eval_metrics=EVAL_METRICS, best_metric=BEST_METRIC,
      labels_hint=f"neither in [0, {num_classes}) nor the ignore label {ignore_label}: the labels do "
                  "not match data.num_classes / model.num_classes or the dataset's label mapping is wrong",
      progress={"loss": "loss", "acc": "pixel_acc"}, lr_modules=family_of(model).lr_modules,
      predictions=PredictionLogger(model, config, data_cfg, dataset, palette,
                                   int(get(config.eval, "log_images", 3))))


def evaluate_checkpoint(config, workdir: str | pathlib.Path, *, checkpoint: str = "latest",
                        split: str | None = None) -> tuple[dict, str]:
  """`psp-jax evaluate`: the latest (or best) checkpoint of `workdir` on a split; reports are
  written to workdir/eval/. Returns (metrics, the Markdown table)."""
  from psp_jax import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
  from psp_jax.evaluate.evaluator import evaluate_split, metrics_markdown  # pylint: disable=import-outside-toplevel
  from psp_jax.refine.on_segmentation import segmentation_steps  # pylint: disable=import-outside-toplevel
  workdir = pathlib.Path(workdir)
  path = workdir / "checkpoints_best" if checkpoint == "best" else workdir
  model, variables = ckpt_lib.load(path)
  _, step = ckpt_lib.resolve(path)
  metrics = evaluate_split(model, variables, config, workdir=str(workdir), step=step, split=split,
                           steps=segmentation_steps(config.eval))
  title = f"{checkpoint} checkpoint (step {step}), split {metrics['split']}"
  return metrics, metrics_markdown(metrics, title)
