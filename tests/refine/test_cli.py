"""`psp-jax refine` end to end with a tiny random-weight checkpoint: one image, folders,
evaluation against ground truth, label maps, and bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from refine_fixtures import blob_sample

from psp_jax import main
from psp_jax.evaluate import boundary

FAST = ["--fast", "--L", "96", "--bucket", "64"]  # shapes the session's refiner compiled already


def _write(folder, name, array):
  folder.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(folder / name)
  return folder / name


def test_help_lists_the_flags():
  out = subprocess.run([sys.executable, "-m", "psp_jax", "refine", "--help"], capture_output=True,
                       text=True, check=True).stdout
  for flag in ("--checkpoint", "--image", "--mask", "--output", "--fast", "--L", "--gt"):
    assert flag in out


@pytest.mark.parametrize("h,w", [(150, 230), (7, 13)])
def test_one_image(tiny_ckpt, tmp_path, capsys, h, w):
  image, mask = blob_sample(h, w)
  img = _write(tmp_path, "photo.jpg", image)
  msk = _write(tmp_path, "photo_mask.png", np.repeat(mask[..., None], 3, 2))  # RGB: read as grey
  out = tmp_path / "out" / "refined.png"
  code = main.run(["refine", "--checkpoint", tiny_ckpt, "--image", str(img), "--mask", str(msk),
                   "--output", str(out)] + FAST)
  assert code == 0, capsys.readouterr().err
  result = np.asarray(Image.open(out))
  assert result.shape == (h, w) and result.dtype == np.uint8
  assert "photo.jpg" in capsys.readouterr().out


def test_folders_with_ground_truth_report(tiny_ckpt, tmp_path, capsys):
  truth = {}  # image name -> (input mask, ground truth), as booleans
  for i, (h, w) in enumerate([(150, 230), (140, 220)]):
    image, mask = blob_sample(h, w, seed=i)
    _write(tmp_path / "im", f"s{i}.png", image)
    _write(tmp_path / "mask", f"s{i}.png", mask)
    gt = np.zeros((h, w), np.uint8)
    gt[h // 4:3 * h // 4, w // 4:3 * w // 4] = 255
    _write(tmp_path / "gt", f"s{i}.png", gt)
    truth[f"s{i}.png"] = (mask > 127, gt > 127)
  report = tmp_path / "report.json"
  code = main.run(["refine", "--checkpoint", tiny_ckpt, "--image", str(tmp_path / "im"),
                   "--mask", str(tmp_path / "mask"), "--gt", str(tmp_path / "gt"),
                   "--output", str(tmp_path / "out"), "--report", str(report)] + FAST)
  assert code == 0, capsys.readouterr().err
  out = capsys.readouterr().out
  assert "IoU" in out and "mBA" in out and "mean over 2 image(s)" in out
  data = json.loads(report.read_text())
  assert [r["image"] for r in data["images"]] == ["s0.png", "s1.png"]
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s0.png", "s1.png"]
  iou = lambda a, b: (a & b).sum() / (a | b).sum()  # noqa: E731
  for row in data["images"]:
    before, gt = truth[row["image"]]
    after = np.asarray(Image.open(tmp_path / "out" / row["image"])) > 127  # the written mask
    assert 0.3 < iou(before, gt) < 0.9  # a coarse input, neither empty nor the ground truth
    assert row["iou_before"] == pytest.approx(iou(before, gt), rel=1e-12)
    assert row["iou_after"] == pytest.approx(iou(after, gt), rel=1e-12)
    assert row["mba_before"] == pytest.approx(boundary.boundary_accuracy(before, gt), rel=1e-12)
    assert row["mba_after"] == pytest.approx(boundary.boundary_accuracy(after, gt), rel=1e-12)
    assert f"IoU {row['iou_before']:.4f} -> {row['iou_after']:.4f}" in out
  mean = {k: float(np.mean([r[k] for r in data["images"]]))
          for k in ("iou_before", "iou_after", "mba_before", "mba_after")}
  assert data["mean"] == pytest.approx(mean, rel=1e-12)
  assert (f"mean over 2 image(s): IoU {mean['iou_before']:.4f} -> {mean['iou_after']:.4f}, "
          f"mBA {mean['mba_before']:.4f} -> {mean['mba_after']:.4f}") in out
  assert np.asarray(Image.open(tmp_path / "out" / "s1.png")).shape == (140, 220)


def test_label_map_mode(tiny_ckpt, tmp_path, capsys):
  image, _ = blob_sample(150, 230)
  labels = np.zeros((150, 230), np.uint8)
  labels[20:90, 20:110] = 1
  labels[60:140, 120:210] = 2
  img = _write(tmp_path, "a.png", image)
  lab = Image.fromarray(labels, mode="P")
  lab.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (253 * 3))
  lab.save(tmp_path / "a_labels.png")
  code = main.run(["refine", "--checkpoint", tiny_ckpt, "--image", str(img), "--mask",
                   str(tmp_path / "a_labels.png"), "--labels", "--output", str(tmp_path / "o.png")]
                  + FAST)
  assert code == 0, capsys.readouterr().err
  out = Image.open(tmp_path / "o.png")
  assert out.mode == "P" and out.size == (230, 150)
  assert set(np.unique(np.asarray(out))) <= {0, 1, 2}


def test_bad_input_is_reported_naming_it(tiny_ckpt, tmp_path, capsys):
  image, mask = blob_sample(20, 30)
  img = _write(tmp_path, "x.png", image)
  msk = _write(tmp_path, "x_mask.png", mask)
  small = _write(tmp_path, "small_mask.png", mask[:, :29])
  one = _write(tmp_path, "one.png", image[:1, :1])
  one_mask = _write(tmp_path, "one_mask.png", mask[:1, :1])
  base = ["refine", "--checkpoint", tiny_ckpt] + FAST
  cases = [  # (arguments, exit status: 2 a bad argument, 1 an input that failed, message)
      (["--image", str(tmp_path / "nope.jpg"), "--mask", str(msk), "--output", "o.png"], 2,
       "nope.jpg: does not exist; expected a file or a folder"),
      (["--image", str(img), "--mask", str(tmp_path / "nomask.png"), "--output", "o.png"], 2,
       "nomask.png: does not exist; expected a file"),
      (["--image", str(img), "--mask", str(small), "--output", str(tmp_path / "o.png")], 1,
       r"small_mask.png is 20x29 (HxW) but image"),
      (["--image", str(one), "--mask", str(one_mask), "--output", str(tmp_path / "o.png")], 1,
       "too small"),
      (["--image", str(img), "--mask", str(msk)], 2, "--output is required"),
      (["--image", str(img), "--mask", str(msk), "--output", str(tmp_path / "o.jpg")], 2,
       "must be a .png"),
  ]
  for args, status, message in cases:
    assert main.run(base + args) == status, args
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, (message, err)
  # folders: an image without a mask is named
  _write(tmp_path / "ims", "a.png", image)
  _write(tmp_path / "ims", "b.png", image)
  _write(tmp_path / "msks", "a.png", mask)
  assert main.run(base + ["--image", str(tmp_path / "ims"), "--mask", str(tmp_path / "msks"),
                          "--output", str(tmp_path / "o")]) == 1
  assert "no file with the stem 'b' in --mask" in capsys.readouterr().err
  assert (tmp_path / "o" / "a.png").is_file()  # the image that has a mask is still refined
  bad = tmp_path / "ckpt_missing"
  assert main.run(["refine", "--checkpoint", str(bad), "--image", str(img), "--mask", str(msk),
                   "--output", str(tmp_path / "o.png")]) == 2
  assert "does not exist" in capsys.readouterr().err


def test_refine_fills_the_compilation_cache(tiny_ckpt, tmp_path):
  """A command run writes its compiled programs to $PSP_JAX_COMPILATION_CACHE (a subprocess:
  the cache is process-wide JAX configuration)."""
  image, mask = blob_sample(40, 56)
  img, msk = _write(tmp_path, "a.png", image), _write(tmp_path, "m.png", mask)
  cache = tmp_path / "cache"
  env = dict(os.environ, PSP_JAX_COMPILATION_CACHE=str(cache),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  proc = subprocess.run([sys.executable, "-m", "psp_jax", "refine", "--checkpoint", tiny_ckpt,
                         "--image", str(img), "--mask", str(msk), "--output",
                         str(tmp_path / "o.png")] + FAST, capture_output=True, text=True, env=env)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert (tmp_path / "o.png").exists()
  assert cache.is_dir() and any(cache.iterdir()), "no compiled program was cached"
