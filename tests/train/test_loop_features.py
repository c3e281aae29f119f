"""`train.init_checkpoint` and `train.frozen_bn` through `train_and_evaluate`: one tiny run
fine-tunes PSPNet from a backbone-only ResNet checkpoint with frozen BatchNorm (the usual
way to start from ImageNet weights), two steps on 2 devices.

The source checkpoint holds random values everywhere (BN statistics included), so a value
found after training can only have come from it; fresh BatchNorm layers start at exactly
mean 0, var 1, scale 1, bias 0, so with frozen BN a re-initialised head is recognisable.
"""
import contextlib
import io

import jax
import numpy as np
import pytest
from flax import traverse_util

from loop_fixtures import tiny_config
from psp_jax import checkpoint as ckpt_lib
from psp_jax.models.build import build_model
from psp_jax.train import loop

STUB_METRICS = {"mIoU": 0.5, "mAcc": 0.5, "aAcc": 0.5}


def _random_backbone(cfg):
  """(model, {'params', 'batch_stats'}) of the 'resnet' family matching cfg's PSPNet backbone,
  every leaf drawn at random (positive variances and scales)."""
  model = build_model({"name": "resnet", "depth": cfg.model.depth, "stem": cfg.model.stem,
                       "width": cfg.model.width})
  abstract = ckpt_lib.init_variables(model, abstract=True)
  rng = np.random.default_rng(7)

  def draw(path, leaf):
    name = path[-1].key
    if name == "var":
      return rng.uniform(0.5, 1.5, leaf.shape).astype(leaf.dtype)
    if name == "scale":
      return rng.uniform(0.5, 1.5, leaf.shape).astype(leaf.dtype)
    if name in ("mean", "bias"):
      return rng.normal(0.0, 0.1, leaf.shape).astype(leaf.dtype)
    fan_in = int(np.prod(leaf.shape[:-1]))
    return rng.normal(0.0, fan_in ** -0.5, leaf.shape).astype(leaf.dtype)

  return model, jax.tree_util.tree_map_with_path(draw, abstract)


def _flat(variables) -> dict:
  return traverse_util.flatten_dict(jax.device_get(variables), sep="/")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  root = tmp_path_factory.mktemp("loop_features")
  cfg = tiny_config(str(root / "tfds"), steps=2, num_devices=2)
  backbone, source = _random_backbone(cfg)
  ckpt = root / "resnet"
  ckpt_lib.save_checkpoint(ckpt, source, {"format_version": 1,
                                          "model": ckpt_lib.model_config(backbone),
                                          "source": {"what": "random backbone for a test"}})
  cfg.train.init_checkpoint = str(ckpt)
  cfg.train.frozen_bn = True
  cfg.eval.log_images = 0
  workdir = root / "run"
  stdout = io.StringIO()
  with contextlib.redirect_stdout(stdout):
    loop.train_and_evaluate(cfg, str(workdir), evaluate_fn=lambda *a: dict(STUB_METRICS))
  final, _ = ckpt_lib.load_variables(workdir)
  return {"workdir": workdir, "ckpt": ckpt, "source": _flat(source), "final": _flat(final),
          "stdout": stdout.getvalue()}


def _backbone(flat: dict) -> dict:
  """'collection/backbone/...' leaves as 'collection/...' (the source's paths)."""
  out = {}
  for k, v in flat.items():
    collection, module, rest = k.split("/", 2)
    if module == "backbone":
      out[f"{collection}/{rest}"] = v
  return out


def _is_bn(path: str, flat: dict) -> bool:
  """Whether `path` of `flat` is a BatchNorm leaf: its statistics, or the scale/bias of a
  module holding statistics."""
  collection, rest = path.split("/", 1)
  module = rest.rsplit("/", 1)[0]
  return collection == "batch_stats" or f"batch_stats/{module}/mean" in flat


def test_init_checkpoint_loads_the_backbone_and_reinitialises_the_heads(run):
  source, final = run["source"], run["final"]
  backbone = _backbone(final)
  assert sorted(backbone) == sorted(source)
  heads = {k: v for k, v in final.items() if k.split("/")[1] != "backbone"}
  assert {k.split("/")[1] for k in heads} == {"ppm", "head", "aux_head"}
  # The report, printed and logged: every backbone leaf loaded, every head leaf re-initialised.
  summary = (f"init_checkpoint: loaded {len(source)} arrays (0 with extra input channels "
             f"zero-initialised), re-initialised {len(heads)}, unused in checkpoint 0 "
             "(checkpoint '/' -> model 'backbone')")
  assert summary in run["stdout"]
  assert summary in (run["workdir"] / "train.log").read_text()
  assert f"(init_checkpoint {run['ckpt']})" in (run["workdir"] / "setup.txt").read_text()
  # Backbone: BN leaves (frozen) are the checkpoint's exactly; trained kernels moved a little
  # from the checkpoint's (a fresh draw would be ~1.4 norms away).
  for k, v in source.items():
    if _is_bn(k, source):
      np.testing.assert_array_equal(backbone[k], v, err_msg=k)
    else:
      moved = np.linalg.norm(backbone[k] - v) / np.linalg.norm(v)
      assert moved < 0.2, (k, moved)
  # Heads: their BatchNorms are fresh (frozen at the initial values), their kernels finite.
  bn_heads = {k: v for k, v in heads.items() if _is_bn(k, final)}
  assert bn_heads
  for k, v in bn_heads.items():
    expected = 1.0 if k.endswith(("/var", "/scale")) else 0.0
    np.testing.assert_array_equal(v, np.full_like(v, expected), err_msg=k)
  assert all(np.isfinite(v).all() and np.abs(v).max() > 0 for k, v in heads.items()
             if k.endswith("/kernel"))


def test_frozen_bn_keeps_statistics_and_bn_parameters_while_the_rest_trains(run):
  source, final = run["source"], run["final"]
  assert "BatchNorm batch: frozen (running statistics, no batch statistics)" in (
      run["workdir"] / "setup.txt").read_text()
  backbone = _backbone(final)
  stats = [k for k in source if k.startswith("batch_stats/")]
  bn_params = [k for k in source if k.startswith("params/") and _is_bn(k, source)]
  assert stats and bn_params and len(bn_params) == len(stats)  # scale, bias / mean, var per BN
  for k in stats + bn_params:
    np.testing.assert_array_equal(backbone[k], source[k], err_msg=k)
  trained = [k for k in source if k.endswith("/kernel") and not np.array_equal(backbone[k], source[k])]
  kernels = [k for k in source if k.endswith("/kernel")]
  assert trained == kernels  # every convolution of the backbone was updated
