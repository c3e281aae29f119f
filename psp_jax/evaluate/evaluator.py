"""Evaluate a segmentation model on a whole split: sliding windows -> confusion matrix -> tables.

The confusion matrix is accumulated on the device image by image, summed across hosts once
at the end, and the metrics are computed once from it (never averaged over batches). Reports
are written to `<workdir>/eval/<split>_step<N>.{json,md}`.
"""
from __future__ import annotations

import math
import pathlib
import time
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from psp_jax import reports
from psp_jax.evaluate import cost
from psp_jax.preprocessing import Preprocessing
from psp_jax.evaluate.inference import InferenceSettings, SlidingWindowPredictor
from psp_jax.evaluate.metrics import confusion_matrix, lookalike_metrics, segmentation_metrics
from psp_jax.evaluate import post_steps


def inference_settings(eval_cfg, data_cfg) -> InferenceSettings:
  """The `eval` config section (plus the data normalisation) as InferenceSettings."""
  return InferenceSettings(
      crop_size=tuple(eval_cfg.crop_size), base_size=eval_cfg.get("base_size") or None,
      scales=tuple(eval_cfg.get("scales", (1.0,))), flip=bool(eval_cfg.get("flip", False)),
      stride_rate=float(eval_cfg.get("stride_rate", 2.0 / 3.0)),
      window_batch=int(eval_cfg.get("window_batch", 2)),
      preprocessing=Preprocessing.from_meta(data_cfg))


@jax.jit
def _add_confusion(cm, probs, label):
  pred = jnp.argmax(probs, axis=-1)
  return cm + confusion_matrix(label, pred, cm.shape[0])


@jax.jit
def _add_confusion_labels(cm, pred, label):
  return cm + confusion_matrix(label, pred, cm.shape[0])


def _sum_over_hosts(cm: np.ndarray) -> np.ndarray:
  if jax.process_count() == 1:
    return cm
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  return np.asarray(multihost_utils.process_allgather(cm)).sum(axis=0)


def evaluate_images(predictor: SlidingWindowPredictor, samples, num_classes: int, *,
                    normalized: bool = True, total: int | None = None, progress: bool = True,
                    steps: Sequence[post_steps.PostStep] = (), timings: dict | None = None):
  """Confusion matrix of `predictor` over `samples` = iterable of (index, image HxWx3,
  label HxW), `index` the record's position in the split.

  Labels keep their original size; 255 counts nowhere. Summed over hosts.
  steps: post-processing steps (psp_jax/evaluate/post_steps.py), each run on the image-size
  probabilities and the image de-normalised to RGB of the records it selects; then returns
  (cm, {step.key: (cm with the step, cm without it on the same records)}).
  timings: a dict that gets each image's forward seconds (sliding windows, waited for) under
  'forward' and each step's seconds under its key.
  """
  cm = jnp.zeros((num_classes, num_classes), jnp.int32)
  scored = {s.key: (cm, cm) for s in steps}
  for index, image, label in tqdm(samples, total=total, desc="eval", unit="img",
                                  disable=not progress, leave=False):
    start = time.perf_counter()
    probs = predictor.probabilities(image, normalized=normalized)
    if timings is not None:
      probs.block_until_ready()
      timings.setdefault("forward", []).append(time.perf_counter() - start)
    padded = np.full(probs.shape[:2], 255, np.int32)
    h, w = label.shape
    padded[:h, :w] = label
    cm = _add_confusion(cm, probs, padded)
    chosen = [s for s in steps if s.runs_on(index)]
    rgb = (predictor.settings.preprocessing.denormalize(image) if normalized else image) if chosen else None
    for step in chosen:
      start = time.perf_counter()
      out = step.apply(rgb, probs[:h, :w])
      out = jnp.asarray(out).block_until_ready()  # its time, not its dispatch
      if timings is not None:
        timings.setdefault(step.key, []).append(time.perf_counter() - start)
      with_step, without = scored[step.key]
      add = _add_confusion_labels if out.ndim == 2 else _add_confusion
      scored[step.key] = (add(with_step, out.astype(jnp.int32) if out.ndim == 2 else out, label),
                          _add_confusion(without, probs[:h, :w], label))
  cm = _sum_over_hosts(np.asarray(cm))
  if steps:
    return cm, {k: (_sum_over_hosts(np.asarray(a)), _sum_over_hosts(np.asarray(b)))
                for k, (a, b) in scored.items()}
  return cm


