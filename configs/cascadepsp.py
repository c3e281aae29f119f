"""CascadePSP refinement-module training configs, one function per named variant (plain data).

  psp-jax train --config configs/cascadepsp.py:paper --workdir runs/cascadepsp \
      --config.data.root=/data/cascadepsp --config.train.init_checkpoint=ckpts/resnet50_imagenet
  psp-jax train --config configs/cascadepsp.py:demo --workdir runs/cascade_demo   # CPU, minutes
  psp-jax train --config configs/cascadepsp.py:demo_real --workdir runs/cascade_real  # CamVid photos
  psp-jax train --config configs/cascadepsp.py:demo_mixed --workdir runs/cascade_mixed  # + synthetic
  psp-jax evaluate --config configs/cascadepsp.py:demo --workdir runs/cascade_demo

Fields (the shared ones are described in configs/common.py):
  task                  'refinement' (psp_jax/tasks/refinement.py)
  model.*               psp_jax.models.RefinementModule fields (name 'cascadepsp', depth, width,
                        dtype, passes: cascade length 1-3, 3 published; seg_skip: 0 (published) or the
                        initial gain of the input-skip on the output logits, not in the paper)
  data.*                see configs/data.py (binary_masks, synthetic_objects); data.crop_size is
                        the training crop (224 in the paper)
  train.loss.ce_weights / l1l2_weights   6-tuples over the outputs (s8a, s8b, s8c, s4b, s4c,
                        s1): BCE and L1+L2 weights (published: (1,1,1,.5,.5,0), (0,0,0,.25,.25,1))
  train.loss.grad_weight  weight of the gradient loss on s1 (published 5)
  optim.*               Adam, lr 2.25e-4, weight decay 1e-4 (added to the gradient, as PyTorch's
                        Adam), lr x0.1 at optim.boundary_fractions of train.steps (22.5K and
                        37.5K of 45K), or at absolute optim.boundaries when those are set
  eval.stages           'global' (fast) | 'global+local' (full, default) | 'local'
  eval.L                long side of the global step and window size of the local step (900)
  eval.local_mode       'official' (windows enter at pass 2, the released code) | 'pass3'
  eval.min_input_pixels inputs with fewer foreground pixels are not refined (authors' eval: 32x32)
  eval.max_images       evaluate the first N validation images (0: all)
  eval.seed             seed of the perturbed validation inputs (fixed: reproducible numbers)
  eval.roi              'image' (the paper's: refine the whole image) | 'object': refine the coarse
                        mask's bounding box grown by eval.roi_grow x its longer side, seeing
                        eval.roi_margin x that of context (Refiner.refine(roi=...))
  eval.bucket           short-side padding of the model's inputs (8, the spec's; 'official'; 32 or 64
                        compile fewer shapes when input sizes vary, as object boxes do)
"""
from __future__ import annotations

import ml_collections

from configs import common, data

from psp_jax.train.refine_losses import (PUBLISHED_CE_WEIGHTS, PUBLISHED_GRAD_WEIGHT,
                                         PUBLISHED_L1L2_WEIGHTS)


def _base(data_cfg: ml_collections.ConfigDict, *, depth: int = 50, width: int = 64,
          steps: int = 45_000, crop: int = 224) -> ml_collections.ConfigDict:
  model = dict(name="cascadepsp", depth=depth, width=width, dtype="float32", passes=3, seg_skip=0.0)
  loss = ml_collections.ConfigDict(dict(ce_weights=PUBLISHED_CE_WEIGHTS,
                                        l1l2_weights=PUBLISHED_L1L2_WEIGHTS,
                                        grad_weight=PUBLISHED_GRAD_WEIGHT))
  eval_cfg = ml_collections.ConfigDict(dict(
      every=5000, split="validation", stages="global+local", L=900, local_mode="official",
      window_batch=1, min_input_pixels=32 * 32, max_images=0, seed=0, roi="image", roi_grow=0.1,
      roi_margin=0.25, bucket=8))
  cfg = common.base("refinement", model, data_cfg, common.train(steps, batch_size=12, loss=loss),
                    common.adam_step(2.25e-4, (0.5, 5.0 / 6.0)), eval_cfg)
  cfg.data.crop_size = (crop, crop)
  return cfg


