"""train_and_evaluate in this process (8 simulated devices): outputs, logs, checkpoints,
restoring on other device counts, mismatched checkpoints, the health checks."""
import json
import shutil
import signal

import jax
import numpy as np
import pytest

from loop_fixtures import tiny_config
from psp_jax import checkpoint as ckpt_lib
from psp_jax.parallel import make_mesh
from psp_jax.train import loop
from psp_jax.train.checkpointing import CheckpointMismatchError, TrainCheckpointer
from psp_jax.train.logging_utils import read_events
from psp_jax.train.optim import make_optimizer
from psp_jax.train.preemption import Preempted, PreemptionWatcher
from psp_jax.train.state import create_train_state

STEPS = 4


def _abstract_state(cfg):
  """The abstract training state the config describes (no compilation)."""
  from psp_jax.models.build import build_model, family_of
  from psp_jax.checkpoint import init_variables
  model = build_model(cfg.model)
  variables = jax.eval_shape(lambda: init_variables(model, jax.random.key(0)))
  opt = make_optimizer(cfg.optim, variables["params"], cfg.train.steps,
                       optional_modules=family_of(model).lr_modules)
  return jax.eval_shape(lambda v: create_train_state(v, opt.tx, jax.random.key(1)), variables)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  root = tmp_path_factory.mktemp("loop")
  cfg = tiny_config(str(root / "tfds"), steps=STEPS)
  cfg.eval.every = 2
  workdir = root / "run"
  result = loop.train_and_evaluate(cfg, str(workdir))
  return {"cfg": cfg, "workdir": workdir, "result": result, "root": root}


def test_returns_final_metrics_and_writes_the_workdir(run):
  result, workdir = run["result"], run["workdir"]
  assert result["step"] == STEPS
  for key in ("mIoU", "mAcc", "aAcc", "per_class"):
    assert key in result
  assert result["best_step"] in (2, 4)
  assert json.loads((workdir / "config.json").read_text())["train"]["steps"] == STEPS
  assert "batch_size: 8" in (workdir / "config.txt").read_text()
  setup = (workdir / "setup.txt").read_text()
  assert "devices: 8 local, 8 global" in setup
  assert "BatchNorm batch: 8 (1 per device x 8 devices per BN group)" in setup
  assert "step       0: aux_head 0.2, base 0.02, head 0.2, ppm 0.2" in setup
  assert "step       4: aux_head 0, base 0, head 0, ppm 0" in setup
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()) == [2, 4]
  assert [p.name for p in (workdir / "checkpoints_best").iterdir() if p.name.isdigit()] == [
      str(result["best_step"])]
  assert (workdir / "eval" / "validation_step4.json").exists()


def test_logs_and_tensorboard_tags(run):
  workdir = run["workdir"]
  log = (workdir / "train.log").read_text()
  assert "step 2/4: loss" in log and "step 4/4: loss" in log
  assert "eval step 2: mIoU" in log and "eval step 4: mIoU" in log
  assert "checkpoint step 4 ->" in log
  events = read_events(workdir / "tensorboard")
  for tag in ("train/loss", "train/main_loss", "train/aux_loss", "train/pixel_acc",
              "train/lr/base", "train/lr/head", "train/lr/ppm", "train/lr/aux_head",
              "train/images_per_sec", "train/invalid_label_pixels"):
    assert [s for s, _ in events[tag]] == [2, 4], tag
  for tag in ("eval/mIoU", "eval/mAcc", "eval/aAcc"):
    assert [s for s, _ in events[tag]] == [2, 4], tag
  assert events["eval/prediction_0"] == [(2, "image"), (4, "image")]
  assert all(np.isfinite(v) for _, v in events["train/loss"])


