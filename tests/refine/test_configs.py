"""configs/cascadepsp.py:paper holds the published training recipe (specs/cascadepsp.md)."""
import pytest

from configs import cascadepsp
from psp_jax.train import refine_losses


def test_paper_recipe_numbers():
  cfg = cascadepsp.paper()
  assert (cfg.model.name, cfg.model.depth, cfg.model.width) == ("cascadepsp", 50, 64)
  assert tuple(cfg.data.crop_size) == (224, 224)
  assert cfg.train.batch_size == 12 and cfg.train.steps == 45_000 and cfg.train.sync_bn
  assert (cfg.optim.name, cfg.optim.base_lr, cfg.optim.weight_decay) == ("adam", 2.25e-4, 1e-4)
  assert cfg.optim.schedule == "step" and cfg.optim.decay_factor == 0.1
  assert [round(f * 45_000) for f in cfg.optim.boundary_fractions] == [22_500, 37_500]
  assert tuple(cfg.train.loss.ce_weights) == refine_losses.PUBLISHED_CE_WEIGHTS == (1, 1, 1, .5, .5, 0)
  assert tuple(cfg.train.loss.l1l2_weights) == refine_losses.PUBLISHED_L1L2_WEIGHTS == (0, 0, 0, .25, .25, 1)
  assert cfg.train.loss.grad_weight == 5.0
  assert cfg.eval.L == 900 and cfg.eval.stages == "global+local" and cfg.eval.min_input_pixels == 32 * 32
  names = {s["layout"] for s in cfg.data.sources}
  assert names == {"msra10k", "dut_omron", "ecssd", "fss1000"}
  assert cfg.data.refine_augment.perturb.iou_min == 0.8


def test_unknown_variant_is_named():
  with pytest.raises(ValueError, match="no variant 'nope'"):
    cascadepsp.get_config("nope")


def test_demo_real_differs_from_demo_in_its_data_only():
  """demo_real: CamVid's class-agnostic objects (real photographs) under the demo's recipe."""
  synthetic, real = cascadepsp.demo(), cascadepsp.get_config("demo_real")
  assert real.data.name == "camvid" and synthetic.data.name == "synthetic"
  assert real.data.objects.min_pixels == 400 and real.data.objects.crop_on_object
  assert "Sky" not in real.data.objects.classes and "Pedestrian" in real.data.objects.classes
  assert synthetic.data.objects is None
  for section in ("model", "train", "optim", "eval"):
    assert real[section].to_dict() == synthetic[section].to_dict(), section
  assert tuple(real.data.crop_size) == tuple(synthetic.data.crop_size) == (96, 96)


def test_demo_mixed_is_demo_real_with_half_synthetic_training_examples():
  real, mixed = cascadepsp.demo_real(), cascadepsp.get_config("demo_mixed")
  assert mixed.data.mix.fraction == 0.5 and mixed.data.mix.data.name == "synthetic"
  assert "mix" not in mixed.data.mix.data  # one level: the mixed-in source has no mix of its own
  assert real.data.mix is None
  with mixed.data.unlocked():
    del mixed.data.mix
  with real.data.unlocked():
    del real.data.mix
  assert mixed.data.to_dict() == real.data.to_dict()
  for section in ("model", "train", "optim", "eval"):
    assert mixed[section].to_dict() == real[section].to_dict(), section


def test_eval_roi_fields_default_to_the_papers_whole_image():
  cfg = cascadepsp.paper()
  assert cfg.eval.roi == "image" and cfg.eval.bucket == 8
  assert (cfg.eval.roi_grow, cfg.eval.roi_margin) == (0.1, 0.25)


def test_demo_real_box_is_demo_real_at_the_objects_scale():
  """demo_real_box: the same data, model and schedule, training crops framed by the object's box
  and evaluation in the object's box by the global step at L=512."""
  real, box = cascadepsp.demo_real(), cascadepsp.get_config("demo_real_box")
  assert real.data.objects.crop_to_box == 0.0 and box.data.objects.crop_to_box == 0.4
  assert (box.eval.roi, box.eval.stages, box.eval.L, box.eval.bucket) == ("object", "global", 512, 32)
  assert real.eval.roi == "image"
  with box.data.objects.unlocked():
    box.data.objects.crop_to_box = 0.0
  assert box.data.to_dict() == real.data.to_dict()
  for section in ("model", "train", "optim"):
    assert box[section].to_dict() == real[section].to_dict(), section