def paper() -> ml_collections.ConfigDict:
  """The published recipe (repo defaults): ResNet-50 from ImageNet (set
  train.init_checkpoint to `psp-jax convert --model resnet-torchvision` of the torchvision
  ResNet-50; the 3 extra input channels start at zero), MSRA-10K + DUT-OMRON + ECSSD +
  FSS-1000 under data.root, 224 crops, batch 12, Adam 2.25e-4, 45K iterations, x0.1 at 22.5K
  and 37.5K, SyncBN.

  The paper reports no validation split during training; to watch progress this config
  evaluates 200 images of DUTS-TE (data.root/DUTS-TE, which the authors' download script
  fetches) with perturbed inputs every 5000 steps. The paper's BIG / relabelled-VOC numbers
  refine other models' outputs: `psp-jax refine --checkpoint ... --gt ...` on those folders."""
  cfg = _base(data.binary_masks(val_sources=({"layout": "duts", "dir": "DUTS-TE"},)))
  cfg.eval.max_images = 200
  return cfg


def _cpu_demo(data_cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The CPU demos' module and schedule: a narrow ResNet-18 module (width 16), 96 px crops,
  batch 8, 600 steps at Adam 1e-3; evaluated by the full global + local procedure with
  L=128, so windows really run."""
  cfg = _base(data_cfg, depth=18, width=16, steps=600, crop=96)
  cfg.train.batch_size = 8
  cfg.train.checkpoint_every = 200
  cfg.train.log_every = 20
  cfg.optim.base_lr = 1e-3
  cfg.eval.every = 300
  cfg.eval.L = 128
  cfg.eval.min_input_pixels = 0
  return cfg


def demo() -> ml_collections.ConfigDict:
  """A CPU demo: object masks of the embedded synthetic scenes (all objects of a scene are
  one mask), evaluated on held-out 256 px scenes (~6-8 minutes on 2 CPU cores)."""
  return _cpu_demo(data.synthetic_objects())


def demo_real() -> ml_collections.ConfigDict:
  """The CPU demo on real photographs: class-agnostic objects of CamVid's road scenes
  (data.camvid_objects: each component of Building, Pole, Tree, SignSymbol, Fence, Car,
  Pedestrian, Bicyclist with >= 400 px; crops placed on the object), evaluated on one
  object per CamVid val image with perturbed inputs."""
  return _cpu_demo(data.camvid_objects())


def demo_real_box() -> ml_collections.ConfigDict:
  """demo_real at the object's scale: each training crop is one object's bounding box with 0.4
  of its longer side of context on every side, resized to the 96 px crop
  (data.objects.crop_to_box), and each evaluation object is refined in its box
  (eval.roi='object') by the global step at L=512, so small objects are magnified in both."""
  cfg = _cpu_demo(data.camvid_objects(crop_to_box=0.4))
  cfg.eval.roi = "object"
  cfg.eval.stages = "global"
  cfg.eval.L = 512
  cfg.eval.bucket = 32
  return cfg


def demo_mixed() -> ml_collections.ConfigDict:
  """demo_real with half of the training examples from the synthetic object scenes (data.mix)."""
  return _cpu_demo(data.mixed(data.camvid_objects(), data.synthetic_objects(), 0.5))


def get_config(name: str = "demo") -> ml_collections.ConfigDict:
  variants = {"paper": paper, "demo": demo, "demo_real": demo_real, "demo_real_box": demo_real_box,
              "demo_mixed": demo_mixed}
  if name not in variants:
    raise ValueError(f"configs/cascadepsp.py has no variant {name!r}; choose one of {sorted(variants)}")
  return variants[name]()
