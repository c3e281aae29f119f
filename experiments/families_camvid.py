"""Every model family on CamVid, on identical terms: accuracy, DenseCRF, and what each costs.

  psp-jax ablate --table experiments/families_camvid.py --scale mini --workdir runs/ablate/families_camvid_mini
  psp-jax ablate --table experiments/families_camvid.py --scale paper --workdir runs/ablate/families_camvid_paper

Rows are the families (their narrow CPU versions at mini scale): the dilated FCN baseline,
PSPNet, DeepLab v1 (LargeFOV), v2 (ASPP-L + MSC), v3 (ASPP + image pooling, OS16), SegNet and
SegNet-Basic, and PSPNet with CascadePSP on top. Every row evaluates with and without the same
DenseCRF (the `crf.*` columns, on 25 evenly spaced val images, with the numbers without it on
the same images) and reports its cost from the same runs (parameters, XLA GFLOPs, train
images/s, eval, CRF and refinement time per image, peak memory; psp_jax/ablate/report.py).

Shared by every row at mini scale (the table's `train`/`eval` overrides; ../shared/data/camvid,
train on its 367 train images, report on its 101 val images; CamVid's test split is not in that
copy): 121x161 crops of the images scaled by 1/6..2/3 (= 1/3 x PSPNet's 0.5..2) with PSPNet's
rotation, blur and flip, 300 steps of batch 8, evaluation of the whole image resized to a long
side of 160 in one 121x161 window at one scale without flip, and the DenseCRF
`v2_resnet:xy_bi=22` (DeepLab v2's ResNet setting with its 67-pixel bilateral range scaled to
the images' third).

Each family's own recipe (its base config, configs/{pspnet,deeplab,segnet}.py *_mini): the
model fields (`model.*`), the optimiser (`optim.*`: SGD learning rate, schedule, per-module
multipliers, SegNet's Caffe per-parameter rules, v1's gradient clip), the loss
(`train.aux_weight`: PSPNet's 0.4 aux loss; `train.native_loss`: v1/v2's own losses;
`train.class_weights`: SegNet's median-frequency weights) and the input normalisation
(`data.mean/std/input_scale/channel_order`: v1/v2 and SegNet take Caffe's 0-255 BGR).
All start from scratch (no ImageNet weights exist here).

paper scale: each family's own CamVid recipe where one is published (SegNet, SegNet-Basic) or
ours (PSPNet-18, configs/pspnet.py:camvid_r18); DeepLab has no published CamVid recipe, so its
rows are listed with the number other papers report and not run. Published numbers: CamVid
test at 360x480 (../shared/reference/paper_numbers.md section 4; U = unverified there).
Format: psp_jax/ablate/table.py.
"""
CRF = "v2_resnet:xy_bi=22"
CRF_IMAGES = 25  # the CRF (seconds per 360x480 image here) runs on 25 evenly spaced val images
SHARED_MINI = {
    "train.steps": 300, "train.batch_size": 8,
    "data.crop_size": (121, 161),
    "data.augmentation.enabled": True, "data.augmentation.crop": True,
    "data.augmentation.scale_min": 1.0 / 6.0, "data.augmentation.scale_max": 2.0 / 3.0,
    "data.augmentation.rotate_deg": 10.0, "data.augmentation.rotate_prob": 0.5,
    "data.augmentation.blur_prob": 0.5, "data.augmentation.blur_kernel": 5,
    "data.augmentation.flip_prob": 0.5,
    "eval.crop_size": (121, 161), "eval.base_size": 160,
    # in the training overrides, so each run's own final evaluation has the CRF and the costs
    "eval.crf": CRF, "eval.crf_images": CRF_IMAGES, "eval.window_batch": 1,
    "eval.scales": (1.0,), "eval.flip": False,
}
# CascadePSP on top (the `pspnet_cascadepsp` row): the CPU demo's refinement module trained on
# CamVid train objects (configs/cascadepsp.py:demo_real, one run per seed, before the seed's
# other runs), refining every class PSPNet predicts, at L=480 (the images' own size: one
# global step and one local window), on the same images as the CRF.
REFINE_MINI = {"eval.refine.L": 480, "eval.refine.stages": "global+local",
               "eval.refine.images": CRF_IMAGES}
BLOCKED_DEEPLAB = ("no published DeepLab recipe for CamVid (its papers train on VOC, COCO and "
                   "Cityscapes); the paper column is the number the ICNet paper's table gives")

