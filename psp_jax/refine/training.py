"""Training and evaluating the CascadePSP refinement module from a config.

  psp-jax train --config configs/cascadepsp.py:demo --workdir runs/cascade_demo
  psp-jax evaluate --config configs/cascadepsp.py:demo --workdir runs/cascade_demo

Training runs through the shared loop (`psp_jax.train.loop`, which calls `refinement_task`
for `model.name == 'cascadepsp'`): 224x224 crops with perturbed input masks
(`psp_jax.data.refine_pipeline`), the six-output loss (`psp_jax.train.refine_losses`), Adam
with the step schedule, SyncBN, checkpoints, resume and preemption as for PSPNet.

Evaluation (`evaluate_refinement_variables`) refines held-out images at full size with the
inference procedure of `psp_jax.Refiner` (`psp_jax.refine.cascade`): each validation image's
coarse input is its ground truth perturbed with a fixed per-image seed, so the numbers are
reproducible. Metrics, as CascadePSP's evaluation: IoU pooled over the split (sum of
intersections / sum of unions), mBA averaged over images; both for the input masks
('IoU_input', 'mBA_input') and the refined ones ('IoU', 'mBA'); 'IoU_gain' and 'mBA_gain'.
Following the authors' code, an input with fewer than `eval.min_input_pixels` foreground
pixels (32 x 32 by default) is not refined (its output is the input).
Config keys: eval.stages ('global' | 'global+local' | 'local'), eval.L, eval.local_mode
('official' | 'pass3'), eval.max_images (0 = all), eval.min_input_pixels, eval.split.
"""
from __future__ import annotations

import json
import math
import pathlib
import sys
import time
from typing import Any, Callable

import jax
import numpy as np
from tqdm import tqdm

from psp_jax import checkpoint as ckpt_lib
from psp_jax.evaluate import boundary
from psp_jax.models.refinement import cascade_outputs
from psp_jax.refine import cascade as cascade_lib

EVAL_METRICS = ("IoU", "mBA", "IoU_input", "mBA_input", "IoU_gain", "mBA_gain")
STAGE_ALIASES = {"global_local": "global+local", "full": "global+local", "fast": "global"}


def _get(cfg, key, default=None):
  v = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
  return default if v is None else v


def eval_stages(eval_cfg) -> str:
  """eval.stages with its aliases resolved; an unknown value is an error naming the key."""
  stages = str(_get(eval_cfg, "stages", "global+local"))
  stages = STAGE_ALIASES.get(stages, stages)
  if stages not in cascade_lib.STAGES:
    raise ValueError(f"eval.stages={stages!r} is not one of {cascade_lib.STAGES} "
                     f"(or the aliases {sorted(STAGE_ALIASES)})")
  return stages


# ----------------------------------------------------------------------------- evaluation

