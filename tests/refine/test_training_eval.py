"""Refinement evaluation (before/after IoU and mBA) on hand-made examples."""
import ml_collections
import numpy as np
import pytest

from psp_jax.evaluate import boundary
from psp_jax.models.refinement import RefinementModule
from psp_jax.refine.api import Refiner
from psp_jax.tasks import refinement as training
from refine_fixtures import WIDTH, tiny_variables


def _examples(n=3, size=48):
  out = []
  yy, xx = np.mgrid[:size, :size]
  for i in range(n):
    gt = ((yy - 24) ** 2 + (xx - 20 - i) ** 2 < 15 ** 2).astype(np.uint8)
    coarse = np.zeros_like(gt)
    coarse[10:38, 6 + i:36 + i] = 1  # a box around the disc: a typical coarse input
    image = np.where(gt[..., None] > 0, 200, 40).astype(np.uint8).repeat(3, -1)
    out.append((f"ex{i}", image, gt, coarse))
  return out


def _config(**eval_fields):
  ev = dict(split="validation", stages="global", L=48, local_mode="official", window_batch=1,
            min_input_pixels=0, max_images=0, seed=0)
  ev.update(eval_fields)
  return ml_collections.ConfigDict({"eval": ev})


def test_input_metrics_are_pooled_iou_and_per_image_mba():
  ex = _examples()
  # inputs too small to refine are kept: refined metrics equal the input's, and are exact
  m = training.evaluate_refinement_variables(
      RefinementModule(width=WIDTH), tiny_variables(), _config(min_input_pixels=10 ** 9),
      examples=ex, progress=False)
  inter = sum(int((c & g).sum()) for _, _, g, c in ex)
  union = sum(int((c | g).sum()) for _, _, g, c in ex)
  assert m["IoU_input"] == pytest.approx(inter / union)  # fractions (reports print percentages)
  assert m["mBA_input"] == pytest.approx(np.mean([boundary.boundary_accuracy(c, g) for _, _, g, c in ex]))
  assert m["IoU"] == m["IoU_input"] and m["mBA"] == m["mBA_input"] and m["IoU_gain"] == 0
  assert m["not_refined"] == 3 and m["num_images"] == 3


@pytest.mark.parametrize("stages", ["global", "global_local"])
def test_refined_metrics_come_from_the_cascade(stages, tiny_ckpt, tmp_path):
  """The refined masks are the Refiner's (same weights, padding and windows); IoU is pooled
  over the images (sum of intersections / sum of unions), mBA the mean of per-image values."""
  examples = _examples(2, size=96)
  m = training.evaluate_refinement_variables(
      RefinementModule(width=WIDTH), tiny_variables(), _config(stages=stages, L=72),
      examples=examples, progress=False, workdir=str(tmp_path), step=7)
  assert m["stages"] == ("global" if stages == "global" else "global+local")
  assert m["not_refined"] == 0 and m["num_images"] == 2
  refiner = Refiner(tiny_ckpt, bucket=8, window_batch=1)
  refined = [refiner.refine(image, coarse * 255, L=72, stages=m["stages"]) > 127
             for _, image, _, coarse in examples]
  gts = [g > 0 for _, _, g, _ in examples]
  assert any(not np.array_equal(r, c > 0) for r, (_, _, _, c) in zip(refined, examples))
  inter = sum(int((r & g).sum()) for r, g in zip(refined, gts))
  union = sum(int((r | g).sum()) for r, g in zip(refined, gts))
  assert m["IoU"] == pytest.approx(inter / union, rel=1e-12)
  assert m["mBA"] == pytest.approx(np.mean([boundary.boundary_accuracy(r, g)
                                            for r, g in zip(refined, gts)]), rel=1e-12)
  assert m["IoU_gain"] == pytest.approx(m["IoU"] - m["IoU_input"])
  assert m["mBA_gain"] == pytest.approx(m["mBA"] - m["mBA_input"])
  report = (tmp_path / "eval" / "refine_validation_step7.md").read_text()
  assert f"| refined | {100 * m['IoU']:.2f} | {100 * m['mBA']:.2f} |" in report
  assert (tmp_path / "eval" / "refine_validation_step7.json").exists()


def test_bad_stage_is_named():
  with pytest.raises(ValueError, match="eval.stages='glob'"):
    training.eval_stages(ml_collections.ConfigDict({"stages": "glob"}))


def test_object_roi_refines_the_grown_box_as_the_refiner_does(tiny_ckpt):
  """eval.roi='object': each example is refined inside its coarse mask's box grown by
  roi_grow (seeing roi_margin of context), as Refiner.refine(roi=box); pixels outside the box
  keep the input."""
  from psp_jax.refine import masks
  size = 96
  examples = []
  for name, image, gt, coarse in _examples(2, size=48):  # the disc in a corner of a larger scene
    big = lambda a: np.pad(a, [(0, size - 48), (0, size - 48)] + [(0, 0)] * (a.ndim - 2))  # noqa: E731
    examples.append((name, big(image), big(gt), big(coarse)))
  examples[0][1][60:, 60:] = 200  # a bright patch far from the object: outside its box
  cfg = _config(stages="global", L=72, roi="object", roi_grow=0.1, roi_margin=0.25)
  m = training.evaluate_refinement_variables(RefinementModule(width=WIDTH), tiny_variables(), cfg,
                                             examples=examples, progress=False)
  assert m["roi"] == "object" and m["roi_grow"] == 0.1 and m["roi_margin"] == 0.25
  refiner = Refiner(tiny_ckpt, bucket=8, window_batch=1)
  inter = union = 0
  for _, image, gt, coarse in examples:
    box = masks.object_box(coarse, 0.1)
    x0, y0, x1, y1 = box
    refined = refiner.refine(image, coarse * 255, L=72, stages="global", roi=box, roi_margin=0.25) > 127
    outside = np.ones(coarse.shape, bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(refined[outside], coarse[outside] > 0)
    inter += int((refined & (gt > 0)).sum())
    union += int((refined | (gt > 0)).sum())
  assert m["IoU"] == pytest.approx(inter / union, rel=1e-12)


def test_object_box_grows_the_bounding_box():
  from psp_jax.refine import masks
  mask = np.zeros((40, 50), np.uint8)
  mask[10:20, 5:25] = 1  # 20 wide, 10 high: grown by 0.1 x 20 = 2 px each side
  assert masks.object_box(mask, 0.1) == (3, 8, 27, 22)
  assert masks.object_box(mask, 0.0) == (4, 9, 26, 21)  # at least 1 px
  assert masks.object_box(mask, 5.0) == (0, 0, 50, 40)  # clipped to the image
  assert masks.object_box(np.zeros((4, 4), np.uint8), 0.1) is None


@pytest.mark.parametrize("fields, message", [
    ({"roi": "box"}, r"eval.roi='box' is not one of \('image', 'object'\)"),
    ({"roi": "object", "roi_grow": -1}, r"eval.roi_grow must be >= 0, got -1"),
])
def test_bad_roi_is_named(fields, message):
  with pytest.raises(ValueError, match=message):
    training.eval_roi(ml_collections.ConfigDict(fields))


def test_object_roi_keeps_an_empty_input():
  """eval.roi='object' with min_input_pixels=0: an empty coarse mask has no box; it is kept."""
  name, image, gt, coarse = _examples(1)[0]
  m = training.evaluate_refinement_variables(
      RefinementModule(width=WIDTH), tiny_variables(), _config(roi="object"),
      examples=[(name, image, gt, np.zeros_like(coarse))], progress=False)
  assert m["not_refined"] == 1 and m["IoU"] == m["IoU_input"] == 0.0
