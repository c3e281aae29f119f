"""`psp-jax refine`: CascadePSP refinement of masks from files, one image or a folder.

  psp-jax refine --checkpoint CKPT --image IMG --mask MASK --output OUT.png [--fast] [--L 900]
  psp-jax refine --checkpoint CKPT --image IMG_DIR --mask MASK_DIR --output OUT_DIR
  psp-jax refine --checkpoint CKPT --image IMG_DIR --mask MASK_DIR --gt GT_DIR [--output OUT_DIR]
                 [--report report.json]

One image: OUT is the PNG to write (or a folder, then OUT/<image stem>.png). Folders: images
and masks (and ground truths) are matched by file stem; every image needs a mask. The output
is the official soft mask (uint8 floor(255 p), threshold at 127) as a greyscale PNG, or 0/255
with --binary.

--gt (a file or a folder matched by stem) evaluates: IoU and mBA (boundary accuracy, see
psp_jax.evaluate.boundary) of the input mask and of the refined mask (> 127) against the
ground truth, per image and on average; --report also writes them as JSON. With --gt,
--output is optional.

Masks are read as greyscale (RGB files are converted, as cv2.IMREAD_GRAYSCALE) and
thresholded at 127; --labels reads them as label maps (palette/index PNGs) and refines each
class (Refiner.refine_labels), writing label PNGs.

Errors: a bad argument (a missing --image/--mask/--checkpoint, an --output under a file, ...)
stops before anything runs (exit status 2). In folders every readable image is refined; the
ones that fail (unreadable, size mismatch, too small) are listed with their reason at the
end and the exit status is 1 (psp_jax.cli_batch). A mask with no foreground, or a label map
with a single class, is refined but warned about (psp_jax.data.input_checks).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time
import warnings

import numpy as np
from PIL import Image

from psp_jax import cli_batch, cli_checks, cli_errors
from psp_jax.data import input_checks

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class InputError(cli_errors.UsageError):
  """A bad command-line argument (exit status 2, reported without a traceback)."""


class FileError(ValueError):
  """One input file cannot be refined (the others still are; exit status 1)."""


def _read(path: pathlib.Path, mode: str, what: str) -> np.ndarray:
  if not path.is_file():
    raise FileError(f"{what} {path} does not exist")
  try:
    with Image.open(path) as img:
      if mode == "labels":
        if img.mode not in ("P", "L", "I", "I;16"):
          raise FileError(f"{what} {path} is a {img.mode} image, not a label map (index/palette "
                          "PNG or greyscale)")
        return np.asarray(img)
      return np.asarray(img.convert(mode))
  except FileError:
    raise
  except (OSError, ValueError) as e:
    raise FileError(f"cannot read {what} {path}: {e}") from e


def _files(path: pathlib.Path, what: str) -> dict[str, pathlib.Path]:
  files = {p.stem: p for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
  if not files:
    raise InputError(f"{what} folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
  return files


def _pairs(args) -> list[tuple[str, pathlib.Path, pathlib.Path, pathlib.Path | None]]:
  """(stem, image, mask, gt) for every input; in folders (matched by file stem) a missing mask
  is None and a missing ground truth None (False: no --gt), reported per image."""
  image = cli_checks.check_existing(args.image, "--image")
  kind = "dir" if image.is_dir() else "file"
  mask = cli_checks.check_existing(args.mask, "--mask", kind)
  gt = cli_checks.check_existing(args.gt, "--gt", kind) if args.gt else None
  if kind == "file":
    return [(image.stem, image, mask, gt or False)]
  images = _files(image, "--image")
  masks = _files(mask, "--mask")
  gts = _files(gt, "--gt") if gt else {}
  return [(s, images[s], masks.get(s), gts.get(s) if gt else False) for s in images]


def _output_kind(args, single: bool) -> str | None:
  """'file' or 'dir': what --output is, checked before anything runs (None without --output)."""
  if not args.output:
    return None
  out = pathlib.Path(args.output)
  if single and not (out.is_dir() or args.output.endswith(("/", "\\"))):
    if out.suffix.lower() != ".png":
      raise InputError(f"--output {out} must be a .png file or a folder")
    cli_checks.check_output_file(out, "--output")
    return "file"
  cli_checks.check_dir(out, "--output")
  return "dir"


def _output_path(args, stem: str, kind: str | None) -> pathlib.Path | None:
  if kind is None:
    return None
  out = pathlib.Path(args.output)
  if kind == "file":
    out.parent.mkdir(parents=True, exist_ok=True)
    return out
  out.mkdir(parents=True, exist_ok=True)
  return out / f"{stem}.png"


def _parse_roi(text: str | None):
  if text is None:
    return None
  try:
    values = [float(v) for v in text.split(",")]
  except ValueError as e:
    raise InputError(f"--roi must be x0,y0,x1,y1 in pixels, got {text!r}") from e
  if len(values) != 4:
    raise InputError(f"--roi must be x0,y0,x1,y1 in pixels, got {text!r}")
  return values


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="psp-jax refine", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--checkpoint", required=True, help="a 'cascadepsp' checkpoint directory")
  p.add_argument("--image", required=True, help="an image, or a folder of images")
  p.add_argument("--mask", required=True, help="its coarse mask, or a folder of masks (same stems)")
  p.add_argument("--output", default=None,
                 help="output PNG (one image) or folder; required unless --gt is given")
  p.add_argument("--gt", default=None, help="ground-truth mask (or folder): report IoU and mBA")
  p.add_argument("--report", default=None, help="with --gt: write the metrics as JSON here")
  p.add_argument("--fast", action="store_true", help="global step only (stages=global)")
  p.add_argument("--L", type=cli_checks.positive_int, default=900,
                 help="global long side and local window size")
  p.add_argument("--stages", choices=["global", "global+local", "local"], default=None,
                 help="which steps run (default global+local, or global with --fast)")
  p.add_argument("--binary", action="store_true", help="write 0/255 masks instead of soft ones")
  p.add_argument("--labels", action="store_true",
                 help="masks are label maps (index PNGs): refine every class, write label maps")
  p.add_argument("--roi", default=None, help="x0,y0,x1,y1: refine only this box (one image)")
  p.add_argument("--dtype", default=None, help="compute dtype, e.g. bfloat16 (accelerators)")
  p.add_argument("--bucket", default=None,
                 help="pad model inputs' short side to a multiple of this (default 8 on CPU, 64 "
                      "else), or 'official' for the released code's padding")
  p.add_argument("--window-batch", type=cli_checks.positive_int, default=None,
                 help="local-step windows per forward")
  p.add_argument("--local-mode", choices=["official", "pass3"], default="official",
                 help="how windows are refined (see psp_jax/refine/cascade.py)")
  return p


def refine_main(argv: list[str]) -> int:
  """`psp-jax refine ...` (see the module docstring)."""
  args = cli_checks.parse_args(build_parser(), argv)
  return cli_errors.run_command("psp-jax refine", lambda _: _refine(args), [])


def _check_args(args) -> tuple[list, str, str | None, list | None]:
  """(pairs, stages, output kind, roi) after every argument check (InputError otherwise)."""
  if args.output is None and args.gt is None:
    raise InputError("--output is required (unless --gt is given to evaluate)")
  if args.report and not args.gt:
    raise InputError("--report needs --gt")
  if args.report:
    cli_checks.check_output_file(args.report, "--report")
  if args.labels and args.gt:
    raise InputError("--gt evaluates binary masks; it cannot be combined with --labels")
  roi = _parse_roi(args.roi)
  cli_checks.check_existing(args.checkpoint, "--checkpoint")
  pairs = _pairs(args)
  if roi is not None and len(pairs) != 1:
    raise InputError("--roi applies to one image, not a folder")
  stages = args.stages or ("global" if args.fast else "global+local")
  if args.fast and stages != "global":
    raise InputError(f"--fast means --stages global, got --stages {args.stages}")
  if args.bucket is not None and args.bucket != "official":
    try:
      args.bucket = int(args.bucket)
    except ValueError as e:
      raise InputError(f"--bucket must be an integer or 'official', got {args.bucket!r}") from e
  single = len(pairs) == 1 and not pathlib.Path(args.image).is_dir()
  return pairs, stages, _output_kind(args, single), roi


def _warn(prog: str, path: pathlib.Path, messages) -> None:
  for message in messages:
    print(f"{prog}: warning: {path.name}: {message}", file=sys.stderr)


def _refine(args) -> int:
  prog = "psp-jax refine"
  pairs, stages, out_kind, roi = _check_args(args)
  from psp_jax.evaluate import boundary  # pylint: disable=import-outside-toplevel
  from psp_jax.refine import api, masks  # pylint: disable=import-outside-toplevel
  from psp_jax.visualize import save_index_png  # pylint: disable=import-outside-toplevel
  refiner = api.Refiner(args.checkpoint, dtype=args.dtype, bucket=args.bucket,
                        window_batch=args.window_batch, local_mode=args.local_mode)
  rows = []

  def refine_labels(image_path, mask_path, image, out_path):
    labels = _read(mask_path, "labels", "mask")
    if labels.shape != image.shape[:2]:
      raise FileError(f"mask {mask_path} is {labels.shape[0]}x{labels.shape[1]} (HxW) but image "
                      f"{image_path} is {image.shape[0]}x{image.shape[1]}")
    _warn(prog, mask_path, input_checks.label_warnings(labels))
    out = refiner.refine_labels(image, labels, L=args.L, stages=stages)
    with Image.open(mask_path) as src:
      palette = src.getpalette() if src.mode == "P" else None
    if palette is not None and out.max(initial=0) <= 255:
      save_index_png(out_path, out, np.asarray(palette, np.uint8).reshape(-1, 3))
    else:
      Image.fromarray(out.astype(np.uint8) if out.max(initial=0) <= 255 else out.astype(np.int32)
                      ).save(out_path)
    print(f"{image_path.name}: {len(np.unique(labels))} labels -> {out_path}")

  def refine_one(pair) -> None:
    stem, image_path, mask_path, gt_path = pair
    for flag, path in (("--mask", mask_path), ("--gt", gt_path)):
      if path is None:
        raise FileError(f"no file with the stem {stem!r} in {flag} {getattr(args, flag[2:])} "
                        "(files are matched by stem)")
    gt_path = gt_path or None
    start = time.perf_counter()
    image = _read(image_path, "RGB", "image")
    out_path = _output_path(args, stem, out_kind)
    if args.labels:
      refine_labels(image_path, mask_path, image, out_path)
      return
    mask = _read(mask_path, "L", "mask")
    if mask.shape != image.shape[:2]:
      raise FileError(f"mask {mask_path} is {mask.shape[0]}x{mask.shape[1]} (HxW) but image "
                      f"{image_path} is {image.shape[0]}x{image.shape[1]}: they must match")
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      before = masks.to_binary(mask, "mask")
      _warn(prog, mask_path, input_checks.mask_warnings(before))
      result = refiner.refine_result(image, before, L=args.L, stages=stages, roi=roi)
    _warn(prog, mask_path, [w.message for w in caught])
    if out_path is not None:
      out = result.mask.astype(np.uint8) * 255 if args.binary else result.soft
      Image.fromarray(out).save(out_path)
    seconds = time.perf_counter() - start
    info = result.info
    line = (f"{image_path.name}: {image.shape[1]}x{image.shape[0]} {info.stages}"
            + (f", windows {info.windows_run}/{info.windows_total}" if info.windows_total else "")
            + f", {seconds:.1f} s" + (f" -> {out_path}" if out_path else ""))
    if gt_path is not None:
      gt = _read(gt_path, "L", "ground truth")
      if gt.shape != image.shape[:2]:
        raise FileError(f"ground truth {gt_path} is {gt.shape[0]}x{gt.shape[1]} (HxW) but image "
                        f"{image_path} is {image.shape[0]}x{image.shape[1]}")
      gt_b = gt > 127
      _warn(prog, gt_path, input_checks.mask_warnings(gt_b))
      row = {"image": image_path.name,
             "iou_before": boundary.binary_iou(before, gt_b),
             "iou_after": boundary.binary_iou(result.mask, gt_b),
             "mba_before": boundary.boundary_accuracy(before, gt_b),
             "mba_after": boundary.boundary_accuracy(result.mask, gt_b),
             "seconds": seconds}
      rows.append(row)
      line += (f" | IoU {row['iou_before']:.4f} -> {row['iou_after']:.4f}, "
               f"mBA {row['mba_before']:.4f} -> {row['mba_after']:.4f}")
    print(line, flush=True)

  failures = cli_batch.for_each(pairs, refine_one, prog=prog, name=lambda pair: str(pair[1]))
  if rows:
    mean = {k: float(np.nanmean([r[k] for r in rows]))
            for k in ("iou_before", "iou_after", "mba_before", "mba_after")}
    print(f"mean over {len(rows)} image(s): IoU {mean['iou_before']:.4f} -> {mean['iou_after']:.4f}, "
          f"mBA {mean['mba_before']:.4f} -> {mean['mba_after']:.4f}")
    if args.report:
      report = {"checkpoint": args.checkpoint, "L": args.L, "stages": stages, "images": rows,
                "mean": mean, "failed": [dataclasses.asdict(f) for f in failures]}
      pathlib.Path(args.report).parent.mkdir(parents=True, exist_ok=True)
      pathlib.Path(args.report).write_text(json.dumps(report, indent=2))
  return cli_batch.finish(prog, failures, len(pairs), what="image")