def evaluate_refinement_variables(model, variables, config, *, workdir: str | None = None,
                                  step: int | None = None, split: str | None = None,
                                  progress: bool = True, examples=None) -> dict[str, Any]:
  """Refine every evaluation example; returns the metrics (module docstring) plus 'split',
  'stages', 'L', 'num_images', 'not_refined' (inputs below min_input_pixels), 'seconds'.
  Writes `<workdir>/eval/refine_<split>_step<N>.{json,md}` when workdir is given.
  examples: (name, image uint8, gt {0,1}, coarse {0,1}) tuples overriding the data config's."""
  ev = config.eval
  split = split or str(_get(ev, "split", "validation"))
  stages = eval_stages(ev)
  L = int(_get(ev, "L", 900))
  min_pixels = int(_get(ev, "min_input_pixels", 32 * 32))
  if examples is None:
    from psp_jax.data.refine_pipeline import refine_eval_examples  # pylint: disable=import-outside-toplevel
    from psp_jax.train.loop import data_config  # pylint: disable=import-outside-toplevel
    max_images = int(_get(ev, "max_images", 0) or 0) or None
    examples = refine_eval_examples(data_config(config), split, max_images=max_images,
                                    seed=int(_get(ev, "seed", 0)))
  runner = cascade_lib.Cascade(model, variables, bucket=8, window_batch=int(_get(ev, "window_batch", 1)),
                               local_mode=str(_get(ev, "local_mode", "official")))
  sums = {"in_i": 0, "in_u": 0, "out_i": 0, "out_u": 0}
  mba_in, mba_out, not_refined, n = [], [], 0, 0
  start = time.time()
  for name, image, gt, coarse in tqdm(examples, desc=f"refine {split}", unit="img",
                                      disable=not progress, file=sys.stderr, leave=False):
    gt, coarse = np.asarray(gt) > 0, np.asarray(coarse) > 0
    if int(coarse.sum()) < min_pixels:
      refined = coarse
      not_refined += 1
    else:
      prob, _ = runner.run(np.asarray(image), coarse, L, stages)
      refined = np.asarray(cascade_lib.to_uint8(prob)) > 127
    for tag, mask in (("in", coarse), ("out", refined)):
      sums[f"{tag}_i"] += int(np.logical_and(mask, gt).sum())
      sums[f"{tag}_u"] += int(np.logical_or(mask, gt).sum())
    mba_in.append(boundary.boundary_accuracy(coarse, gt))
    mba_out.append(boundary.boundary_accuracy(refined, gt))
    n += 1
    del name
  if n == 0:
    raise ValueError(f"no evaluation images in split {split!r} (eval.split / data config)")
  pct = lambda a, b: 100.0 * a / b if b else math.nan  # noqa: E731
  mean = lambda xs: 100.0 * float(np.nanmean(xs)) if not np.all(np.isnan(xs)) else math.nan  # noqa: E731
  metrics: dict[str, Any] = {
      "IoU": pct(sums["out_i"], sums["out_u"]), "mBA": mean(mba_out),
      "IoU_input": pct(sums["in_i"], sums["in_u"]), "mBA_input": mean(mba_in),
  }
  metrics["IoU_gain"] = metrics["IoU"] - metrics["IoU_input"]
  metrics["mBA_gain"] = metrics["mBA"] - metrics["mBA_input"]
  metrics.update(split=split, stages=stages, L=L, num_images=n, not_refined=not_refined,
                 seconds=round(time.time() - start, 2))
  if step is not None:
    metrics["step"] = int(step)
  if workdir is not None and jax.process_index() == 0:
    write_reports(metrics, pathlib.Path(workdir) / "eval", f"refine_{split}_step{step}")
  return metrics


def metrics_markdown(metrics: dict, title: str) -> str:
  rows = [f"## {title}", "",
          f"{metrics['num_images']} images, stages {metrics['stages']}, L {metrics['L']}"
          + (f", {metrics['not_refined']} inputs too small to refine (kept)" if metrics.get("not_refined") else ""),
          "", "| mask | IoU | mBA |", "|---|---|---|",
          f"| input (coarse) | {metrics['IoU_input']:.2f} | {metrics['mBA_input']:.2f} |",
          f"| refined | {metrics['IoU']:.2f} | {metrics['mBA']:.2f} |",
          f"| gain | {metrics['IoU_gain']:+.2f} | {metrics['mBA_gain']:+.2f} |", ""]
  return "\n".join(rows)


def write_reports(metrics: dict, directory: pathlib.Path, stem: str) -> tuple[pathlib.Path, pathlib.Path]:
  """`<stem>.json` and `<stem>.md` (NaN written as null)."""
  directory.mkdir(parents=True, exist_ok=True)
  clean = json.loads(json.dumps(metrics, default=float).replace("NaN", "null"))
  json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
  json_path.write_text(json.dumps(clean, indent=1))
  md_path.write_text(metrics_markdown(metrics, f"Refinement: {metrics['split']} (step {metrics.get('step')})"))
  return json_path, md_path


def evaluate_refinement(config, workdir: str | pathlib.Path, *, checkpoint: str = "latest",
                        split: str | None = None, progress: bool = True) -> dict[str, Any]:
  """Evaluate the latest (or best) checkpoint of a refinement training workdir (the
  `psp-jax evaluate` of a cascadepsp config)."""
  workdir = pathlib.Path(workdir)
  path = workdir / "checkpoints_best" if checkpoint == "best" else workdir
  model, variables = ckpt_lib.load(path)
  _, step = ckpt_lib.resolve(path)
  return evaluate_refinement_variables(model, variables, config, workdir=str(workdir), step=step,
                                       split=split, progress=progress)


# ----------------------------------------------------------------------------- the task

