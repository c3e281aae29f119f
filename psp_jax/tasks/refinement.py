"""The refinement task: CascadePSP's module trained on perturbed masks, evaluated by refining
held-out images with the inference procedure of `psp_jax.Refiner` (IoU picks the best).

  psp-jax train --config configs/cascadepsp.py:demo --workdir runs/cascade_demo
  psp-jax evaluate --config configs/cascadepsp.py:demo --workdir runs/cascade_demo

Training: 224x224 crops with perturbed input masks (psp_jax.data.refine_pipeline), the
six-output loss (psp_jax.train.refine_losses), Adam with the step schedule, SyncBN,
checkpoints, resume and preemption as every task.

Evaluation (`evaluate_refinement_variables`): each validation image's coarse input is its
ground truth perturbed with a fixed per-image seed, so the numbers are reproducible. Metrics,
as CascadePSP's evaluation, as FRACTIONS (reports print percentages): IoU pooled over the
split (sum of intersections / sum of unions), mBA averaged over images; both for the input
masks ('IoU_input', 'mBA_input') and the refined ones ('IoU', 'mBA'); 'IoU_gain', 'mBA_gain'.
Following the authors' code, an input with fewer than `eval.min_input_pixels` foreground
pixels (32 x 32 by default) is not refined (its output is the input).
Config keys: eval.stages ('global' | 'global+local' | 'local'), eval.L, eval.local_mode
('official' | 'pass3'), eval.max_images (0 = all), eval.min_input_pixels, eval.split,
eval.bucket (the short-side padding of model inputs, `Cascade`'s: 8 by default, the spec's;
a coarser one compiles fewer shapes when the inputs' sizes vary, as object boxes do), and
eval.roi: 'image' (default, the paper's: the whole image is refined) or 'object' (the refiner
sees the coarse mask's bounding box grown by eval.roi_grow x its longer side, with
eval.roi_margin x that of context around it, and only that box changes, as
`Refiner.refine(..., roi=box)`: an object that fills a few percent of a road scene is refined
at the scale of the object-centred training crops).
"""
from __future__ import annotations

import math
import pathlib
import sys
import time
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from psp_jax import reports
from psp_jax.constants import IMAGENET_MEAN, IMAGENET_STD
from psp_jax.evaluate import boundary
from psp_jax.parallel import local_copy
from psp_jax.tasks.base import TrainingTask, checkpoint_meta, data_config, get, prepare_dataset

NAME = "refinement"
BEST_METRIC = "IoU"
EVAL_METRICS = ("IoU", "mBA", "IoU_input", "mBA_input", "IoU_gain", "mBA_gain")
STAGE_ALIASES = {"global_local": "global+local", "full": "global+local", "fast": "global"}
ROI_MODES = ("image", "object")


def eval_stages(eval_cfg) -> str:
  """eval.stages with its aliases resolved; an unknown value is an error naming the key."""
  from psp_jax.refine.cascade import STAGES  # pylint: disable=import-outside-toplevel
  stages = str(get(eval_cfg, "stages", "global+local"))
  stages = STAGE_ALIASES.get(stages, stages)
  if stages not in STAGES:
    raise ValueError(f"eval.stages={stages!r} is not one of {STAGES} "
                     f"(or the aliases {sorted(STAGE_ALIASES)})")
  return stages


def eval_roi(eval_cfg) -> tuple[str, float, float]:
  """(eval.roi, eval.roi_grow, eval.roi_margin), checked; errors name the key."""
  roi = str(get(eval_cfg, "roi", "image"))
  if roi not in ROI_MODES:
    raise ValueError(f"eval.roi={roi!r} is not one of {ROI_MODES}")
  grow, margin = float(get(eval_cfg, "roi_grow", 0.1)), float(get(eval_cfg, "roi_margin", 0.25))
  for key, value in (("roi_grow", grow), ("roi_margin", margin)):
    if value < 0:
      raise ValueError(f"eval.{key} must be >= 0, got {value}")
  return roi, grow, margin


# ----------------------------------------------------------------------------- evaluation

class _Totals:
  """Pooled intersections/unions and per-image boundary accuracies, input and refined."""

  def __init__(self):
    self.sums = {"in_i": 0, "in_u": 0, "out_i": 0, "out_u": 0}
    self.mba = {"in": [], "out": []}
    self.images = 0

  def add(self, gt: np.ndarray, coarse: np.ndarray, refined: np.ndarray) -> None:
    for tag, mask in (("in", coarse), ("out", refined)):
      self.sums[f"{tag}_i"] += int(np.logical_and(mask, gt).sum())
      self.sums[f"{tag}_u"] += int(np.logical_or(mask, gt).sum())
      self.mba[tag].append(boundary.boundary_accuracy(mask, gt))
    self.images += 1

  def metrics(self) -> dict[str, float]:
    ratio = lambda a, b: a / b if b else math.nan  # noqa: E731
    mean = lambda xs: float(np.nanmean(xs)) if not np.all(np.isnan(xs)) else math.nan  # noqa: E731
    m = {"IoU": ratio(self.sums["out_i"], self.sums["out_u"]), "mBA": mean(self.mba["out"]),
         "IoU_input": ratio(self.sums["in_i"], self.sums["in_u"]), "mBA_input": mean(self.mba["in"])}
    m["IoU_gain"] = m["IoU"] - m["IoU_input"]
    m["mBA_gain"] = m["mBA"] - m["mBA_input"]
    return m


