"""One real `psp-jax ablate` (tiny models, tiny scenes, 2 steps): a training run shared by two
rows, one of them evaluated again with an override through `psp-jax evaluate --output`, and a
row of another family (SegNet-Basic, its own base config), with the cost section
(costs=True) of the families tables; then its two PSPNet rows again in a new workdir under the
same (default, portable) CPU setting, which must give the same bits."""
import json
import subprocess
import sys
import textwrap

import numpy as np
from ablate_fixtures import write_table
from flax import traverse_util

from psp_jax import checkpoint

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
  # mini scale runs every command under the portable CPU setting, and records it
  assert psp_train["cpu_setting"]["PJRT_NPROC"] == "2"
  assert psp_train["cpu_setting"]["XLA_FLAGS"].endswith("--xla_cpu_max_isa=AVX2")
  assert flip["cpu_setting"] == psp_train["cpu_setting"]
  assert json.loads((work / "ablate.json").read_text())["cpu"] == "portable"
  assert ("CPU setting of every run: portable CPU: `XLA_FLAGS='--xla_cpu_experimental_ynn_fusion_type="
          "reduce,individual_dot,individual_convolution --xla_cpu_max_isa=AVX2'") in md
  # the two-row table again, from scratch in another workdir: the same bits and the same table rows
  work2 = tmp_path / "w2"
  rerun = subprocess.run(cmd[:-1] + [str(work2), "--rows", "psp,psp_flip"], capture_output=True,
                         text=True, timeout=360)
  assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
  first, _ = checkpoint.load_variables(runs[0] / "checkpoints")
  second, _ = checkpoint.load_variables(next((work2 / "runs").glob("psp-*/seed0")) / "checkpoints")
  a, b = (dict(traverse_util.flatten_dict(v, sep="/")) for v in (first, second))
  assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
  for row in ("psp", "psp_flip"):
    one = json.loads(next((work / "rows" / row).glob("seed0-*.json")).read_text())
    two = json.loads(next((work2 / "rows" / row).glob("seed0-*.json")).read_text())
    for key in ("mIoU", "aAcc", "per_class", "confusion_matrix"):
      assert one[key] == two[key], (row, key)
  lines = lambda path: [x for x in path.read_text().splitlines() if x.startswith("| psp")]  # noqa: E731
  assert lines(work2 / "smoke_mini.md") == lines(work / "smoke_mini.md")
