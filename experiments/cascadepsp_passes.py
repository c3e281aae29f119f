"""CascadePSP ablation: the length of the cascade (three passes, as published, vs two vs one).

  psp-jax ablate --table experiments/cascadepsp_passes.py --scale mini --workdir runs/ablate/cascadepsp_passes_mini
  psp-jax ablate --table experiments/cascadepsp_passes.py --scale paper --workdir runs/ablate/cascadepsp_passes_paper

Rows: `model.passes` (psp_jax.models.RefinementModule): with 2 the cascade starts at pass 2 and
with 1 it runs pass 3 only, the input mask standing for the maps of the skipped passes; the
loss terms of skipped passes' outputs (s8a; s8b, s4b) are dropped. The parameters are the same
for every length (pass 3 uses every module). Each row is trained and evaluated (global + local
refinement) at its own length. The three-pass row is the same training as the `global_local`
row of experiments/cascadepsp_ablation.py (same base, overrides and seeds: the same numbers).
Paper numbers: not located (../shared/reference/paper_numbers.md, section 2), so the paper
column is empty rather than filled from memory. Format: psp_jax/ablate/table.py.
"""
import pathlib
import runpy

# base, seeds, metrics, paper source and the mini training overrides are those of the stages /
# loss table, read from it, so that the three-pass row is its `global_local` training run.
STAGES = runpy.run_path(str(pathlib.Path(__file__).with_name("cascadepsp_ablation.py")))["TABLE"]

TABLE = dict(
    STAGES,
    title="CascadePSP ablation: cascade length",
    # The design's ordering: each pass helps; the full cascade beats its input.
    claims={"mini": [
        dict(better="passes_3", than="passes_3", metric="IoU", than_metric="IoU_input"),
        dict(better="passes_3", than="passes_3", metric="mBA", than_metric="mBA_input"),
        dict(better="passes_3", than="passes_2", metric="IoU"),
        dict(better="passes_3", than="passes_2", metric="mBA"),
        dict(better="passes_2", than="passes_1", metric="IoU"),
        dict(better="passes_2", than="passes_1", metric="mBA")]},
    notes=["mini: configs/cascadepsp.py:demo (object masks of the synthetic scenes, ResNet-18 of "
           "width 16) trained on 64 px crops, batch 4, 700 steps (lr x0.1 at 80% and 95%; the "
           "stages table's mini setting, chosen there); evaluated on 32 held-out 256 px scenes "
           "with L=128 and global + local refinement; paper: configs/cascadepsp.py:paper (45K "
           "iterations).",
           "Fewer passes also cost less: a forward runs the backbone once per pass."],
    rows=[
        dict(name="passes_3", label="three passes (published)"),
        dict(name="passes_2", label="two passes", train={"model.passes": 2}),
        dict(name="passes_1", label="one pass", train={"model.passes": 1}),
    ],
)
