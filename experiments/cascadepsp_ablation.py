"""CascadePSP ablations: global step only vs global + local, and the terms of the loss.

  psp-jax ablate --table experiments/cascadepsp_ablation.py --scale mini --workdir runs/ablate/cascade_mini
  psp-jax ablate --table experiments/cascadepsp_ablation.py --scale paper --workdir runs/ablate/cascade_paper

Rows:
  * inference: the same trained network refined with the global step only, the local step
    only, or both (`eval.stages`: evaluation-only rows sharing one training run; 'global+local'
    is the configs' default, so that row and the loss rows take the training run's own final
    evaluation and need no separate `psp-jax evaluate`);
  * loss: the published loss (BCE at OS 8, 0.5 BCE + 0.25 (L1+L2) at OS 4, L1+L2 + 5 x
    gradient at OS 1; the `global_local` row), then without the gradient term, without L1+L2,
    without BCE (`train.loss.ce_weights` / `train.loss.l1l2_weights` over the outputs s8a, s8b,
    s8c, s4b, s4c, s1, and `train.loss.grad_weight`), evaluated with global + local refinement.
  * the cascade length (three passes vs two vs one) is its own table,
    experiments/cascadepsp_passes.py, so that each runs in under 45 minutes at mini scale (5 seeds).
Paper numbers: the CascadePSP ablation tables were not found in the sources checked
(../shared/reference/paper_numbers.md, section 2: "not found"), so the paper column is empty
rather than filled from memory. Metrics: IoU and mBA of the refined masks, and of the input
masks before refinement (IoU_input, mBA_input). Format: psp_jax/ablate/table.py.
"""
ZERO = (0.0,) * 6

TABLE = dict(
    title="CascadePSP ablation: refinement stages and loss terms",
    base={"mini": "configs/cascadepsp.py:demo", "paper": "configs/cascadepsp.py:paper"},
    seeds={"mini": [0, 1, 2, 3, 4], "paper": [0]},
    metrics=["IoU", "mBA", "IoU_input", "mBA_input"],
    metric_labels={"IoU_input": "IoU (input)", "mBA_input": "mBA (input)"},
    paper_source="not found: the CascadePSP ablation numbers were not located (paper_numbers.md)",
    # mini: the demo config cut to 64 px crops, batch 4 and 700 steps (about 2 minutes a run on
    # 2 CPU cores), lr x0.1 at 560 and 665, one evaluation at the end: 4 trainings x 5 seeds and
    # 10 stage evaluations in about 40 minutes. Chosen by one seed-0 run of each candidate of
    # about the same cost, on the 32 validation scenes (IoU / mBA; input 89.30 / 67.31):
    #   96 px, batch 8, 250 steps (the 2-seed table before): 90.49 / 68.64 (2 seeds; 28 min)
    #   96 px, batch 8, 165 steps: 90.18 / 60.86       64 px, batch 8, 350 steps: 92.94 / 67.98
    #   64 px, batch 4, 700 steps: 93.07 / 80.19       64 px, batch 2, 1400 steps: 88.67 / 77.79
    # (at this budget more updates on smaller crops beat fewer on larger ones).
    train={"mini": {"data.crop_size": (64, 64), "train.batch_size": 4, "train.steps": 700,
                    "train.checkpoint_every": 350, "eval.every": 0,
                    "optim.boundary_fractions": (0.8, 0.95)}},
    # The design's orderings: refinement beats its input; global + local beats either step
    # alone; each loss term helps (the gradient term is there for the boundaries: mBA).
    claims={"mini": [
        dict(better="global_local", than="global_local", metric="IoU", than_metric="IoU_input"),
        dict(better="global_local", than="global_local", metric="mBA", than_metric="mBA_input"),
        dict(better="global_local", than="global", metric="IoU"),
        dict(better="global_local", than="global", metric="mBA"),
        dict(better="global_local", than="local", metric="IoU"),
        dict(better="global_local", than="local", metric="mBA"),
        dict(better="global_local", than="loss_no_grad", metric="mBA"),
        dict(better="global_local", than="loss_no_l1l2", metric="mBA"),
        dict(better="global_local", than="loss_no_bce", metric="mBA"),
        dict(better="global_local", than="loss_no_bce", metric="IoU")]},
    notes=["mini: configs/cascadepsp.py:demo (object masks of the synthetic scenes, ResNet-18 of "
           "width 16) trained on 64 px crops, batch 4, 700 steps (lr x0.1 at 80% and 95%; the "
           "demo itself: 96 px, batch 8, 600 steps), made this small so that the table's 5 seeds "
           "run in about 40 minutes on 2 cores; evaluated on 32 held-out 256 px scenes with "
           "L=128 (so the local step runs windows); paper: configs/cascadepsp.py:paper "
           "(45K iterations).",
           "Rows without eval overrides are evaluated with the configs' eval.stages='global+local'."],
    rows=[
        dict(name="global", label="global step only", eval={"eval.stages": "global"}),
        dict(name="local", label="local step only", eval={"eval.stages": "local"}),
        dict(name="global_local", label="global + local steps (published loss)"),
        dict(name="loss_no_grad", label="loss without the gradient term",
             train={"train.loss.grad_weight": 0.0}),
        dict(name="loss_no_l1l2", label="loss without L1+L2",
             train={"train.loss.l1l2_weights": ZERO}),
        dict(name="loss_no_bce", label="loss without BCE",
             train={"train.loss.ce_weights": ZERO}),
    ],
)
