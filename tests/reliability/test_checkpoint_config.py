"""Class 4 (issue 13): a checkpoint and a config that do not belong together are refused
(psp_jax.checkpoint_match, `psp-jax evaluate [--allow_mismatch]`)."""
import json

from cli_fixtures import CONFIG, tiny
from psp_jax import checkpoint_match, config_loading


def test_differences_of_a_converted_checkpoint_and_two_configs():
  meta = {"model": {"name": "pspnet", "num_classes": 150, "depth": 50, "dtype": "bfloat16"},
          "classes": {"dataset": "ade20k", "names": ["c"] * 150},
          "preprocessing": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}}
  camvid = config_loading.load_config("configs/pspnet.py:camvid_r18").config
  assert checkpoint_match.differences(meta, camvid) == [
      "model.num_classes: checkpoint 150, config 11", "model.depth: checkpoint 50, config 18",
      'data.name: checkpoint "ade20k", config "camvid"', "data.num_classes: checkpoint 150, config 11"]
  ade = config_loading.load_config("configs/pspnet.py:ade20k_r50").config
  assert checkpoint_match.differences(meta, ade) == []  # the compute dtype may differ


def test_inference_fields_may_differ_between_checkpoint_and_config():
  # DeepLab v3 trains at output stride 16 and evaluates at 8 with the same parameters
  v3 = config_loading.load_config("configs/deeplab.py:deeplabv3_resnet101_voc").config
  meta = {"model": {**v3.model.to_dict(), "output_stride": 16}}
  v3.model.output_stride = 8
  assert checkpoint_match.differences(meta, v3) == []
  v3.model.rates = (1, 2, 3)  # the ASPP rates are not an inference field
  assert checkpoint_match.differences(meta, v3) == ["model.rates: checkpoint [6, 12, 18], config [1, 2, 3]"]
  v1 = config_loading.load_config("configs/deeplab.py:deeplabv1_largefov_voc").config
  meta = {"model": {**v1.model.to_dict(), "rate": 6}}  # a family without inference fields
  assert checkpoint_match.differences(meta, v1) == ["model.rate: checkpoint 6, config 12"]


def test_evaluate_refuses_another_config_or_states_the_override(trained_workdir, cli, data_dir, tmp_path):
  reports = {p.name: p.read_bytes() for p in (trained_workdir / "eval").iterdir()}
  assert reports, "run A wrote no evaluation report"
  # case 1: the config of another dataset and model
  r = cli("evaluate", "--config", "configs/pspnet.py:camvid_mini", "--workdir", trained_workdir,
          f"--config.data.data_dir={data_dir}")
  assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
  assert f"psp-jax evaluate: error: checkpoint {trained_workdir} does not belong to this config" in r.stderr
  assert 'data.name: checkpoint "synthetic", config "camvid"' in r.stderr
  assert "model.head_features: checkpoint 16, config 32" in r.stderr and "--allow_mismatch" in r.stderr
  # case 2: the run's own config with another class count
  r = cli("evaluate", "--config", CONFIG, "--workdir", trained_workdir, *tiny(data_dir),
          "--config.model.num_classes=12")
  assert r.returncode == 1 and "model.num_classes: checkpoint 11, config 12" in r.stderr
  assert {p.name: p.read_bytes() for p in (trained_workdir / "eval").iterdir()} == reports  # untouched
  # the explicit override: evaluates, and every report says under which differences
  out = tmp_path / "metrics.json"
  r = cli("evaluate", "--config", CONFIG, "--workdir", trained_workdir, *tiny(data_dir),
          "--config.data.mean=(0.5,0.5,0.5)", "--allow_mismatch", "--output", out)
  assert r.returncode == 0, r.stderr[-3000:]
  line = "data.mean: checkpoint [0.485, 0.456, 0.406], config [0.5, 0.5, 0.5]"
  assert r.stdout.startswith("WARNING (--allow_mismatch): the checkpoint does not belong to this "
                             f"config:\n  {line}\n")
  assert json.loads(out.read_text())["config_mismatch"] == [line]
  changed = [p for p in (trained_workdir / "eval").iterdir() if reports.get(p.name) != p.read_bytes()]
  assert changed and all(line in p.read_text() for p in changed)
  assert any(p.suffix == ".json" and json.loads(p.read_text())["config_mismatch"] == [line]
             for p in changed)
