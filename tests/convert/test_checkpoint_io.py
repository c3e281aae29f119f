"""psp_jax.checkpoint: format, partial restore, atomic save, init_from_checkpoint (no torch)."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from torch_reference.testing import random_variables

from psp_jax import checkpoint
from psp_jax.models.build import build_model
from psp_jax.models.pspnet import PSPNet
from psp_jax.models.refinement import RefinementModule
from psp_jax.models.resnet import ResNet

SMALL = dict(num_classes=5, width=4)


def _meta(model, **extra):
  return {"format_version": 1, "model": checkpoint.model_config(model),
          "source": {"test": True}, **extra}


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_model_config_round_trips_through_build_model():
  for model in (PSPNet(num_classes=3, depth=101, bins=(1, 3), aux=False, dtype=jnp.bfloat16),
                RefinementModule(width=16), ResNet(depth=50, stem="classic")):
    cfg = checkpoint.model_config(model)
    json.dumps(cfg)  # plain data
    assert build_model(cfg) == model
  assert checkpoint.model_config(PSPNet(num_classes=3))["bins"] == [1, 2, 3, 6]


def test_save_then_load_restores_only_variables(tmp_path):
  """A training-style state (opt_state, step, rng) loads partially: params + batch_stats."""
  model = PSPNet(**SMALL)
  variables = random_variables(model)
  state = dict(variables, opt_state={"mu": jax.tree.map(np.zeros_like, variables["params"]),
                                     "count": np.int32(3)},
               step=np.int64(30), rng=np.array([1, 2], np.uint32))
  meta = _meta(model, classes={"names": list("abcde"), "palette": [[i, i, i] for i in range(5)]},
               preprocessing={"mean": [0.5] * 3, "std": [0.2] * 3, "channel_order": "RGB",
                              "align_corners": True})
  step_dir = checkpoint.save_checkpoint(tmp_path / "ckpt", state, meta, step=30)
  assert step_dir == tmp_path / "ckpt" / "30" and (step_dir / "state").is_dir()
  assert checkpoint.read_meta(tmp_path / "ckpt") == meta

  loaded_model, loaded = checkpoint.load(tmp_path / "ckpt")
  assert loaded_model == model
  assert sorted(loaded) == ["batch_stats", "params"]
  _assert_trees_equal(loaded, variables)
  assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(loaded))
  # dtype override for inference
  assert checkpoint.load(tmp_path / "ckpt", dtype="bfloat16")[0].dtype == jnp.bfloat16


def test_paths_accepted_and_step_selection(tmp_path):
  model = PSPNet(**SMALL)
  v0, v1 = random_variables(model, 0), random_variables(model, 1)
  root = tmp_path / "workdir" / "checkpoints"
  checkpoint.save_checkpoint(root, v0, _meta(model), step=0)
  checkpoint.save_checkpoint(root, v1, _meta(model), step=100)
  for path in (root, tmp_path / "workdir", root / "100"):
    _assert_trees_equal(checkpoint.load(path)[1], v1)  # latest by default
  _assert_trees_equal(checkpoint.load(tmp_path / "workdir", step=0)[1], v0)
  _assert_trees_equal(checkpoint.load(root / "0")[1], v0)
  with pytest.raises(FileNotFoundError, match="step 5 not found.*available steps: \\[0, 100\\]"):
    checkpoint.load(root, step=5)
  with pytest.raises(FileExistsError, match="already holds step 100"):
    checkpoint.save_checkpoint(root, v0, _meta(model), step=100)
  checkpoint.save_checkpoint(root, v0, _meta(model), step=100, overwrite=True)
  _assert_trees_equal(checkpoint.load(root)[1], v0)


def test_load_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    checkpoint.load(tmp_path / "nowhere")
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
    checkpoint.load(tmp_path / "empty")
  model = PSPNet(**SMALL)
  with pytest.raises(ValueError, match="format_version"):
    checkpoint.save_checkpoint(tmp_path / "x", random_variables(model), {"model": {"name": "pspnet"}})


@pytest.mark.parametrize("failure", ["meta_not_serialisable", "crash_before_commit"])
def test_failed_save_leaves_nothing_loadable(tmp_path, monkeypatch, failure):
  """Orbax writes into '<step>.orbax-checkpoint-tmp*' and renames it at the end: a save that
  fails (bad metadata: before writing; a crash at the final rename after every array was
  written) leaves no step behind, and the next save works."""
  model = PSPNet(**SMALL)
  variables = random_variables(model)
  root = tmp_path / "ckpt"
  meta = _meta(model)
  written = []
  if failure == "meta_not_serialisable":
    meta = _meta(model, bad=object())
  else:
    real_rename = os.rename

    def rename(src, dst):
      if os.path.basename(str(dst)) == "0":  # the commit of step 0
        written.extend(str(p.relative_to(src)) for p in pathlib.Path(src).rglob("*") if p.is_file())
        raise OSError("simulated crash before commit")
      return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
  with pytest.raises((ValueError, OSError)):
    checkpoint.save_checkpoint(root, variables, meta)
  monkeypatch.undo()
  if failure == "crash_before_commit":  # the data were complete in the temporary directory
    assert any(w.startswith("state/") for w in written) and any(w.startswith("meta/") for w in written)
  assert not (root / "0").exists()
  if root.exists():
    assert all("orbax-checkpoint-tmp" in p.name for p in root.iterdir())
  with pytest.raises(FileNotFoundError, match="no complete checkpoint|does not exist"):
    checkpoint.load(root)
  checkpoint.save_checkpoint(root, variables, _meta(model))
  _assert_trees_equal(checkpoint.load(root)[1], variables)
  assert sorted(p.name for p in root.iterdir()) == ["0"]  # the leftover was cleaned up


def test_init_from_checkpoint_new_class_count(tmp_path):
  source_model = PSPNet(**SMALL)
  source = random_variables(source_model, 0)
  checkpoint.save_checkpoint(tmp_path / "ckpt", source, _meta(source_model))
  target = random_variables(PSPNet(num_classes=7, width=4), 1)
  logs = []
  new, report = checkpoint.init_from_checkpoint(target, tmp_path / "ckpt", log=logs.append)
  assert sorted(p for p, _ in report.reinitialized) == [
      "params/aux_head/classifier/bias", "params/aux_head/classifier/kernel",
      "params/head/classifier/bias", "params/head/classifier/kernel"]
  assert "re-initialised 4" in logs[0] and "shape (5,) in checkpoint, (7,) in model" in logs[0]
  assert len(report.loaded) == len(jax.tree.leaves(target)) - 4 and not report.unused
  for head in ("head", "aux_head"):
    _assert_trees_equal(new["params"][head]["classifier"], target["params"][head]["classifier"])
    _assert_trees_equal(new["params"][head]["conv"], source["params"][head]["conv"])
  _assert_trees_equal(new["params"]["backbone"], source["params"]["backbone"])
  _assert_trees_equal(new["batch_stats"], source["batch_stats"])
  # `exclude` forces re-initialisation of matching paths.
  new, report = checkpoint.init_from_checkpoint(target, tmp_path / "ckpt", exclude=[r"/ppm/"], log=None)
  assert {p.split("/")[1] for p, why in report.reinitialized if why == "excluded"} == {"ppm"}
  _assert_trees_equal(new["params"]["ppm"], target["params"]["ppm"])


def test_init_from_checkpoint_more_input_channels(tmp_path):
  """An RGB ResNet backbone checkpoint into CascadePSP's 6-channel 'feats': extra channels 0."""
  resnet = ResNet(depth=50, stem="classic", width=4)
  source = random_variables(resnet, 0)
  checkpoint.save_checkpoint(tmp_path / "r", source, _meta(resnet))
  target = random_variables(RefinementModule(width=4), 1)
  new, report = checkpoint.init_from_checkpoint(target, tmp_path / "r", log=None)
  assert (report.source_prefix, report.target_prefix) == ("", "feats")
  assert report.extended == ["params/feats/conv1/kernel: 3 -> 6 input channels"]
  kernel = np.asarray(new["params"]["feats"]["conv1"]["kernel"])
  np.testing.assert_array_equal(kernel[:, :, :3], source["params"]["conv1"]["kernel"])
  np.testing.assert_array_equal(kernel[:, :, 3:], 0.0)
  feats = dict(new["params"]["feats"])
  feats.pop("conv1")
  expected = dict(source["params"])
  expected.pop("conv1")
  _assert_trees_equal(feats, expected)
  _assert_trees_equal(new["params"]["psp"], target["params"]["psp"])
  with pytest.raises(ValueError, match="no array of the checkpoint fits"):
    checkpoint.load_variables_into(target, {"params": {"x": {"kernel": np.ones(3)}}}, log=None)


def test_convert_package_imports_torch_lazily(monkeypatch):
  code = ("import sys, psp_jax.convert, psp_jax.checkpoint, psp_jax.models.refinement; "
          "assert 'torch' not in sys.modules, 'torch imported'")
  subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
  from psp_jax.convert import torch_checkpoint
  monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
  with pytest.raises(ImportError, match=r"pip install 'psp_jax\[convert\]'"):
    torch_checkpoint.import_torch()
