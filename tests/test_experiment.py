"""`psp-jax train/evaluate` config handling: overrides and the errors that name the key."""
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _train(*args):
  return subprocess.run([sys.executable, "-m", "psp_jax", "train", *args], capture_output=True,
                        text=True, cwd=ROOT, timeout=300)


@pytest.mark.parametrize("override,needle", [
    ("--config.train.stepz=3", "stepz"),
    ("--config.train.steps=many", "train.steps"),
    ("--config.model.depht=18", "depht"),
])
def test_bad_overrides_name_the_key(tmp_path, override, needle):
  r = _train("--config", "configs/pspnet.py:demo", "--workdir", str(tmp_path), override)
  assert r.returncode != 0
  assert needle in r.stderr
  assert not (tmp_path / "checkpoints").exists()


def test_unknown_variant_and_missing_workdir(tmp_path):
  r = _train("--config", "configs/pspnet.py:ade20k_r5O", "--workdir", str(tmp_path))
  assert r.returncode != 0 and "ade20k_r50" in r.stderr
  r = _train("--config", "configs/pspnet.py:demo")
  assert r.returncode == 2 and "the following arguments are required: --workdir" in r.stderr


def test_every_named_config_builds_its_model_and_has_the_contract_keys():
  sys.path.insert(0, str(ROOT))
  from configs import pspnet
  from psp_jax.models.build import build_model
  for name in ("ade20k_r50", "ade20k_r101", "voc_r101", "cityscapes_r50", "cityscapes_r101",
               "camvid_r18", "demo"):
    cfg = pspnet.get_config(name)
    for key in ("seed", "train.steps", "train.batch_size", "train.checkpoint_every", "eval.every",
                "data.manual_dir", "data.data_dir", "optim.base_lr"):
      node = cfg
      for part in key.split("."):
        node = node[part]
    assert cfg.model.num_classes == cfg.data.num_classes
    build_model(cfg.model)
  ade = pspnet.ade20k_r50()
  assert (ade.train.batch_size, ade.train.steps, ade.train.aux_weight) == (16, 150_000, 0.4)
  assert tuple(ade.data.crop_size) == (473, 473) and ade.eval.base_size == 512
  assert dict(ade.optim.lr_multipliers) == {"ppm": 10.0, "head": 10.0, "aux_head": 10.0}
  city = pspnet.cityscapes_r50()
  assert tuple(city.data.crop_size) == (713, 713) and city.eval.base_size == 2048
  assert city.train.steps == 90_000 and pspnet.voc_r101().train.steps == 30_000
