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
