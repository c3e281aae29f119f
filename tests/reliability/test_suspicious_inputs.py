"""Class 8 (issue 13): inputs that are legal but probably wrong get a warning
(psp_jax.data.input_checks): a refine mask with no foreground, a label map with one class."""
import pathlib
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "refine"))
from refine_fixtures import blob_sample, save_tiny_checkpoint  # noqa: E402

from psp_jax import main  # noqa: E402
from psp_jax.data import input_checks  # noqa: E402
from psp_jax.data.builders import print_report  # noqa: E402


def test_the_checks():
  assert input_checks.mask_warnings(np.zeros((4, 5), bool))[0].startswith("the mask has no foreground")
  assert input_checks.mask_warnings(np.ones((4, 5), bool))[0].startswith("the mask is foreground everywhere")
  assert input_checks.mask_warnings(np.eye(4, dtype=bool)) == []
  one = np.full((4, 5), 3, np.uint8)
  assert input_checks.label_warnings(one) == [
      "the label map holds a single class (3): nothing to separate; is it the right file "
      "(an index PNG, not a colour image)?"]
  one[0] = 255
  assert "single class (3) outside the ignore value" in input_checks.label_warnings(one)[0]
  assert input_checks.label_warnings(np.arange(6).reshape(2, 3)) == []


def test_a_dataset_split_with_a_single_class_is_reported(capsys):
  """The classic: binary masks stored 0/255 read with 255 = ignore leave only class 0."""
  meta = {"class_names": ["background", "object"],
          "splits": {"train": {"num_examples": 3, "max_height": 8, "max_width": 8,
                               "class_pixels": [150, 0], "ignore_pixels": 42}}}
  warnings = print_report("folder/x", meta)
  assert warnings == ["folder/x split 'train': only one class occurs ('background'): the label "
                      "mapping is probably wrong (masks stored as 0/255 with 255 = ignore? see "
                      "data.label_map / ignore_values)"]
  assert "WARNING: folder/x split 'train': only one class occurs" in capsys.readouterr().out


def test_refine_warns_about_an_empty_mask_and_a_single_class_label_map(tmp_path, capsys):
  ckpt = save_tiny_checkpoint(tmp_path / "ckpt")
  image, _ = blob_sample(150, 230)  # the shapes tests/refine compile (one session: reused)
  Image.fromarray(image).save(tmp_path / "a.png")
  Image.fromarray(np.zeros((150, 230), np.uint8)).save(tmp_path / "empty.png")
  Image.fromarray(np.full((150, 230), 2, np.uint8), mode="L").save(tmp_path / "labels.png")
  fast = ["--fast", "--L", "96", "--bucket", "64"]
  assert main.run(["refine", "--checkpoint", ckpt, "--image", str(tmp_path / "a.png"), "--mask",
                   str(tmp_path / "empty.png"), "--output", str(tmp_path / "o.png"), *fast]) == 0
  err = capsys.readouterr().err
  assert "psp-jax refine: warning: empty.png: the mask has no foreground at all" in err
  assert (tmp_path / "o.png").is_file()  # legal input: still refined
  assert main.run(["refine", "--checkpoint", ckpt, "--image", str(tmp_path / "a.png"), "--mask",
                   str(tmp_path / "labels.png"), "--labels", "--output", str(tmp_path / "l.png"), *fast]) == 0
  assert "psp-jax refine: warning: labels.png: the label map holds a single class (2)" in capsys.readouterr().err
