"""Class 2 (issue 13): a damaged checkpoint never stops a resume or a load with a library
traceback (psp_jax.checkpoint_integrity, TrainCheckpointer.latest_step, psp_jax.checkpoint)."""
import json
import pathlib

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from psp_jax import checkpoint as ckpt_lib
from psp_jax.checkpoint_integrity import CheckpointCorruptError, inspect_step
from psp_jax.parallel import make_mesh
from psp_jax.train.checkpointing import CheckpointMismatchError, TrainCheckpointer
from psp_jax.train.state import create_train_state
from cli_fixtures import CONFIG, tiny


def truncate(path: pathlib.Path) -> pathlib.Path:
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])
  return path


def biggest_array_file(step_dir: pathlib.Path) -> pathlib.Path:
  files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
  return max(files, key=lambda p: p.stat().st_size)


def _state(width: int, step: int):
  """A small training state whose arrays are step-specific (random values do not compress,
  so the array files are real data)."""
  kernel = np.random.default_rng(step).normal(size=(width, 64)).astype(np.float32)
  params = {"dense": {"kernel": jnp.asarray(kernel), "bias": jnp.full((64,), float(step))}}
  state = create_train_state({"params": params, "batch_stats": {}}, optax.sgd(0.1, 0.9),
                             jax.random.key(0))
  return state.replace(step=jnp.asarray(step, jnp.int32))


def _iterator():
  return iter(grain.MapDataset.range(100).to_iter_dataset())


def _save_steps(workdir, steps=(1, 2, 3)):
  ckpt = TrainCheckpointer(workdir, keep=None, enable_async=False, keep_best=False)
  it = _iterator()
  for s in steps:
    next(it)
    ckpt.save(_state(8, s), it, {"format_version": 1, "model": {"name": "test"}, "step": s})
  ckpt.wait()
  ckpt.close()


@pytest.mark.parametrize("damage", ["array file", "state metadata", "data iterator JSON"])
def test_resume_falls_back_past_damaged_steps(tmp_path, capfd, damage):
  _save_steps(tmp_path)
  step3 = tmp_path / "checkpoints" / "3"
  bad = {"array file": lambda: biggest_array_file(step3),
         "state metadata": lambda: step3 / "state" / "_METADATA",
         "data iterator JSON": lambda: step3 / "data" / "process_0-of-1.json"}[damage]()
  truncate(bad)
  ckpt = TrainCheckpointer(tmp_path, keep=None, enable_async=False, keep_best=False)
  assert ckpt.latest_step() == 2
  err = capfd.readouterr().err
  assert f"{step3}: {bad.relative_to(step3)}: " in err and "resuming from step 2" in err
  assert "Traceback" not in err
  assert (tmp_path / "checkpoints_damaged" / "checkpoints_3").is_dir() and not step3.exists()
  it = _iterator()
  mesh = make_mesh(1)
  state = ckpt.restore(jax.eval_shape(lambda: _state(8, 0)), mesh, it)
  assert int(state.step) == 2 and float(state.params["dense"]["bias"][0]) == 2.0
  np.testing.assert_array_equal(state.params["dense"]["kernel"], _state(8, 2).params["dense"]["kernel"])
  assert next(it) == 2  # the iterator of step 2 (two elements consumed)
  ckpt.close()


def test_no_whole_step_left_says_what_to_delete_and_mismatch_is_another_error(tmp_path):
  _save_steps(tmp_path, steps=(1, 2))
  truncate(tmp_path / "checkpoints" / "1" / "meta" / "metadata")
  truncate(biggest_array_file(tmp_path / "checkpoints" / "2"))
  with pytest.raises(CheckpointCorruptError) as e:
    TrainCheckpointer(tmp_path, keep=None, enable_async=False, keep_best=False).latest_step()
  msg = str(e.value)
  assert "checkpoints/2 is damaged: state/" in msg and "truncated" in msg
  assert "checkpoints/1: meta/metadata: not valid JSON" in msg
  assert f"rm -r {tmp_path}/checkpoints/2 {tmp_path}/checkpoints/1" in msg
  assert (tmp_path / "checkpoints" / "2").is_dir()  # nothing is moved when nothing is left
  # a whole step written for another model: a mismatch, never a fallback
  other = tmp_path / "other"
  _save_steps(other, steps=(1, 2))
  ckpt = TrainCheckpointer(other, keep=None, enable_async=False, keep_best=False)
  assert ckpt.latest_step() == 2
  with pytest.raises(CheckpointMismatchError, match=r"params/dense/kernel: checkpoint \(8, 64\) vs model \(4, 64\)"):
    ckpt.restore(jax.eval_shape(lambda: _state(4, 0)), make_mesh(1), _iterator())
  assert ckpt.latest_step() == 2 and inspect_step(other / "checkpoints" / "2") is None
  ckpt.close()


def test_load_reports_the_damaged_file(tmp_path):
  params = {"conv": {"kernel": np.random.default_rng(0).normal(size=(3, 3, 3, 64)).astype(np.float32)}}
  meta = {"format_version": 1, "model": {"name": "pspnet"}}
  for case in ("array", "meta"):
    step_dir = ckpt_lib.save_checkpoint(tmp_path / case, {"params": params}, meta)
    bad = truncate(biggest_array_file(step_dir) if case == "array" else step_dir / "meta" / "metadata")
    with pytest.raises(CheckpointCorruptError) as e:
      ckpt_lib.load_variables(tmp_path / case)
    assert str(e.value).startswith(f"checkpoint {step_dir} is damaged: {bad.relative_to(step_dir)}: ")
    assert ("truncated" if case == "array" else "not valid JSON") in str(e.value)


def test_cli_resume_evaluate_and_predict_on_a_damaged_checkpoint(trained_workdir, cli, data_dir, tmp_path):
  step2 = trained_workdir / "checkpoints" / "2"
  bad = truncate(biggest_array_file(step2))
  # evaluate and predict: one line naming the step folder and the file, no traceback
  r = cli("evaluate", "--config", CONFIG, "--workdir", trained_workdir, *tiny(data_dir))
  assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
  assert f"psp-jax evaluate: error: checkpoint {step2} is damaged: {bad.relative_to(step2)}: truncated" in r.stderr
  photo = tmp_path / "photo.png"
  Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(photo)
  r = cli("predict", "--checkpoint", trained_workdir, "--input", photo, "--output", tmp_path / "o")
  assert r.returncode == 1 and "Traceback" not in r.stderr
  assert f"psp-jax predict: error: checkpoint {step2} is damaged: {bad.relative_to(step2)}" in r.stderr
  # train resumes from step 1 with a warning, and ends at step 3
  r = cli("train", "--config", CONFIG, "--workdir", trained_workdir, *tiny(data_dir),
          "--config.seed=1", "--config.train.steps=3")
  assert r.returncode == 0, r.stderr[-3000:]
  assert f"checkpoint {step2}: {bad.relative_to(step2)}: truncated" in r.stderr
  assert "resuming from step 1" in r.stderr and "resumed from" in r.stdout
  assert json.loads((trained_workdir / "train_result.json").read_text())["step"] == 3
  assert sorted(p.name for p in (trained_workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["1", "2", "3"]
