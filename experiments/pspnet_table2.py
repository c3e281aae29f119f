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
    seeds={"mini": [0, 1, 2, 3, 4], "paper": [0]},
    metrics={"mini": ["lookalike_mIoU", "twin_rate", "mIoU", "aAcc"], "paper": ["mIoU", "aAcc"]},
    metric_labels={"lookalike_mIoU": "look-alike mIoU", "twin_rate": "called by its twin",
                   "aAcc": "pixel acc"},
    lower_is_better=["twin_rate"],
    paper_source="PSPNet paper Table 2 (../shared/reference/paper_numbers.md, section 1)",
    notes=[
        "Primary column (mini): the look-alike mIoU, over the two look-alike pairs (boat/car, "
        "bird/cow) that only the context tells apart; 'called by its twin': the share of their "
        "pixels predicted as the other class of the pair (lower is better); overall mIoU and "
        "pixel accuracy beside. The paper columns are ADE20K mIoU and pixel accuracy.",
        "Every row is the dilated FCN (model.context='none'), as in the paper's Table 2.",
        "mini: the synthetic look-alike scenes (193 px), ResNet-18 of width 8, 150 steps; "
        "paper: ADE20K, ResNet-50, 150K iterations.",
    ],
    # The paper's ordering (its Table 2: alpha = 0.4 best, any aux loss beats none), on the
    # primary metric; "AL helps" also on overall mIoU.
    claims={"mini": [
            dict(better="a0.4", than="no_al", metric="lookalike_mIoU"),
            dict(better="a0.4", than="no_al", metric="mIoU"),
            dict(better="a0.3", than="no_al", metric="lookalike_mIoU"),
            dict(better="a0.4", than="a0.3", metric="lookalike_mIoU"),
            dict(better="a0.4", than="a0.6", metric="lookalike_mIoU"),
            dict(better="a0.4", than="a0.9", metric="lookalike_mIoU")]},
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
