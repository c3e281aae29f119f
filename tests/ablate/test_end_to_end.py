"""One real `psp-jax ablate` (tiny model, tiny scenes, 2 steps): a training run shared by two
rows, one of them evaluated again with an override through `psp-jax evaluate --output`."""
import json
import subprocess
import sys
import textwrap

from ablate_fixtures import write_table

TINY = textwrap.dedent('''
    TINY = {"train.steps": 2, "train.batch_size": 2, "train.checkpoint_every": 1,
            "train.log_every": 1, "model.width": 4, "model.head_features": 8, "model.aux_features": 8,
            "data.crop_size": (33, 33), "eval.crop_size": (33, 33), "eval.base_size": 33,
            "data.synthetic": {"num_train": 4, "num_val": 2, "size": (33, 33), "seed": 0, "options": {}},
            "data.eval_pad_size": (33, 33), "data.data_dir": DATA_DIR}
    TABLE = dict(
        title="End-to-end smoke table",
        base={"mini": "configs/pspnet.py:synthetic_mini", "paper": "configs/pspnet.py:ade20k_r50"},
        train={"mini": TINY},
        seeds={"mini": [0], "paper": [0]},
        metrics=["mIoU", "aAcc"],
        rows=[dict(name="psp", train={}), dict(name="psp_flip", train={}, eval={"eval.flip": True})],
    )
''')


def test_ablate_trains_once_evaluates_twice_and_collects(tmp_path, monkeypatch):
  monkeypatch.delenv("XLA_FLAGS", raising=False)  # one CPU device in the subprocesses: faster
  table = write_table(tmp_path, f"DATA_DIR = {str(tmp_path / 'tfds')!r}\n" + TINY, "smoke.py")
  work = tmp_path / "w"
  cmd = [sys.executable, "-m", "psp_jax", "ablate", "--table", str(table), "--scale", "mini",
         "--workdir", str(work)]
  r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
  assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
  runs = list((work / "runs").glob("psp-*/seed0"))
  assert len(runs) == 1 and (runs[0] / "train_result.json").is_file()
  psp = json.loads(next((work / "rows" / "psp").glob("seed0-*.json")).read_text())
  flip = json.loads(next((work / "rows" / "psp_flip").glob("seed0-*.json")).read_text())
  assert psp["step"] == 2 and 0.0 <= psp["mIoU"] <= 1.0 and psp["images"] == 2
  assert flip["eval_config"]["flip"] is True and flip["checkpoint"] == "latest" and flip["step"] == 2
  md = (work / "smoke_mini.md").read_text()
  assert f"| psp (`psp`) | {100 * psp['mIoU']:.2f} |" in md
  assert f"| psp_flip (`psp_flip`) | {100 * flip['mIoU']:.2f} |" in md
  assert (work / "smoke_mini.png").stat().st_size > 0 and (work / "smoke_mini.csv").is_file()
  again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
  assert again.returncode == 0 and "0 training runs (1 already finished), 0 evaluations (1 already" in again.stdout