def evaluate_refinement_variables(model, variables, config, *, workdir: str | None = None,
                                  step: int | None = None, split: str | None = None,
                                  progress: bool = True, examples=None) -> dict[str, Any]:
  """Refine every evaluation example; returns the metrics (module docstring) plus 'split',
  'stages', 'L', 'num_images', 'not_refined' (inputs below min_input_pixels), 'seconds'.
  Writes `<workdir>/eval/refine_<split>_step<N>.{json,md}` when workdir is given.
  examples: (name, image uint8, gt {0,1}, coarse {0,1}) tuples overriding the data config's."""
  from psp_jax.refine import cascade as cascade_lib  # pylint: disable=import-outside-toplevel
  from psp_jax.refine import masks  # pylint: disable=import-outside-toplevel
  ev = config.eval
  split = split or str(get(ev, "split", "validation"))
  stages = eval_stages(ev)
  L = int(get(ev, "L", 900))
  min_pixels = int(get(ev, "min_input_pixels", 32 * 32))
  if examples is None:
    from psp_jax.data.refine_pipeline import refine_eval_examples  # pylint: disable=import-outside-toplevel
    max_images = int(get(ev, "max_images", 0) or 0) or None
    examples = refine_eval_examples(data_config(config), split, max_images=max_images,
                                    seed=int(get(ev, "seed", 0)))
  roi, roi_grow, roi_margin = eval_roi(ev)
  bucket = get(ev, "bucket", 8)  # 8: the spec's padding; a coarser one compiles fewer shapes
  runner = cascade_lib.Cascade(model, variables, bucket=bucket if bucket == "official" else int(bucket),
                               window_batch=int(get(ev, "window_batch", 1)),
                               local_mode=str(get(ev, "local_mode", "official")))
  totals, not_refined, start = _Totals(), 0, time.time()
  for _, image, gt, coarse in tqdm(examples, desc=f"refine {split}", unit="img",
                                   disable=not progress, file=sys.stderr, leave=False):
    gt, coarse = np.asarray(gt) > 0, np.asarray(coarse) > 0
    if int(coarse.sum()) < min_pixels:
      refined = coarse
      not_refined += 1
    elif roi == "object" and not coarse.any():  # no box to refine (min_input_pixels=0)
      refined = coarse
      not_refined += 1
    elif roi == "object":
      h, w = coarse.shape
      box = masks.object_box(coarse, roi_grow)
      prob, _ = runner.run_roi(np.asarray(image), coarse, box, masks.context_box(box, h, w, roi_margin),
                               L, stages)
      refined = np.asarray(cascade_lib.to_uint8(prob)) > 127
    else:
      prob, _ = runner.run(np.asarray(image), coarse, L, stages)
      refined = np.asarray(cascade_lib.to_uint8(prob)) > 127
    totals.add(gt, coarse, refined)
  if totals.images == 0:
    raise ValueError(f"no evaluation images in split {split!r} (eval.split / data config)")
  metrics: dict[str, Any] = totals.metrics()
  metrics.update(split=split, stages=stages, L=L, roi=roi, num_images=totals.images, not_refined=not_refined,
                 seconds=round(time.time() - start, 2))
  if roi == "object":
    metrics.update(roi_grow=roi_grow, roi_margin=roi_margin)
  if step is not None:
    metrics["step"] = int(step)
  if workdir is not None and jax.process_index() == 0:
    reports.write_reports(metrics, pathlib.Path(workdir) / "eval", f"refine_{split}_step{step}",
                          metrics_markdown(metrics, f"Refinement: {split} (step {step})"))
  return metrics


def metrics_markdown(metrics: dict, title: str) -> str:
  """The metrics (fractions) as a Markdown table of percentages."""
  pct = lambda x: "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"  # noqa: E731
  gain = lambda x: "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:+.2f}"  # noqa: E731
  rows = [f"## {title}", "",
          f"{metrics['num_images']} images, stages {metrics['stages']}, L {metrics['L']}"
          + (f", each refined in its object's box (grown {metrics['roi_grow']:g}, context "
             f"{metrics['roi_margin']:g})" if metrics.get("roi") == "object" else "")
          + (f", {metrics['not_refined']} inputs too small to refine (kept)" if metrics.get("not_refined") else ""),
          "", "| mask | IoU | mBA |", "|---|---|---|",
          f"| input (coarse) | {pct(metrics['IoU_input'])} | {pct(metrics['mBA_input'])} |",
          f"| refined | {pct(metrics['IoU'])} | {pct(metrics['mBA'])} |",
          f"| gain | {gain(metrics['IoU_gain'])} | {gain(metrics['mBA_gain'])} |", ""]
  return "\n".join(rows)


