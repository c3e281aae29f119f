"""Class 5 (issue 13): config and argument errors name the key, at parse time, in one line
(psp_jax.config_loading, psp_jax.config_checks, argparse types of psp_jax.cli_checks)."""
import pytest

from cli_fixtures import CONFIG
from psp_jax import main


def _train(capsys, tmp_path, *args):
  code = main.run(["train", "--config", CONFIG, "--workdir", str(tmp_path / "w"), *args])
  return code, capsys.readouterr().err


@pytest.mark.parametrize("override,message", [
    ("--config.train.stepz=3",  # a typo in a leaf, depth 2
     "--config.train.stepz=3: unknown config key 'train.stepz': train has no key 'stepz'; "
     "did you mean train.steps?"),
    ("--config.data.augmentation.scale_mn=0.5",  # a typo in a leaf, depth 3
     "unknown config key 'data.augmentation.scale_mn': data.augmentation has no key 'scale_mn'; "
     "did you mean data.augmentation.scale_min or data.augmentation.scale_max?"),
    ("--config.dat.manual_dir=/data",  # a typo in a section name
     "unknown config key 'dat.manual_dir': the config has no section 'dat'; did you mean data.manual_dir?"),
    ("--config.train.base_lr=0.1",  # a key in the wrong section
     "train has no key 'base_lr'; did you mean optim.base_lr?"),
    ("--config.train.steps=many",  # a value of the wrong type
     "--config.train.steps=many: train.steps takes an integer (now 600), got 'many'"),
    ("--config.train.batch_size=0",  # out of range
     "--config configs/pspnet.py:demo: train.batch_size=0: must be an integer >= 1"),
    ("--config.data.augmentation.flip_prob=1.5",
     "data.augmentation.flip_prob=1.5: must be a number >= 0.0 and <= 1.0"),
])
def test_bad_config_values_name_the_full_key(tmp_path, capsys, override, message):
  code, err = _train(capsys, tmp_path, override)
  assert code == 2
  assert err.startswith("psp-jax train: error: ") and message in err, err
  assert err.count("\n") == 1 and not (tmp_path / "w").exists()


def test_several_problems_one_line_each_and_config_files(tmp_path, capsys):
  code, err = _train(capsys, tmp_path, "--config.train.steps=0", "--config.optim.base_lr=-1")
  assert code == 2 and err.splitlines() == [
      "psp-jax train: error: --config configs/pspnet.py:demo: 2 values are not accepted:",
      "  optim.base_lr=-1.0: must be a number > 0.0", "  train.steps=0: must be an integer >= 1"]
  assert main.run(["train", "--config", "configs/pspnet.py:ade20k_r5O", "--workdir", str(tmp_path)]) == 2
  assert "(did you mean ade20k_r50 or ade20k_r101?)" in capsys.readouterr().err
  assert main.run(["evaluate", "--config", "configs/pspnt.py:demo", "--workdir", str(tmp_path)]) == 2
  assert ("psp-jax evaluate: error: --config configs/pspnt.py:demo: config file configs/pspnt.py "
          "not found (did you mean configs/pspnet.py") in capsys.readouterr().err
  # FILE.py without :NAME says which variant it picked (here before an error stops it)
  assert main.run(["train", "--config", "configs/pspnet.py", "--workdir", str(tmp_path),
                   "--config.train.steps=0"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("psp-jax train: note: --config configs/pspnet.py names no variant: using "
                        "get_config's default 'demo' (variants: ade20k_r101, ade20k_r50")


@pytest.mark.parametrize("argv,message", [
    (["train", "--config", CONFIG, "--workdr", "runs/x"],
     "unrecognized argument --workdr (did you mean --workdir?)"),
    (["evaluate", "--config", CONFIG, "--workdir", ".", "--checkpoint", "middle"],
     "argument --checkpoint: invalid choice: 'middle'"),
    (["predict", "--checkpoint", ".", "--input", ".", "--output", "o", "--base_size", "0"],
     "argument --base_size: expected an integer >= 1, got 0"),
    (["refine", "--checkpoint", ".", "--image", "a.png", "--mask", "m.png", "--L", "-5"],
     "argument --L: expected an integer >= 1, got -5"),
])
def test_subcommand_flags_are_checked_when_parsed(capsys, argv, message):
  with pytest.raises(SystemExit) as e:
    main.run(argv)
  assert e.value.code == 2 and f"psp-jax {argv[0]}: error: {message}" in capsys.readouterr().err


def test_the_real_command_exits_2_without_a_traceback(cli, tmp_path):
  r = cli("train", "--config", CONFIG, "--workdir", tmp_path / "w", "--config.model.depht=18")
  assert r.returncode == 2 and "Traceback" not in r.stderr
  assert r.stderr == ("psp-jax train: error: --config.model.depht=18: unknown config key "
                      "'model.depht': model has no key 'depht'; did you mean model.depth?\n")


def test_evaluate_split_is_checked_against_the_dataset(trained_workdir, data_dir, capsys):
  from cli_fixtures import tiny
  assert main.run(["evaluate", "--config", CONFIG, "--workdir", str(trained_workdir),
                   *tiny(data_dir), "--split", "valid"]) == 2
  assert ("psp-jax evaluate: error: --split valid: the dataset has no such split; it has train, "
          "validation (did you mean validation?)") in capsys.readouterr().err
