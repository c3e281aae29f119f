"""Class 7 (issue 13): folders of inputs. `psp-jax predict` and `psp-jax refine` process every
readable file, list the failed ones with their reason at the end and exit 1 (psp_jax.cli_batch)."""
import pathlib
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "refine"))
from refine_fixtures import blob_sample, save_tiny_checkpoint  # noqa: E402

from psp_jax import main  # noqa: E402


def _png(path, array):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path)
  return path


def _broken(path, data=b"this is not an image\n"):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(data)
  return path


def test_predict_labels_every_readable_image_and_lists_the_others(trained_workdir, tmp_path, capsys):
  src = tmp_path / "in"
  _png(src / "good.png", np.random.default_rng(0).integers(0, 255, (40, 52, 3), np.uint8))
  _broken(src / "bad.png")
  jpeg = _png(src / "cut.jpg", np.full((30, 30, 3), 90, np.uint8))
  _broken(jpeg, jpeg.read_bytes()[:40])  # a truncated JPEG
  out = tmp_path / "out"
  assert main.run(["predict", "--checkpoint", str(trained_workdir), "--input", str(src),
                   "--output", str(out)]) == 1
  captured = capsys.readouterr()
  assert sorted(p.name for p in out.iterdir()) == ["good.png", "good_color.png", "good_overlay.png"]
  assert Image.open(out / "good.png").size == (52, 40)
  assert "wrote 3 files for 1 image(s)" in captured.out
  err = captured.err
  assert "psp-jax predict: error: 2 of 3 images failed (the others were written):" in err
  for name in ("bad.png", "cut.jpg"):
    assert f"  {src / name}: cannot read image {src / name}: " in err
  assert "Traceback" not in err


def test_refine_refines_every_readable_pair_and_lists_the_others(tmp_path, capsys):
  ckpt = save_tiny_checkpoint(tmp_path / "ckpt")
  image, mask = blob_sample(150, 230)  # the shapes tests/refine compile (one session: reused)
  for stem in ("a", "b", "c"):
    _png(tmp_path / "im" / f"{stem}.png", image)
  _broken(tmp_path / "im" / "b.png")        # b: an unreadable image
  _png(tmp_path / "mask" / "a.png", mask)
  _png(tmp_path / "mask" / "b.png", mask)   # c: no mask at all
  code = main.run(["refine", "--checkpoint", ckpt, "--image", str(tmp_path / "im"), "--mask",
                   str(tmp_path / "mask"), "--output", str(tmp_path / "out"),
                   "--fast", "--L", "96", "--bucket", "64"])
  err = capsys.readouterr().err
  assert code == 1, err
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]
  assert "psp-jax refine: error: 2 of 3 images failed (the others were written):" in err
  assert f"  {tmp_path / 'im' / 'b.png'}: cannot read image {tmp_path / 'im' / 'b.png'}: " in err
  assert (f"  {tmp_path / 'im' / 'c.png'}: no file with the stem 'c' in --mask {tmp_path / 'mask'} "
          "(files are matched by stem)") in err
