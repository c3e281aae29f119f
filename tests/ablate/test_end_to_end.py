"""One real `psp-jax ablate` (tiny models, tiny scenes, 2 steps): a training run shared by two
rows, one of them evaluated again with an override through `psp-jax evaluate --output`, and a
row of another family (SegNet-Basic, its own base config), with the cost section
(costs=True) of the families tables."""
import json
import subprocess
import sys
import textwrap

from ablate_fixtures import write_table

TINY = textwrap.dedent('''
    PSP = {"model.width": 4, "model.head_features": 8, "model.aux_features": 8}
    TINY = {"train.steps": 2, "train.batch_size": 2, "train.checkpoint_every": 1,
            "train.log_every": 1,
            "data.crop_size": (33, 33), "eval.crop_size": (33, 33), "eval.base_size": 33,
            "data.synthetic": {"num_train": 4, "num_val": 2, "size": (33, 33), "seed": 0, "options": {}},
            "data.eval_pad_size": (33, 33), "data.data_dir": DATA_DIR}
    TABLE = dict(
        title="End-to-end smoke table",
        base={"mini": "configs/pspnet.py:synthetic_mini", "paper": "configs/pspnet.py:ade20k_r50"},
        train={"mini": TINY},
        seeds={"mini": [0], "paper": [0]},
        metrics=["mIoU", "aAcc"],
        costs=True,
        rows=[dict(name="psp", train=PSP), dict(name="psp_flip", train=PSP, eval={"eval.flip": True}),
              dict(name="segnet_basic", base="configs/segnet.py:segnet_basic_synthetic_mini",
                   train={"model.width": 4})],
    )
''')


def test_ablate_trains_once_evaluates_twice_and_collects(tmp_path, monkeypatch):
  monkeypatch.delenv("XLA_FLAGS", raising=False)  # one CPU device in the subprocesses: faster
  table = write_table(tmp_path, f"DATA_DIR = {str(tmp_path / 'tfds')!r}\n" + TINY, "smoke.py")
  work = tmp_path / "w"
  cmd = [sys.executable, "-m", "psp_jax", "ablate", "--table", str(table), "--scale", "mini",
         "--workdir", str(work)]
  r = subprocess.run(cmd, capture_output=True, text=True, timeout=360)
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
  # the cost section: each row's own parameter count and GFLOPs, the run's training throughput
  seg_train = json.loads(next((work / "runs").glob("segnet_basic-*/seed0/train_result.json")).read_text())
  psp_train = json.loads(runs[0].joinpath("train_result.json").read_text())
  assert seg_train["cost"]["params"] != psp["cost"]["params"] == flip["cost"]["params"] > 0
  assert psp["cost"]["window"] == [33, 33] and psp["cost"]["gflops_per_window"] > 0
  for result in (seg_train, psp_train):
    assert result["train_cost"]["images_per_s"] > 0 and result["train_cost"]["peak_memory_mb"] > 0
  cost_line = (f"| `segnet_basic` | {seg_train['cost']['params'] / 1e6:.3f} | "
               f"{seg_train['cost']['gflops_per_window']:.3f} | {seg_train['train_cost']['images_per_s']:.1f} |")
  assert cost_line in md and "Machine of the timings: " + seg_train["train_cost"]["machine"] in md
  assert "cost_params_M_mean" in (work / "smoke_mini.csv").read_text().splitlines()[0]
  assert (work / "smoke_mini_cost.png").stat().st_size > 0
  again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
  assert again.returncode == 0 and "0 training runs (2 already finished), 0 evaluations (1 already" in again.stdout
