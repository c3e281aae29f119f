"""CascadePSP ablation: the length of the cascade (three passes, as published, vs two vs one).

  psp-jax ablate --table experiments/cascadepsp_passes.py --scale mini --workdir runs/ablate/cascadepsp_passes_mini
  psp-jax ablate --table experiments/cascadepsp_passes.py --scale paper --workdir runs/ablate/cascadepsp_passes_paper

Rows: `model.passes` (psp_jax.models.RefinementModule): with 2 the cascade starts at pass 2 and
with 1 it runs pass 3 only, the input mask standing for the maps of the skipped passes; the
loss terms of skipped passes' outputs (s8a; s8b, s4b) are dropped. The parameters are the same
for every length (pass 3 uses every module). Each row is trained and evaluated (global + local
refinement) at its own length. The three-pass row is the same training as the `global_local`
row of experiments/cascadepsp_ablation.py (same base, overrides and seeds: the same numbers).
Paper numbers: not located (/work/shared/reference/paper_numbers.md, section 2), so the paper
column is empty rather than filled from memory. Format: psp_jax/ablate/table.py.
"""
TABLE = dict(
    title="CascadePSP ablation: cascade length",
    base={"mini": "configs/cascadepsp.py:demo", "paper": "configs/cascadepsp.py:paper"},
    seeds={"mini": [0, 1], "paper": [0]},
    metrics=["IoU", "mBA", "IoU_input", "mBA_input"],
    metric_labels={"IoU_input": "IoU (input)", "mBA_input": "mBA (input)"},
    scale=1.0,  # the refinement evaluation reports percentages already
    paper_source="not found: the CascadePSP ablation numbers were not located (paper_numbers.md)",
    # mini: as experiments/cascadepsp_ablation.py (the demo config cut to 250 steps, lr x0.1 at
    # 200 and 238, one evaluation at the end): 3 trainings x 2 seeds in about 20 minutes on 2 CPU cores.
    train={"mini": {"train.steps": 250, "train.checkpoint_every": 125, "eval.every": 0,
                    "optim.boundary_fractions": (0.8, 0.95)}},
    notes=["mini: configs/cascadepsp.py:demo (object masks of the synthetic scenes, ResNet-18 of "
           "width 16, 96 px crops), 250 steps (lr x0.1 at 80% and 95%); evaluated on 32 held-out "
           "256 px scenes with L=128 "
           "and global + local refinement; paper: configs/cascadepsp.py:paper (45K iterations).",
           "Fewer passes also cost less: a forward runs the backbone once per pass."],
    rows=[
        dict(name="passes_3", label="three passes (published)"),
        dict(name="passes_2", label="two passes", train={"model.passes": 2}),
        dict(name="passes_1", label="one pass", train={"model.passes": 1}),
    ],
)
