"""PSPNet Table 2: the weight alpha of the auxiliary loss (ADE20K val, ResNet-50 + DA, single scale).

  psp-jax ablate --table experiments/pspnet_table2.py --scale mini --workdir runs/ablate/table2_mini
  psp-jax ablate --table experiments/pspnet_table2.py --scale paper --workdir runs/ablate/table2_paper

The paper's Table 2 is the ResNet-50 baseline (dilated FCN, no pyramid pooling) with data
augmentation, trained without the auxiliary loss ("no AL": no aux head at all) or with
alpha = 0.3, 0.4, 0.6, 0.9 (`train.aux_weight`). Format: psp_jax/ablate/table.py.
"""
TABLE = dict(
    title="PSPNet Table 2: auxiliary loss weight (ADE20K val, ResNet-50 FCN + DA, single scale)",
    base={"mini": "configs/pspnet.py:synthetic_mini", "paper": "configs/pspnet.py:ade20k_r50"},
    train={"mini": {"model.context": "none"}, "paper": {"model.context": "none"}},
    eval={"paper": {"eval.flip": True}},
    seeds={"mini": [0, 1], "paper": [0]},
    metrics=["mIoU", "aAcc"],
    metric_labels={"aAcc": "pixel acc"},
    paper_source="PSPNet paper Table 2 (../shared/reference/paper_numbers.md, section 1)",
    notes=[
        "Every row is the dilated FCN (model.context='none'), as in the paper's Table 2.",
        "mini: the synthetic look-alike scenes (193 px), ResNet-18 of width 8, 150 steps; "
        "paper: ADE20K, ResNet-50, 150K iterations.",
    ],
    rows=[
        dict(name="no_al", label="no AL", train={"model.aux": False, "train.aux_weight": 0.0},
             paper={"mIoU": 35.82, "aAcc": 77.07}),
        dict(name="a0.3", label="alpha = 0.3", train={"train.aux_weight": 0.3},
             paper={"mIoU": 37.01, "aAcc": 77.87}),
        dict(name="a0.4", label="alpha = 0.4", train={"train.aux_weight": 0.4},
             paper={"mIoU": 37.23, "aAcc": 78.01}),
        dict(name="a0.6", label="alpha = 0.6", train={"train.aux_weight": 0.6},
             paper={"mIoU": 37.09, "aAcc": 77.84}),
        dict(name="a0.9", label="alpha = 0.9", train={"train.aux_weight": 0.9},
             paper={"mIoU": 36.99, "aAcc": 77.87}),
    ],
)
