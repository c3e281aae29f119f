"""Label images with a segmentation checkpoint (any family): the Python API `psp_jax.predict` and `psp-jax predict`.

  psp-jax predict --checkpoint CKPT --input IMG_OR_DIR --output DIR [--opacity 0.5]
                  [--flip] [--scales 0.5,0.75,1,1.25,1.5,1.75] [--base_size 512]

For every image it writes <stem>.png (class indices in a palette PNG), <stem>_color.png
(the colour map) and <stem>_overlay.png (colours over the photo at --opacity). The
checkpoint (a training workdir or any `psp-jax convert` output) carries its model config,
class names, palette and preprocessing, so nothing else is needed.
"""
from __future__ import annotations

import argparse
import functools
import pathlib
import sys
from typing import Any

import numpy as np
from PIL import Image

from psp_jax import checkpoint as ckpt_lib
from psp_jax import cli_batch, cli_checks, cli_errors
from psp_jax.evaluate.inference import InferenceSettings, SlidingWindowPredictor
from psp_jax.models import build
from psp_jax.preprocessing import Preprocessing
from psp_jax.visualize import colorize, default_palette, overlay, save_index_png

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# The authors' evaluation protocol per dataset (crop, long side at scale 1).
DATASET_PROTOCOLS = {"ade20k": ((473, 473), 512), "voc": ((473, 473), 512),
                     "cityscapes": ((713, 713), 2048)}


def inference_settings_from_meta(meta: dict, **overrides: Any) -> InferenceSettings:
  """Sliding-window settings a checkpoint asks for: its 'inference' entry (training writes
  one), else its dataset's protocol, else 473 windows on the image at its own size."""
  pre = meta.get("preprocessing", {})
  fields: dict[str, Any] = {}
  if "inference" in meta:
    fields.update({k: tuple(v) if isinstance(v, list) else v for k, v in meta["inference"].items()
                   if k in InferenceSettings.__dataclass_fields__})
  else:
    dataset = meta.get("classes", {}).get("dataset")
    crop, base = DATASET_PROTOCOLS.get(dataset, ((473, 473), None))
    fields.update(crop_size=crop, base_size=base)
  family = build.family_of(meta.get("model", {}))
  fields["preprocessing"] = Preprocessing.from_meta(pre, default=family.preprocessing)
  fields.update({k: v for k, v in overrides.items() if v is not None})
  return InferenceSettings(**fields)


class Segmenter:
  """A loaded checkpoint ready to label RGB uint8 images of any size."""

  def __init__(self, checkpoint: str | pathlib.Path, crf: Any = None, **settings_overrides: Any):
    """crf: optional DenseCRF on the image-size probabilities before the argmax (a preset name
    of psp_jax.postprocess, 'NAME:key=value,...', a dict or CRFParams)."""
    self.model, self.variables = ckpt_lib.load(checkpoint)
    self.meta = ckpt_lib.read_meta(checkpoint)
    family = build.family_of(self.meta["model"])
    if family.task != "segmentation":
      raise ValueError(f"{checkpoint}: a {family.name!r} checkpoint ({family.task}) cannot label "
                       "images; predict needs a segmentation checkpoint (a family whose task is "
                       "'segmentation')")
    self.num_classes = int(self.model.num_classes)
    classes = self.meta.get("classes", {})
    self.class_names = list(classes.get("names") or [str(i) for i in range(self.num_classes)])
    palette = classes.get("palette")
    self.palette = np.asarray(palette, np.uint8) if palette else default_palette(self.num_classes)
    self.settings = inference_settings_from_meta(self.meta, **settings_overrides)
    model = self.model
    self.predictor = SlidingWindowPredictor(lambda v, x: model.apply(v, x, train=False),
                                            self.variables, self.num_classes, self.settings)
    self.crf = None
    if crf:
      from psp_jax.postprocess import resolve  # pylint: disable=import-outside-toplevel
      self.crf = resolve(crf)

  def predict(self, image: np.ndarray) -> np.ndarray:
    """(H, W) int32 label map of an (H, W, 3) uint8 RGB image."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
      raise ValueError(f"predict expects an RGB image HxWx3, got shape {image.shape}")
    if self.crf is None:
      return self.predictor.predict(image)
    from psp_jax.postprocess import crf_probabilities  # pylint: disable=import-outside-toplevel
    h, w = image.shape[:2]
    probs = crf_probabilities(image, self.predictor.probabilities(image)[:h, :w], self.crf)
    return np.asarray(np.argmax(probs, axis=-1), np.int32)


@functools.lru_cache(maxsize=2)
def _segmenter(checkpoint: str) -> Segmenter:
  return Segmenter(checkpoint)


def predict(checkpoint: str | pathlib.Path, image: np.ndarray) -> np.ndarray:
  """Label map (H, W) of an RGB uint8 image with the checkpoint's own protocol (cached load)."""
  return _segmenter(str(checkpoint)).predict(image)