def test_checkpoint_loads_for_inference(run):
  workdir = run["workdir"]
  model, variables = ckpt_lib.load(workdir)
  meta = ckpt_lib.read_meta(workdir)
  assert meta["step"] == STEPS and meta["model"]["num_classes"] == 11
  assert len(meta["classes"]["names"]) == 11 and len(meta["classes"]["palette"]) == 11
  assert meta["preprocessing"]["channel_order"] == "RGB"
  assert meta["source"]["config"]["train"]["steps"] == STEPS
  logits = model.apply(variables, np.zeros((1, 33, 33, 3), np.float32), train=False)
  assert logits.shape == (1, 33, 33, 11)
  best_model, _ = ckpt_lib.load(workdir / "checkpoints_best")
  assert ckpt_lib.read_meta(workdir / "checkpoints_best")["metrics"]["mIoU"] == pytest.approx(
      run["result"]["best_mIoU"])
  del best_model


@pytest.mark.parametrize("devices", [2, 1])
def test_restores_on_another_device_count(run, devices):
  saved, _ = ckpt_lib.load_variables(run["workdir"])
  mesh = make_mesh(devices)
  ckpt = TrainCheckpointer(run["workdir"])
  try:
    state = ckpt.restore(_abstract_state(run["cfg"]), mesh)
  finally:
    ckpt.close()
  assert int(state.step) == STEPS
  leaf = state.params["head"]["classifier"]["kernel"]
  assert leaf.sharding.mesh.devices.size == devices and leaf.sharding.is_fully_replicated
  for a, b in zip(jax.tree.leaves(saved["params"]), jax.tree.leaves(state.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_mismatched_checkpoint_names_the_parameter(run):
  cfg = tiny_config(str(run["root"] / "tfds"), steps=STEPS, num_classes=21)
  ckpt = TrainCheckpointer(run["workdir"])
  try:
    with pytest.raises(CheckpointMismatchError,
                       match=r"params/head/classifier/kernel: checkpoint \(1, 1, 16, 11\) vs "
                             r"model \(1, 1, 16, 21\)"):
      ckpt.restore(_abstract_state(cfg), make_mesh(1))
  finally:
    ckpt.close()


def test_train_refuses_a_workdir_of_another_model(run):
  workdir = run["root"] / "other_model"
  shutil.copytree(run["workdir"] / "checkpoints", workdir / "checkpoints")
  cfg = tiny_config(str(run["root"] / "tfds"), steps=STEPS + 2)
  cfg.model.head_features = 32
  with pytest.raises(CheckpointMismatchError) as e:
    loop.train_and_evaluate(cfg, str(workdir))
  assert "params/head/conv/kernel: checkpoint (3, 3, 128, 16) vs model (3, 3, 128, 32)" in str(e.value)


def _acc(**kw):
  acc = {"bad_step": -1, "bad_loss": 0.0, "invalid": 0}
  acc.update(kw)
  return acc


def test_health_checks_name_the_problem(tmp_path):
  kw = dict(labels_hint="neither in [0, 11) nor the ignore label 255", checkpoint_dir=tmp_path, step=10)
  loop.check_health(_acc(), last_good=8, **kw)
  with pytest.raises(loop.NonFiniteLossError, match=r"loss is nan .*at step 7.*last good checkpoint is step 6"):
    loop.check_health(_acc(bad_step=7, bad_loss=float("nan")), last_good=6, **kw)
  with pytest.raises(loop.InvalidLabelsError,
                     match=r"12 label pixels .* outside the classes \(neither in \[0, 11\)"):
    loop.check_health(_acc(invalid=12), last_good=8, **kw)


def test_sigterm_sets_the_preemption_flag_and_preempted_exits_143(tmp_path):
  previous = signal.getsignal(signal.SIGTERM)
  watcher = PreemptionWatcher()
  try:
    assert not watcher.reached(0)
    signal.raise_signal(signal.SIGTERM)  # handled: a flag, the process keeps running
    assert watcher.reached(1)
  finally:
    watcher.close()
  assert signal.getsignal(signal.SIGTERM) is previous
  with pytest.raises(SystemExit) as e:
    raise Preempted(5, "saved a checkpoint at step 5")
  assert e.value.code == 143 and str(e.value) == "saved a checkpoint at step 5"
  assert loop.maybe_initialize_distributed(tiny_config(str(tmp_path))) is False  # one host
