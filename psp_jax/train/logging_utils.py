"""Training logs: TensorBoard event files (tensorboardX, no TensorFlow), a plain text log and
the run's set-up report.

  WORKDIR/tensorboard/events.out.tfevents.*   scalars train/*, eval/*; images eval/prediction_*
  WORKDIR/train.log                           one line per log step / evaluation / event
  WORKDIR/config.json, config.txt             the resolved config
  WORKDIR/setup.txt                           devices, hosts, batch split, BN batch, schedule

Only process 0 writes; on other processes the writer is a no-op.
"""
from __future__ import annotations

import datetime
import json
import pathlib
import struct
from typing import Any, Mapping

import numpy as np

TENSORBOARD_DIR = "tensorboard"
TEXT_LOG = "train.log"


def _now() -> str:
  return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


class MetricWriter:
  """Scalars and images to TensorBoard, lines to `train.log` (appended across restarts)."""

  def __init__(self, workdir: str | pathlib.Path, *, enabled: bool = True):
    self.enabled = enabled
    self.workdir = pathlib.Path(workdir)
    self._tb = None
    self._log = None
    if enabled:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel
      self.workdir.mkdir(parents=True, exist_ok=True)
      self._tb = SummaryWriter(logdir=str(self.workdir / TENSORBOARD_DIR), flush_secs=30)
      self._log = open(self.workdir / TEXT_LOG, "a", buffering=1, encoding="utf-8")

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    if self._tb is None:
      return
    for tag, value in values.items():
      self._tb.add_scalar(tag, float(value), int(step))

  def image(self, step: int, tag: str, image_hwc: np.ndarray) -> None:
    if self._tb is not None:
      self._tb.add_image(tag, np.asarray(image_hwc, np.uint8), int(step), dataformats="HWC")

  def text(self, line: str) -> None:
    """A timestamped line in train.log."""
    if self._log is not None:
      self._log.write(f"[{_now()}] {line}\n")

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()
    if self._log is not None:
      self._log.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None
    if self._log is not None:
      self._log.close()
      self._log = None


def format_metrics(values: Mapping[str, float]) -> str:
  return "  ".join(f"{k} {v:.5g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())


def write_config(workdir: str | pathlib.Path, config) -> None:
  """config.json (plain data, best effort) and config.txt (ml_collections' own rendering)."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "config.json").write_text(json.dumps(config_to_dict(config), indent=2, sort_keys=True))
  (workdir / "config.txt").write_text(str(config))


def config_to_dict(config) -> dict[str, Any]:
  """The config as JSON-able plain data (tuples as lists, FieldReferences resolved)."""
  if hasattr(config, "to_json_best_effort"):
    return json.loads(config.to_json_best_effort())
  return json.loads(json.dumps(config, default=str))


# ----------------------------------------------------------------------------- event reading

def read_events(logdir: str | pathlib.Path) -> dict[str, list[tuple[int, Any]]]:
  """{tag: [(step, value or 'image'), ...]} from the event files under `logdir`, read with
  tensorboardX's protobufs (no TensorFlow or tensorboard package needed)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=import-outside-toplevel
  out: dict[str, list[tuple[int, Any]]] = {}
  for path in sorted(pathlib.Path(logdir).rglob("events.out.tfevents.*")):
    data = path.read_bytes()
    pos = 0
    while pos + 12 <= len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      start = pos + 12
      if start + length + 4 > len(data):
        break  # a record still being written
      event = event_pb2.Event.FromString(data[start:start + length])
      pos = start + length + 4
      for v in event.summary.value:
        kind = v.WhichOneof("value")
        value = v.simple_value if kind == "simple_value" else kind
        out.setdefault(v.tag, []).append((int(event.step), value))
  return out