def local_image_count(max_images: int, process_index: int, process_count: int) -> int | None:
  """How many of the split's first `max_images` records process `process_index` of
  `process_count` evaluates: it reads records p, p + P, p + 2P, ... (None: no limit)."""
  if not max_images:
    return None
  return len(range(process_index, max_images, process_count))


def _eval_samples(data_cfg, split: str, max_images: int | None):
  """(index, image, label) triples of this process's share of the split's first max_images records."""
  from psp_jax.data import eval_iterator  # pylint: disable=import-outside-toplevel
  limit = local_image_count(max_images or 0, jax.process_index(), jax.process_count())
  seen = 0
  for batch in eval_iterator(data_cfg, split):
    for i in range(len(batch["valid"])):
      if not batch["valid"][i]:
        continue
      if limit is not None and seen >= limit:
        return
      h, w = int(batch["height"][i]), int(batch["width"][i])
      # this process reads records p, p + P, ...: the record's index in the split
      yield (jax.process_index() + seen * jax.process_count(), batch["image"][i, :h, :w],
             batch["label"][i, :h, :w])
      seen += 1


def evaluate_split(model: nn.Module, variables: Any, config, *, workdir: str | None = None,
                   step: int | None = None, split: str | None = None,
                   class_names: Sequence[str] | None = None, progress: bool = True,
                   steps: Sequence[post_steps.PostStep] | None = None) -> dict:
  """Sliding-window evaluation of `model` on `config.data` split `split` (default
  config.eval.split). Returns the metrics dict of `segmentation_metrics` plus 'protocol',
  'split', 'images', 'step', 'seconds'; writes JSON and Markdown reports when `workdir`.
  steps: the post-processing steps to score as well (default: post_steps.from_config, the
  DenseCRF of eval.crf; the segmentation task adds CascadePSP for eval.refine.*)."""
  from psp_jax.data import open_dataset  # pylint: disable=import-outside-toplevel
  split = split or config.eval.get("split", "validation")
  dataset = open_dataset(config.data)
  num_classes = int(config.data.num_classes)
  names = list(class_names or dataset.class_names or [str(i) for i in range(num_classes)])
  settings = inference_settings(config.eval, config.data)
  forward = lambda v, x: model.apply(v, x, train=False)  # noqa: E731
  predictor = SlidingWindowPredictor(forward, variables, num_classes, settings)
  max_images = int(config.eval.get("max_images", 0) or 0)
  if max_images < 0:
    raise ValueError(f"eval.max_images={max_images}: must be >= 0 (0 evaluates the whole split)")
  n = len(dataset.sources[split])
  total = min(n, max_images) if max_images else n
  start = time.time()
  if steps is None:
    refine = config.eval.get("refine")
    if refine is not None and refine.get("checkpoint", ""):
      raise ValueError("eval.refine.checkpoint is set: pass its step (psp_jax.refine."
                       "on_segmentation.segmentation_steps(config.eval)) as steps=")
    steps = post_steps.from_config(config.eval)
  steps = [s.for_split(total) for s in steps]
  timings: dict = {}
  cm = evaluate_images(predictor, _eval_samples(config.data, split, max_images), num_classes,
                       total=local_image_count(total, jax.process_index(), jax.process_count()),
                       progress=progress, steps=steps, timings=timings)
  cm, scored = cm if steps else (cm, {})
  if not cm.any():
    raise ValueError(f"evaluating split {split!r} ({total} images, eval.max_images={max_images}) "
                     "counted no labelled pixel: every label is the ignore label, so the confusion "
                     "matrix is empty and there are no metrics")
  metrics = segmentation_metrics(cm, names)
  groups = config.data.get("lookalike_groups") or ()
  if groups:
    metrics.update(lookalike_metrics(cm, names, groups))
  protocol = predictor.describe()
  if max_images and max_images < n:
    protocol += f"; SUBSET: first {max_images} of {n} images (not comparable with full-split numbers)"
  metrics.update(protocol=protocol, split=split, images=total, step=step,
                 seconds=round(time.time() - start, 2), confusion_matrix=cm.tolist(),
                 cost=evaluation_cost(forward, variables, settings, timings))
  for post in steps:  # the numbers above are without the steps; these with each
    cm_with, cm_without = scored[post.key]
    metrics[post.key] = step_metrics(post, cm_with, cm_without, names, groups, total)
  if workdir is not None and jax.process_index() == 0:
    reports.write_reports(metrics, pathlib.Path(workdir) / "eval",
                          f"{split}_step{step if step is not None else 'final'}",
                          metrics_markdown(reports.clean(metrics), f"Evaluation: {split} (step {step})"))
  return metrics