def evaluate_checkpoint(config, workdir: str | pathlib.Path, *, checkpoint: str = "latest",
                        split: str | None = None) -> tuple[dict, str]:
  """`psp-jax evaluate` of a refinement workdir's latest (or best) checkpoint. Returns
  (metrics, the Markdown table)."""
  from psp_jax import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
  workdir = pathlib.Path(workdir)
  path = workdir / "checkpoints_best" if checkpoint == "best" else workdir
  model, variables = ckpt_lib.load(path)
  _, step = ckpt_lib.resolve(path)
  metrics = evaluate_refinement_variables(model, variables, config, workdir=str(workdir), step=step,
                                          split=split)
  title = f"CascadePSP refinement, {checkpoint} checkpoint (step {step}), split {metrics['split']}"
  return metrics, metrics_markdown(metrics, title)


# ----------------------------------------------------------------------------- training

def evaluate_during_training(model, variables, config, mesh, workdir, step) -> dict:
  del mesh
  return evaluate_refinement_variables(model, local_copy(variables), config, workdir=workdir,
                                       step=step, progress=jax.process_index() == 0)


def _check_config(config) -> None:
  """Fail early on data settings the inference procedure does not share."""
  mean, std = tuple(get(config.data, "mean", ())), tuple(get(config.data, "std", ()))
  if (mean and tuple(round(float(m), 3) for m in mean) != IMAGENET_MEAN) or (
      std and tuple(round(float(s), 3) for s in std) != IMAGENET_STD):
    raise ValueError(f"data.mean/std of a refinement config must be ImageNet's {IMAGENET_MEAN} / "
                     f"{IMAGENET_STD} (inference normalises so); got {mean} / {std}")
  crop = tuple(get(config.data, "crop_size", (224, 224)))
  if crop[0] % 8 or crop[1] % 8:
    raise ValueError(f"data.crop_size={crop} must be a multiple of 8 (the module's output stride)")
  eval_stages(config.eval)
  eval_roi(config.eval)


def training_task(config, data_cfg, model, global_batch: int, *,
                  evaluate_fn=None) -> TrainingTask:
  """Image + perturbed mask crops, the six-output loss (train.loss.*), IoU/mBA evaluation."""
  from psp_jax.data.refine_pipeline import mix_source, refine_train_iterator  # pylint: disable=import-outside-toplevel
  from psp_jax.models.build import family_of  # pylint: disable=import-outside-toplevel
  from psp_jax.models.refinement import cascade_outputs  # pylint: disable=import-outside-toplevel
  from psp_jax.train import refine_losses  # pylint: disable=import-outside-toplevel
  from psp_jax.train.refine_step import make_refine_train_step  # pylint: disable=import-outside-toplevel
  _check_config(config)
  loss_cfg = get(config.train, "loss", {})
  ce_w = tuple(get(loss_cfg, "ce_weights", refine_losses.PUBLISHED_CE_WEIGHTS))
  l_w = tuple(get(loss_cfg, "l1l2_weights", refine_losses.PUBLISHED_L1L2_WEIGHTS))
  g_w = float(get(loss_cfg, "grad_weight", refine_losses.PUBLISHED_GRAD_WEIGHT))
  refine_losses.check_weights(ce_w, l_w)
  dataset = prepare_dataset(data_cfg)
  mix = mix_source(data_cfg)  # data.mix: a second source of training examples, prepared too
  mix_dataset = prepare_dataset(mix[0]) if mix is not None else None

  def make_step(optimizer, mesh):
    return make_refine_train_step(model, optimizer, mesh, ce_weights=ce_w, l1l2_weights=l_w,
                                  grad_weight=g_w, sync_bn=bool(get(config.train, "sync_bn", True)),
                                  bn_group_size=config.train.get("bn_group_size"))

  present = cascade_outputs(model.passes)  # a shorter cascade has no terms for skipped passes
  terms = [f"ce/{k}" for k, w in zip(refine_losses.OUTPUTS, ce_w) if w and k in present]
  terms += [f"l1l2/{k}" for k, w in zip(refine_losses.OUTPUTS, l_w) if w and k in present]
  terms += ["grad"] if g_w else []
  meta = checkpoint_meta(config, model,
                         preprocessing={"mask": "binary {0,1} -> {-1,+1}; padding -1"},
                         inference={"L": int(get(config.eval, "L", 900)), "stages": eval_stages(config.eval)})
  return TrainingTask(
      name=NAME, meta=meta, train_iterator=refine_train_iterator(data_cfg, global_batch, dataset=dataset,
                                                                  mix_dataset=mix_dataset),
      make_step=make_step, batch_arrays=lambda b: (b["image"], b["seg"], b["gt"]),
      evaluate=evaluate_fn or evaluate_during_training,
      summed_metrics=("loss", "iou", "input_iou", "grad_norm", *terms), eval_metrics=EVAL_METRICS,
      best_metric=BEST_METRIC, labels_hint="ground-truth masks must hold only 0 and 1",
      progress={"loss": "loss", "iou": "iou"}, lr_modules=family_of(model).lr_modules)
