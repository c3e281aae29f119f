"""Every model family on the synthetic look-alike scenes: which ones use context, and at what cost.

  psp-jax ablate --table experiments/families_context.py --scale mini --workdir runs/ablate/families_context_mini

The families of experiments/families_camvid.py (narrow CPU versions: the dilated FCN, PSPNet,
DeepLab v1 / v2 / v3, SegNet, SegNet-Basic), each with its own recipe (base config: model,
optimiser, loss, input normalisation), on the embedded scenes (psp_jax/data/synthetic.py) that
put two pairs of classes (boat/car, bird/cow) under one look: only the ground around them (water
or road, sky or grass), sometimes beyond a band of neutral sand, tells them apart. Shared by
every row: the 2048 training scenes at 193 px, whole images, no augmentation, 150 steps of batch
8, evaluation on the 256 validation scenes in one 193x193 window. No DenseCRF here: at ~2 s
per 193 px scene on 2 CPU cores it would add 2 hours to the table; the CRF rows are in
experiments/families_camvid.py.

The primary column is the look-alike mIoU (the two pairs' classes), with the share of
look-alike pixels called by their twin and the overall mIoU beside it. These scenes are ours,
so there is no paper column; experiments/deeplab_context.py compares the context modules on one
backbone instead of whole families. Format: psp_jax/ablate/table.py.
"""
SHARED_MINI = {
    "train.steps": 150, "train.batch_size": 8,
    "data.crop_size": (193, 193), "data.augmentation.enabled": False,
    "eval.crop_size": (193, 193), "eval.base_size": 193,
    "eval.window_batch": 1, "eval.scales": (1.0,), "eval.flip": False,
}

TABLE = dict(
    title="Model families side by side on the synthetic look-alike scenes",
    base={"mini": "configs/pspnet.py:synthetic_mini"},
    train={"mini": SHARED_MINI},
    seeds={"mini": [0, 1]},
    metrics=["lookalike_mIoU", "twin_rate", "mIoU"],
    metric_labels={"lookalike_mIoU": "look-alike mIoU", "twin_rate": "called by its twin"},
    lower_is_better=["twin_rate"],
    costs=True,
    paper_source="none (these scenes are ours)",
    notes=[
        "mini: every network narrow (widths 4-16), from scratch, 150 steps of batch 8 on 193 px "
        "scenes, evaluated on the 256 validation scenes.",
        "SegNet's class weights are the median-frequency weights of these scenes "
        "(configs/segnet.py:SYNTHETIC_CLASS_WEIGHTS, with the command that computes them); its "
        "rows recompute the BN statistics after training (`psp-jax recompute-bn`, its recipe).",
    ],
    claims=[dict(better="pspnet", than="fcn", metric="lookalike_mIoU"),
            dict(better="deeplabv3", than="deeplabv1", metric="lookalike_mIoU"),
            dict(better="pspnet", than="segnet", metric="lookalike_mIoU"),
            dict(better="segnet", than="segnet_basic", metric="lookalike_mIoU")],
    rows=[
        dict(name="fcn", label="dilated FCN (PSPNet without pyramid pooling)",
             train={"model.context": "none"}),
        dict(name="pspnet", label="PSPNet", train={}),
        dict(name="deeplabv1", label="DeepLab v1 LargeFOV",
             base="configs/deeplab.py:deeplabv1_synthetic_mini"),
        dict(name="deeplabv2", label="DeepLab v2 ASPP-L + MSC",
             base="configs/deeplab.py:deeplabv2_synthetic_mini"),
        dict(name="deeplabv3", label="DeepLab v3 (OS16)",
             base="configs/deeplab.py:deeplabv3_synthetic_mini"),
        dict(name="segnet", label="SegNet", recompute_bn=True, base="configs/segnet.py:segnet_synthetic_mini"),
        dict(name="segnet_basic", label="SegNet-Basic", recompute_bn=True,
             base="configs/segnet.py:segnet_basic_synthetic_mini"),
    ],
)