def step_metrics(step: post_steps.PostStep, cm_with: np.ndarray, cm_without: np.ndarray,
                 names: Sequence[str], groups, total: int) -> dict:
  """A step's entry: what ran, the metrics with it, and on a subset of the split also the
  metrics without it on the same images ('without'), the pair its gain is read from."""
  scores = segmentation_metrics(cm_with, names)
  out = dict(step.describe, images=total if step.images is None else len(step.images),
             confusion_matrix=cm_with.tolist(),
             **{k: scores[k] for k in ("mIoU", "mAcc", "aAcc", "per_class")})
  if groups:
    out.update(lookalike_metrics(cm_with, names, groups))
  if step.images is not None:
    base = segmentation_metrics(cm_without, names)
    out["without"] = {k: base[k] for k in ("mIoU", "mAcc", "aAcc")}
    if groups:
      out["without"].update(lookalike_metrics(cm_without, names, groups))
  return out


def evaluation_cost(forward, variables, settings: InferenceSettings, timings: dict) -> dict:
  """The 'cost' entry of an evaluation: parameters, XLA's GFLOPs of one window, the median
  per-image forward and CRF times of this run (the first image, which compiles, left out)."""
  params = variables.get("params", variables) if isinstance(variables, Mapping) else variables
  out = dict(params=cost.parameter_count(params),
             gflops_per_window=round(cost.forward_gflops(forward, variables, settings.crop_size), 4),
             window=list(settings.crop_size), window_batch=settings.window_batch,
             forward_ms_per_image=cost.median_ms(timings.get("forward", [])))
  for key in ("crf", "refine"):
    if timings.get(key):
      out[f"{key}_ms_per_image"] = cost.median_ms(timings[key], skip_first=False)
  return out


def metrics_markdown(metrics: dict, title: str) -> str:
  """The metrics as a Markdown report: summary line, per-class table, absent classes."""
  pct = lambda x: "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}"  # noqa: E731
  lines = [f"# {title}", "",
           f"{metrics.get('images', '?')} images, {metrics.get('protocol', '')}", "",
           f"| mIoU | mAcc | aAcc |", "|---:|---:|---:|",
           f"| {pct(metrics['mIoU'])} | {pct(metrics['mAcc'])} | {pct(metrics['aAcc'])} |", "",
           "| class | IoU | acc | labelled pixels |", "|---|---:|---:|---:|"]
  for row in metrics["per_class"]:
    lines.append(f"| {row['class']} | {pct(row['iou'])} | {pct(row['acc'])} | {row['pixels']} |")
  if "lookalike_mIoU" in metrics:
    lines += ["", f"Look-alike classes (data.lookalike_groups): mIoU {pct(metrics['lookalike_mIoU'])}, "
              f"called by their twin {pct(metrics['twin_rate'])}% of their pixels ("
              + ", ".join(f"{k} {pct(v)}" for k, v in metrics["twins"].items()) + ")"]
  for key, title, name in (("crf", "DenseCRF", "CRF"), ("refine", "refinement", "refinement")):
    c = metrics.get(key)
    if not c:
      continue
    base = c.get("without", metrics)
    on = ("every image" if "without" not in c
          else f"{c['images']} evenly spaced images of the split; 'without' on the same images")
    lines += ["", f"With {title} `{c['setting']}`" + (f" ({c['params']})" if "params" in c else "")
              + f", on {on}:", "",
              "| | mIoU | mAcc | aAcc |", "|---|---:|---:|---:|",
              f"| without {name} | {pct(base['mIoU'])} | {pct(base['mAcc'])} | {pct(base['aAcc'])} |",
              f"| with {name} | {pct(c['mIoU'])} | {pct(c['mAcc'])} | {pct(c['aAcc'])} |"]
  if metrics.get("absent_classes"):
    lines += ["", "Classes absent from both labels and predictions (excluded from the means): "
              + ", ".join(metrics["absent_classes"])]
  return "\n".join(lines) + "\n"

