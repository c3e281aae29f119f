"""Class 3 (issue 13): prepared data knows where it came from (psp_jax.data.fingerprint)."""
import os
import pathlib
import shutil
import sys
import time

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "data"))
from data_fixtures import config, loaded_labels, save_gray_png, write_camvid  # noqa: E402

from psp_jax import main  # noqa: E402
from psp_jax.data.builders import make_builder, open_dataset, prepare  # noqa: E402
from psp_jax.data.fingerprint import DataSourceMismatchError  # noqa: E402


def test_another_copy_or_a_changed_file_is_refused_until_reprepared(tmp_path, capsys):
  first, other = tmp_path / "CamVid", tmp_path / "copy" / "CamVid"
  write_camvid(first)
  shutil.copytree(first, other)
  tfds_dir = tmp_path / "tfds"
  prepare(config("camvid", first, tfds_dir), verbose=False)
  data_path = make_builder(config("camvid", first, tfds_dir)).data_path
  assert open_dataset(config("camvid", first, tfds_dir)).num_classes == 11  # same source: fine
  # case 1: the config points at another copy (same data_dir): refused, both sources named
  with pytest.raises(DataSourceMismatchError) as e:
    open_dataset(config("camvid", other, tfds_dir))
  msg = str(e.value)
  assert f"at {data_path} was prepared from another source" in msg and "differs: folder" in msg
  assert f"prepared from: {first.resolve()} (14 files" in msg and f"config now:    {other.resolve()} (14 files" in msg
  assert "psp-jax prepare --config" in msg and "--force" in msg
  # case 2: the same folder, one annotation fixed in place: refused too (files changed)
  ann = first / "trainannot" / "0001TP_train000.png"
  save_gray_png(ann, np.full((18, 24), 3))
  os.utime(ann, ns=(time.time_ns(), time.time_ns() + 10**9))
  with pytest.raises(DataSourceMismatchError, match=r"differs: files \(names, sizes or modification times\)"):
    prepare(config("camvid", first, tfds_dir), verbose=False)
  # re-preparing (what the message says) takes the new source; an interrupted prepare's
  # leftover folder goes once this prepare succeeds
  leftover = pathlib.Path(data_path).parent / "incomplete.0123456789abcdef_1.0.0"
  leftover.mkdir()
  old = time.time() - 3600
  os.utime(leftover, (old, old))
  prepare(config("camvid", first, tfds_dir), force=True, verbose=False)
  assert not leftover.exists() and "removed" in capsys.readouterr().out
  ds = open_dataset(config("camvid", first, tfds_dir))
  assert (loaded_labels(ds, "train")["train/0001TP_train000.png"] == 3).all()  # the fixed one
  # the command line: `psp-jax prepare` refuses the other copy, `--force` re-prepares from it
  argv = ["prepare", "--config", "configs/pspnet.py:camvid_r18", f"--config.data.manual_dir={other}",
          f"--config.data.data_dir={tfds_dir}", "--config.data.prepare_threads=1"]
  assert main.run(argv) == 1
  err = capsys.readouterr().err
  assert err.startswith("psp-jax prepare: error: dataset psp_camvid/default at ") and "Traceback" not in err
  assert main.run([*argv, "--force"]) == 0
  assert open_dataset(config("camvid", other, tfds_dir)).num_classes == 11
  with pytest.raises(DataSourceMismatchError):
    open_dataset(config("camvid", first, tfds_dir))


def test_generated_data_and_missing_sources_are_not_compared(tmp_path):
  """Synthetic scenes have no source files; a source folder gone after preparing (raw files
  removed to save space) leaves nothing to compare: both open without a fingerprint check."""
  first = tmp_path / "CamVid"
  write_camvid(first, n=(2, 1, 0))
  prepare(config("camvid", first, tmp_path / "tfds"), verbose=False)
  shutil.rmtree(first)
  assert open_dataset(config("camvid", first, tmp_path / "tfds")).num_classes == 11
  syn = config("synthetic", None, tmp_path / "tfds", synthetic=dict(num_train=2, num_val=1, size=(17, 17),
                                                                    seed=0, options={}))
  builder = prepare(syn, verbose=False)
  assert "source" not in dict(builder.info.metadata)
  assert open_dataset(syn).num_classes == 11