def read_rgb(path: pathlib.Path) -> np.ndarray:
  """An image file as (H, W, 3) uint8 RGB (ValueError naming the file when unreadable)."""
  try:
    with Image.open(path) as img:
      return np.asarray(img.convert("RGB"))
  except (OSError, ValueError) as e:
    raise ValueError(f"cannot read image {path}: {e}") from e


def list_images(path: pathlib.Path, flag: str = "--input") -> list[pathlib.Path]:
  """[path] for a file, the image files of a folder (sorted; UsageError when there are none)."""
  path = cli_checks.check_existing(path, flag)
  if path.is_file():
    return [path]
  files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
  if not files:
    raise cli_errors.UsageError(f"{flag} folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
  return files


def _scales(text: str | None) -> tuple[float, ...] | None:
  if not text:
    return None
  try:
    scales = tuple(float(s) for s in text.split(","))
  except ValueError:
    scales = ()
  if not scales or any(s <= 0 for s in scales):
    raise cli_errors.UsageError(f"--scales {text}: expected comma-separated positive numbers, "
                                "e.g. 0.5,0.75,1,1.25,1.5,1.75")
  return scales


def predict_main(argv: list[str]) -> int:
  """`psp-jax predict ...` (see the module docstring)."""
  parser = argparse.ArgumentParser(prog="psp-jax predict", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--checkpoint", required=True, help="training workdir or checkpoint directory")
  parser.add_argument("--input", required=True, help="an image or a folder of images")
  parser.add_argument("--output", required=True, help="folder for the PNGs (created)")
  parser.add_argument("--opacity", type=cli_checks.unit_interval, default=0.5,
                      help="overlay colour opacity in [0, 1]")
  parser.add_argument("--flip", action="store_true", help="average with the mirrored image")
  parser.add_argument("--scales", default=None,
                      help="comma-separated scales of the base size, e.g. 0.5,0.75,1,1.25,1.5,1.75")
  parser.add_argument("--base_size", type=cli_checks.positive_int, default=None,
                      help="long side at scale 1")
  parser.add_argument("--crf", default="",
                      help="DenseCRF before the argmax: a preset (v1_deeplab, v1_largefov, "
                           "v2_resnet, v2_vgg) or NAME:key=value,... (psp_jax.postprocess)")
  args = cli_checks.parse_args(parser, argv)
  return cli_errors.run_command("psp-jax predict", lambda _: _predict(args), [])


def _predict(args) -> int:
  """Every readable image of --input labelled; the unreadable ones listed at the end (exit 1)."""
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  prog = "psp-jax predict"
  cli_checks.check_existing(args.checkpoint, "--checkpoint")
  files = list_images(pathlib.Path(args.input))
  out = cli_checks.check_dir(args.output, "--output")
  segmenter = Segmenter(args.checkpoint, crf=args.crf or None, flip=args.flip or None,
                        scales=_scales(args.scales), base_size=args.base_size)
  out.mkdir(parents=True, exist_ok=True)

  def label_one(path: pathlib.Path) -> None:
    image = read_rgb(path)
    label = segmenter.predict(image)
    colors = colorize(label, segmenter.palette)
    save_index_png(out / f"{path.stem}.png", label, segmenter.palette)
    Image.fromarray(colors).save(out / f"{path.stem}_color.png")
    Image.fromarray(overlay(image, colors, args.opacity)).save(out / f"{path.stem}_overlay.png")

  bar = tqdm(files, desc="predict", unit="img", disable=len(files) < 2)
  failures = cli_batch.for_each(bar, label_one, prog=prog,
                                say=lambda msg: tqdm.write(msg, file=sys.stderr))
  done = len(files) - len(failures)
  print(f"wrote {3 * done} files for {done} image(s) to {out} ({segmenter.predictor.describe()})")
  return cli_batch.finish(prog, failures, len(files), what="image")