def checkpoint_meta(config, model) -> dict[str, Any]:
  """The 'meta' item of refinement checkpoints (what `psp_jax.Refiner` reads)."""
  from psp_jax import __version__ as version  # pylint: disable=import-outside-toplevel
  from psp_jax.train import logging_utils  # pylint: disable=import-outside-toplevel
  return {
      "format_version": ckpt_lib.FORMAT_VERSION,
      "model": ckpt_lib.model_config(model),
      "source": {"format": "psp_jax-train", "psp_jax_version": version,
                 "config": logging_utils.config_to_dict(config)},
      "preprocessing": {"mean": list(cascade_lib.IMAGENET_MEAN), "std": list(cascade_lib.IMAGENET_STD),
                        "input_scale": 255.0, "channel_order": "RGB",
                        "mask": "binary {0,1} -> {-1,+1}; padding -1"},
      "inference": {"L": int(_get(config.eval, "L", 900)), "stages": eval_stages(config.eval)},
  }


def _evaluate_during_training(model, variables, config, mesh, workdir, step) -> dict:
  del mesh
  from psp_jax.train.loop import _local_copy  # pylint: disable=import-outside-toplevel
  return evaluate_refinement_variables(model, _local_copy(variables), config, workdir=workdir,
                                       step=step, progress=jax.process_index() == 0)


def refinement_task(config, data_cfg, model, evaluate_fn: Callable | None, global_batch: int):
  """The loop's Task for the refinement module (see psp_jax.train.loop.Task)."""
  from psp_jax.data.refine_pipeline import refine_train_iterator  # pylint: disable=import-outside-toplevel
  from psp_jax.train import loop, refine_losses  # pylint: disable=import-outside-toplevel
  from psp_jax.train.refine_step import make_refine_train_step  # pylint: disable=import-outside-toplevel

  mean, std = tuple(_get(config.data, "mean", ())), tuple(_get(config.data, "std", ()))
  if mean and tuple(round(float(m), 3) for m in mean) != cascade_lib.IMAGENET_MEAN or (
      std and tuple(round(float(s), 3) for s in std) != cascade_lib.IMAGENET_STD):
    raise ValueError(f"data.mean/std of a refinement config must be ImageNet's {cascade_lib.IMAGENET_MEAN} / "
                     f"{cascade_lib.IMAGENET_STD} (inference normalises so); got {mean} / {std}")
  crop = tuple(_get(config.data, "crop_size", (224, 224)))
  if crop[0] % 8 or crop[1] % 8:
    raise ValueError(f"data.crop_size={crop} must be a multiple of 8 (the module's output stride)")
  eval_stages(config.eval)  # fail early on a bad value
  loss_cfg = _get(config.train, "loss", {})
  ce_w = tuple(_get(loss_cfg, "ce_weights", refine_losses.PUBLISHED_CE_WEIGHTS))
  l_w = tuple(_get(loss_cfg, "l1l2_weights", refine_losses.PUBLISHED_L1L2_WEIGHTS))
  g_w = float(_get(loss_cfg, "grad_weight", refine_losses.PUBLISHED_GRAD_WEIGHT))
  refine_losses.check_weights(ce_w, l_w)
  dataset = loop.prepare_dataset(data_cfg)

  def make_step(optimizer, mesh):
    return make_refine_train_step(model, optimizer, mesh, ce_weights=ce_w, l1l2_weights=l_w,
                                  grad_weight=g_w, sync_bn=bool(config.train.get("sync_bn", True)),
                                  bn_group_size=config.train.get("bn_group_size"))

  present = cascade_outputs(model.passes)  # a shorter cascade has no terms for skipped passes
  terms = [f"ce/{k}" for k, w in zip(refine_losses.OUTPUTS, ce_w) if w and k in present]
  terms += [f"l1l2/{k}" for k, w in zip(refine_losses.OUTPUTS, l_w) if w and k in present]
  terms += ["grad"] if g_w else []
  return loop.Task(
      name="refinement", model=model, meta=checkpoint_meta(config, model),
      train_iterator=refine_train_iterator(data_cfg, global_batch, dataset=dataset),
      make_step=make_step, batch_arrays=lambda b: (b["image"], b["seg"], b["gt"]),
      evaluate=evaluate_fn or _evaluate_during_training,
      summed_metrics=("loss", "iou", "input_iou", "grad_norm", *terms), eval_metrics=EVAL_METRICS,
      best_metric="IoU", labels_hint="ground-truth masks must hold only 0 and 1",
      progress={"loss": "loss", "iou": "iou"})
