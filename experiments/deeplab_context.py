"""Context modules side by side: which ones tell the synthetic look-alikes apart (mini scale).

  psp-jax ablate --table experiments/deeplab_context.py --scale mini --workdir runs/ablate/deeplab_context_mini

One backbone (the dilated ResNet-18 of width 8 at output stride 8 of configs/pspnet.py:
synthetic_mini), one data stream, optimiser, budget (150 steps, batch 8) and auxiliary loss for
every row; only the module between layer4 and the logits differs (PSPNet's `model.context`):

  fcn           none: PSPNet's head (3x3 conv, BN, ReLU, dropout, 1x1) right on layer4
  largefov      DeepLab v1's fc6 (3x3 at one rate) -> fc7 (1x1) -> fc8 head, no BN
  aspp_l        DeepLab v2's ResNet ASPP-L: one 3x3 conv to the classes per rate, summed
  aspp          DeepLab v3's ASPP: 1x1 + three atrous 3x3 + image pooling, BN, 1x1 projection
  aspp_no_pool  the same without its image-pooling branch
  ppm           PSPNet's pyramid pooling (bins 1, 2, 3, 6) and head

The scenes (psp_jax/data/synthetic.py) put two pairs of classes (boat/car, bird/cow) under one
look; only the ground around them (water or road, sky or grass) tells them apart, and in the
"far-context" scenes that ground lies beyond a band of neutral sand. The primary column is the
look-alike mIoU, with the share of look-alike pixels called by their twin beside it; overall
mIoU is the third column (the look-alikes are a small share of the pixels).

DeepLab's rates were chosen for 41x41 (v1, v2: 321 crops at stride 8) and 33x33 (v3: 513 crops
at stride 16) feature maps; here layer4 is 25x25, so they are scaled by the map size: LargeFOV
12 -> 7, ASPP-L (6, 12, 18, 24) -> (4, 7, 11, 15), ASPP (6, 12, 18) -> (5, 9, 14). Head widths
follow the originals' proportions to PSPNet's 512-channel head (LargeFOV 1024, ASPP 256) at this
network's 32: LargeFOV 64, ASPP 16; head parameters 19k (fcn) to 42k (ppm, largefov), of ~200k.

No paper column: neither paper ran this comparison on these scenes. The paper-scale VOC
comparison of the DeepLab generations is experiments/deeplab_voc.py. Format:
psp_jax/ablate/table.py.
"""
SCALED_RATES = {"largefov": (7,), "aspp_l": (4, 7, 11, 15), "aspp": (5, 9, 14)}
# The BN-free DeepLab v1/v2 heads at the base lr (0.02) instead of PSPNet's 10x head lr (0.2),
# at which they diverge (measured: ASPP-L's loss 11-13 at step 25 and chance at the end).
HEAD_LR_X1 = {"optim.lr_multipliers": {"ppm": 10.0, "head": 1.0, "aux_head": 10.0}}

TABLE = dict(
    title="Context modules on one backbone: the synthetic look-alike scenes",
    base={"mini": "configs/pspnet.py:synthetic_mini"},
    seeds={"mini": [0, 1, 2, 3, 4]},
    metrics=["lookalike_mIoU", "twin_rate", "mIoU"],
    metric_labels={"lookalike_mIoU": "look-alike mIoU", "twin_rate": "called by its twin"},
    paper_source="none (this comparison is ours; see the table file's docstring)",
    notes=[
        "One dilated ResNet-18 (width 8, output stride 8) for every row; 193 px scenes, 150 steps "
        "of batch 8, SGD poly, aux loss 0.4 (configs/pspnet.py:synthetic_mini); only the context "
        "module differs.",
        "'called by its twin': the share of look-alike pixels predicted as the other class of their "
        "pair (lower is better).",
        "DeepLab's rates scaled to the 25x25 layer4 map: LargeFOV 7, ASPP-L 4/7/11/15, ASPP 5/9/14.",
        "Every head trains at 10x the backbone's lr (PSPNet's recipe: 0.2); the BN-free v1/v2 "
        "heads diverge there (ASPP-L: loss 11-13 at step 25, chance at the end), so the `_lr1` "
        "rows train them at 1x (0.02), the others unchanged.",
    ],
    lower_is_better=["twin_rate"],
    # which context modules fix the look-alikes (against the FCN), and two orderings among them
    claims=[*(dict(better=row, than="fcn", metric=m)
              for row in ("largefov_lr1", "aspp_l_lr1", "aspp", "aspp_no_pool", "ppm")
              for m in ("lookalike_mIoU", "twin_rate")),
            dict(better="aspp", than="aspp_no_pool", metric="lookalike_mIoU"),
            dict(better="ppm", than="aspp", metric="lookalike_mIoU")],
    rows=[
        dict(name="fcn", label="dilated FCN (no context module)", train={"model.context": "none"}),
        dict(name="largefov", label="LargeFOV head (v1)",
             train={"model.context": "largefov", "model.context_rates": SCALED_RATES["largefov"]}),
        dict(name="aspp_l", label="ASPP-L (v2)",
             train={"model.context": "aspp_l", "model.context_rates": SCALED_RATES["aspp_l"]}),
        dict(name="largefov_lr1", label="LargeFOV head (v1), head lr x1",
             train={"model.context": "largefov", "model.context_rates": SCALED_RATES["largefov"],
                    **HEAD_LR_X1}),
        dict(name="aspp_l_lr1", label="ASPP-L (v2), head lr x1",
             train={"model.context": "aspp_l", "model.context_rates": SCALED_RATES["aspp_l"],
                    **HEAD_LR_X1}),
        dict(name="aspp", label="ASPP + image pooling (v3)",
             train={"model.context": "aspp", "model.context_rates": SCALED_RATES["aspp"]}),
        dict(name="aspp_no_pool", label="ASPP without image pooling",
             train={"model.context": "aspp", "model.context_rates": SCALED_RATES["aspp"],
                    "model.image_pooling": False}),
        dict(name="ppm", label="pyramid pooling (PSPNet)", train={"model.context": "ppm"}),
    ],
)
