"""PSPNet Table 1: the pyramid pooling module (ADE20K val, ResNet-50, single-scale testing).

  psp-jax ablate --table experiments/pspnet_table1.py --scale mini --workdir runs/ablate/table1_mini
  psp-jax ablate --table experiments/pspnet_table1.py --scale paper --workdir runs/ablate/table1_paper

Rows: the dilated-FCN baseline (no context module, but with DA and the aux loss, as the paper's
Table 1 baseline), one global bin (B1) or bins 1,2,3,6 (B1236), max or average pooling, without
or with dimension reduction (DR: each branch reduced to 1/4 of the channels). The paper has no
B1+DR rows. Format: psp_jax/ablate/table.py.
"""
TABLE = dict(
    title="PSPNet Table 1: pyramid pooling (ADE20K val, ResNet-50, single scale)",
    base={"mini": "configs/pspnet.py:synthetic_mini", "paper": "configs/pspnet.py:ade20k_r50"},
    # semseg's test protocol averages every window with its mirror image.
    eval={"paper": {"eval.flip": True}},
    seeds={"mini": [0, 1, 2, 3, 4], "paper": [0]},
    metrics={"mini": ["lookalike_mIoU", "twin_rate", "mIoU", "aAcc"], "paper": ["mIoU", "aAcc"]},
    metric_labels={"lookalike_mIoU": "look-alike mIoU", "twin_rate": "called by its twin",
                   "aAcc": "pixel acc"},
    lower_is_better=["twin_rate"],
    paper_source="PSPNet paper Table 1 (../shared/reference/paper_numbers.md, section 1)",
    notes=[
        "Primary column (mini): the look-alike mIoU, over the two look-alike pairs (boat/car, "
        "bird/cow) that only the context tells apart; 'called by its twin': the share of their "
        "pixels predicted as the other class of the pair (lower is better); overall mIoU and "
        "pixel accuracy beside. The paper columns are ADE20K mIoU and pixel accuracy.",
        "mini: the synthetic look-alike scenes (193 px), ResNet-18 of width 8, 150 steps; "
        "paper: ADE20K, ResNet-50, 150K iterations (configs/pspnet.py).",
    ],
    # The paper's orderings (its Table 1), tested on the primary metric; the headline one also
    # on the twin rate and overall mIoU.
    claims={"mini": [
            dict(better="b1236_avg_dr", than="fcn", metric="lookalike_mIoU"),
            dict(better="b1236_avg_dr", than="fcn", metric="twin_rate"),
            dict(better="b1236_avg_dr", than="fcn", metric="mIoU"),
            dict(better="b1236_avg", than="b1_avg", metric="lookalike_mIoU"),
            dict(better="b1236_max", than="b1_max", metric="lookalike_mIoU"),
            dict(better="b1_avg", than="b1_max", metric="lookalike_mIoU"),
            dict(better="b1236_avg", than="b1236_max", metric="lookalike_mIoU"),
            dict(better="b1236_avg_dr", than="b1236_max_dr", metric="lookalike_mIoU"),
            dict(better="b1236_avg_dr", than="b1236_avg", metric="lookalike_mIoU")]},
    rows=[
        dict(name="fcn", label="ResNet50-Baseline (dilated FCN)",
             train={"model.context": "none"}, paper={"mIoU": 37.23, "aAcc": 78.01}),
        dict(name="b1_max", label="+B1+MAX",
             train={"model.bins": (1,), "model.pool": "max", "model.reduction": False},
             paper={"mIoU": 39.94, "aAcc": 79.46}),
        dict(name="b1_avg", label="+B1+AVE",
             train={"model.bins": (1,), "model.pool": "avg", "model.reduction": False},
             paper={"mIoU": 40.07, "aAcc": 79.52}),
        dict(name="b1236_max", label="+B1236+MAX",
             train={"model.bins": (1, 2, 3, 6), "model.pool": "max", "model.reduction": False},
             paper={"mIoU": 40.18, "aAcc": 79.45}),
        dict(name="b1236_avg", label="+B1236+AVE",
             train={"model.bins": (1, 2, 3, 6), "model.pool": "avg", "model.reduction": False},
             paper={"mIoU": 41.07, "aAcc": 79.97}),
        dict(name="b1236_max_dr", label="+B1236+MAX+DR",
             train={"model.bins": (1, 2, 3, 6), "model.pool": "max", "model.reduction": True},
             paper={"mIoU": 40.87, "aAcc": 79.61}),
        dict(name="b1236_avg_dr", label="+B1236+AVE+DR (PSPNet50)",
             train={"model.bins": (1, 2, 3, 6), "model.pool": "avg", "model.reduction": True},
             paper={"mIoU": 41.68, "aAcc": 80.04}),
    ],
)