TABLE = dict(
    title="Model families side by side on CamVid (val)",
    base={"mini": "configs/pspnet.py:camvid_mini", "paper": "configs/pspnet.py:camvid_r18"},
    train={"mini": SHARED_MINI},
    eval={"paper": {"eval.crf": "v2_resnet"}},
    seeds={"mini": [0, 1], "paper": [0]},
    metrics={"mini": ["mIoU", "crf.without.mIoU", "crf.mIoU", "refine.mIoU", "mAcc", "aAcc"],
             "paper": ["mIoU", "crf.mIoU", "mAcc", "aAcc"]},
    metric_labels={"crf.without.mIoU": "mIoU, 25 images", "crf.mIoU": "+ DenseCRF, 25 images",
                   "refine.mIoU": "+ CascadePSP, 25 images", "mAcc": "class avg acc",
                   "aAcc": "global acc"},
    refiners={"mini": {"cascadepsp": dict(base="configs/cascadepsp.py:demo_real")}},
    costs=True,
    paper_source=("CamVid test, 11 classes, 360x480 (../shared/reference/paper_numbers.md, "
                  "section 4): SegNet-Basic 82.8 / 62.3 / 46.3 and SegNet 88.6 / 65.9 / 50.2 "
                  "(S, the SegNet tutorial's 367-image training); PSPNet-50 69.1 and DeepLab "
                  "61.6 (U: from the ICNet paper's table)"),
    notes=[
        "mini: 120x160 CamVid (a third of 360x480), 300 steps of batch 8 from scratch, every "
        "network narrow (widths 4-16): the seven families' 14 runs take about half an hour on 2 "
        "CPU cores, and the CascadePSP row about 18 minutes a seed more (its refiner: 600 "
        "steps, one per seed, 14-16 min; refining 25 images, 3.5 min); `--rows` without "
        "`pspnet_cascadepsp` leaves it out; compare how the rows "
        "order, not the values, with the papers' full-size networks.",
        f"DenseCRF for every row: `{CRF}` on the 360x480 image (one setting for all rows, not "
        f"tuned per family), on {CRF_IMAGES} evenly spaced val images (eval.crf_images: it costs "
        "about a second per image here); the `mIoU, 25 images` column is the same model without "
        "the CRF on those images, the pair the CRF's gain is read from.",
        "CascadePSP on top (`pspnet_cascadepsp`): PSPNet's runs, every predicted class refined by "
        "a refinement module trained on CamVid train objects (configs/cascadepsp.py:demo_real, "
        "600 steps from scratch), on the same 25 images at L=480.",
        "SegNet's recipe recomputes BatchNorm statistics over the training set before testing: "
        "the SegNet rows run `psp-jax recompute-bn` (one epoch of the training pipeline) after "
        "training (recompute_bn=True); the other families test with their running statistics, "
        "as their recipes do.",
        "paper scale: the PSPNet row is our recipe (the PSPNet paper has no CamVid run).",
    ],
    claims={"mini": [dict(better="pspnet", than="fcn", metric="mIoU"),
                     dict(better="pspnet", than="segnet", metric="mIoU"),
                     dict(better="deeplabv3", than="deeplabv1", metric="mIoU"),
                     dict(better="segnet", than="segnet_basic", metric="mIoU"),
                     # the post-processing steps against no step, on the same 25 images
                     dict(better="pspnet", than="pspnet", metric="crf.mIoU",
                          than_metric="crf.without.mIoU"),
                     dict(better="pspnet_cascadepsp", than="pspnet_cascadepsp",
                          metric="refine.mIoU", than_metric="crf.without.mIoU")],
            "paper": [dict(better="pspnet", than="segnet", metric="mIoU"),
                      dict(better="segnet", than="segnet_basic", metric="mIoU")]},
    rows=[
        dict(name="fcn", label="dilated FCN (PSPNet without pyramid pooling)",
             train={"model.context": "none"}, scales=("mini",)),
        dict(name="pspnet", label="PSPNet", train={}, paper={"mIoU": 69.1}),
        dict(name="pspnet_cascadepsp", label="PSPNet + CascadePSP (refines every predicted class)",
             train={}, refine="cascadepsp", eval=REFINE_MINI, scales=("mini",)),
        dict(name="deeplabv1", label="DeepLab v1 LargeFOV", scales=("mini",),
             base="configs/deeplab.py:deeplabv1_camvid_mini"),
        dict(name="deeplabv2", label="DeepLab v2 ASPP-L + MSC", scales=("mini",),
             base="configs/deeplab.py:deeplabv2_camvid_mini"),
        dict(name="deeplabv3", label="DeepLab v3 (OS16)", scales=("mini",),
             base="configs/deeplab.py:deeplabv3_camvid_mini"),
        dict(name="deeplab", label="DeepLab (as in the ICNet paper's CamVid table)",
             scales=("paper",), blocked=BLOCKED_DEEPLAB, paper={"mIoU": 61.6}),
        dict(name="segnet", label="SegNet", recompute_bn=True,
             base={"mini": "configs/segnet.py:segnet_mini", "paper": "configs/segnet.py:segnet_camvid"},
             paper={"mIoU": 50.2, "mAcc": 65.9, "aAcc": 88.6}),
        dict(name="segnet_basic", label="SegNet-Basic", recompute_bn=True,
             base={"mini": "configs/segnet.py:segnet_basic_mini",
                   "paper": "configs/segnet.py:segnet_basic_camvid"},
             paper={"mIoU": 46.3, "mAcc": 62.3, "aAcc": 82.8}),
    ],
)
