"""CascadePSP training resumes to the parameters of an uninterrupted run, and `psp-jax
evaluate` evaluates its checkpoint.

One worker process (refine_resume_worker.py: 2 simulated CPU devices, its own compilation
cache, so only its first run compiles) trains the tiny refinement config four times: the
uninterrupted reference; a run that crashes after step 3 (checkpoint 2 survives, as after a
SIGKILL); its restart, preempted by SIGTERM at step 3 (it must save step 3); the final
restart. Then `python -m psp_jax evaluate` evaluates the reference's checkpoint.
"""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from refine_resume_worker import STEPS, tiny_config

WORKER = pathlib.Path(__file__).resolve().parent / "refine_resume_worker.py"
ROOT = pathlib.Path(__file__).resolve().parents[2]


def _final(workdir) -> dict:
  with np.load(pathlib.Path(workdir) / "final_variables.npz") as f:
    return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("refine_resume")
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  env.update(JAX_COMPILATION_CACHE_DIR=str(root / "jax_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0", PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
  data_dir, ref, cut = root / "tfds", root / "reference", root / "interrupted"
  specs = [str(ref), f"{cut}:crash=3", f"{cut}:sigterm=3", str(cut)]
  proc = subprocess.run([sys.executable, str(WORKER), str(data_dir), *specs], env=env,
                        capture_output=True, text=True, timeout=900)
  out = proc.stdout + proc.stderr
  assert proc.returncode == 0, out[-4000:]
  lines = [json.loads(line[4:]) for line in proc.stdout.splitlines() if line.startswith("RUN ")]
  return {"root": root, "data_dir": data_dir, "reference": ref, "interrupted": cut,
          "lines": lines, "out": out}


def test_crash_preemption_and_resume_end_bit_identical_to_the_uninterrupted_run(runs):
  outcomes = [(r["outcome"], r["steps"]) for r in runs["lines"]]
  assert outcomes == [("done", [2, 4, 6]),      # reference
                      ("crashed", [2]),          # step 3 was computed, never saved
                      ("preempted", [2, 3]),     # resumed from 2; SIGTERM: step 3 saved
                      ("done", [2, 3, 4, 6])], runs["out"][-4000:]
  log = (runs["interrupted"] / "train.log").read_text()
  assert log.count("resumed from") == 2
  assert f"resumed from {runs['interrupted']}/checkpoints/2" in log
  assert f"resumed from {runs['interrupted']}/checkpoints/3" in log
  assert "preempted (SIGTERM): saved a checkpoint at step 3" in log
  reference, final = _final(runs["reference"]), _final(runs["interrupted"])
  assert sorted(final) == sorted(reference)
  assert any(k.startswith("batch_stats/") for k in reference)
  different = [k for k in reference if not np.array_equal(final[k], reference[k])]
  assert not different, f"{len(different)} arrays differ after resuming, e.g. {different[:5]}"


def test_evaluate_command_on_a_cascadepsp_config(runs, tmp_path):
  """`psp-jax evaluate --config configs/cascadepsp.py:demo` with the overrides the checkpoint
  was trained with (a model mismatch is refused: tests/reliability), the data and the
  evaluation protocol from the config and its overrides."""
  output = tmp_path / "metrics.json"
  overrides = {"model.width": "8", "model.passes": "1", "data.data_dir": str(runs["data_dir"]), "data.synthetic.num_train": "8",
               "data.synthetic.num_val": "3", "data.synthetic.size": "(64, 64)",
               "eval.stages": "global", "eval.L": "64", "eval.max_images": "2"}
  proc = subprocess.run(
      [sys.executable, "-m", "psp_jax", "evaluate", "--config", "configs/cascadepsp.py:demo",
       "--workdir", str(runs["reference"]), "--output", str(output)]
      + [f"--config.{k}={v}" for k, v in overrides.items()],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
  assert f"CascadePSP refinement, latest checkpoint (step {STEPS}), split validation" in proc.stdout
  assert "| refined |" in proc.stdout
  metrics = json.loads(output.read_text())
  assert (metrics["step"], metrics["num_images"], metrics["stages"], metrics["L"]) == (
      STEPS, 2, "global", 64)
  report = json.loads((runs["reference"] / "eval" / f"refine_validation_step{STEPS}.json").read_text())
  assert report["IoU"] == metrics["IoU"] and report["mBA"] == metrics["mBA"]
  # The inputs are the first two validation masks perturbed with eval.seed: their pooled IoU
  # follows from the data alone (the refined IoU needs the network).
  from psp_jax.data.refine_pipeline import refine_eval_examples
  examples = list(refine_eval_examples(tiny_config(str(runs["data_dir"])).data, "validation",
                                       max_images=2, seed=0))
  inter = sum(int(np.logical_and(c > 0, g > 0).sum()) for _, _, g, c in examples)
  union = sum(int(np.logical_or(c > 0, g > 0).sum()) for _, _, g, c in examples)
  assert len(examples) == 2 and 0 < inter < union
  assert metrics["IoU_input"] == pytest.approx(inter / union, rel=1e-12)  # a fraction
  assert 0.0 <= metrics["IoU"] <= 1.0
  assert metrics["IoU_gain"] == pytest.approx(metrics["IoU"] - metrics["IoU_input"])
