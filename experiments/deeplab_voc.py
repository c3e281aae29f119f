"""DeepLab v1, v2 and v3 (and PSPNet) on PASCAL VOC 2012 val at paper scale, each with its own
recipe, beside the published numbers.

  psp-jax ablate --table experiments/deeplab_voc.py --scale paper --workdir runs/ablate/deeplab_voc \
      --config.data.manual_dir=/data/VOC_parent --print-commands > commands.txt
  # run commands.txt (GPU/TPU: train before its evaluations), then:
  psp-jax ablate --table experiments/deeplab_voc.py --scale paper --workdir runs/ablate/deeplab_voc \
      --config.data.manual_dir=/data/VOC_parent --collect-only

Each row is a model family with its own base config (configs/deeplab.py, configs/pspnet.py):
the recipe of the spec (crop, batch, schedule, multipliers, loss), VOC train_aug for training
and the 1,449 val images for evaluation. The initialisations are the recipes' and have to be
converted first (psp-jax convert; the PyTorch files are the user's):
  ckpts/vgg16_largefov     --model vgg16-torchvision --vgg-fc largefov   (ImageNet VGG-16)
  ckpts/deeplabv2_coco     --model deeplabv2-resnet101                   (COCO-pretrained v2)
  ckpts/resnet101_tv       --model resnet-torchvision --layers 101      (ImageNet ResNet-101)
  ckpts/resnet101_deepbase --model resnet-deepbase --layers 101         (semseg's ImageNet ResNet)
v1 and v2 evaluations run DenseCRF with their presets (their configs' eval.crf): 'mIoU' is
before the CRF, 'crf.mIoU' after; v3 and PSPNet report the v2_resnet CRF as an extra.

The published numbers carry their certainty (../shared/reference/paper_numbers.md section 5 and
../shared/specs/deeplab_segnet.md): S = secondary source, U = unverified; see the labels.
PSPNet publishes VOC test numbers only (82.6 without COCO, multi-scale), so its row has no paper
column. This table has no mini scale: experiments/deeplab_context.py is the CPU-sized
comparison of the context modules. Format: psp_jax/ablate/table.py.
"""
V1 = "configs/deeplab.py:deeplabv1_largefov_voc"
V2 = "configs/deeplab.py:deeplabv2_resnet101_voc"
V3 = "configs/deeplab.py:deeplabv3_resnet101_voc"
V3_STAGE2 = "configs/deeplab.py:deeplabv3_resnet101_voc_os8_frozen_bn"
V3_TRAIN = {"train.init_checkpoint": "ckpts/resnet101_tv"}
MS_FLIP = {"eval.scales": (0.5, 0.75, 1.0, 1.25, 1.5, 1.75), "eval.flip": True}
EXTRA_CRF = {"eval.crf": "v2_resnet"}

TABLE = dict(
    title="DeepLab v1 / v2 / v3 and PSPNet on PASCAL VOC 2012 val (each family's own recipe)",
    base={"paper": V3},
    seeds={"paper": [0]},
    metrics=["mIoU", "crf.mIoU"],
    metric_labels={"crf.mIoU": "mIoU after DenseCRF"},
    paper_source=("DeepLab papers via ../shared/reference/paper_numbers.md section 5 and "
                  "../shared/specs/deeplab_segnet.md; certainty in each label (S secondary, "
                  "U unverified)"),
    notes=[
        "v1 and v2 are trained with their own losses (train.native_loss: v1's shrunk labels, v2's "
        "multi-scale sum); v3 and PSPNet with cross-entropy at the crop (and PSPNet's aux loss).",
        "v3 rows share one OS16 training run; 'eval OS8' evaluates its parameters at output stride "
        "8 (rates doubled, model.output_stride is an inference field of the family); the stage-2 "
        "row fine-tunes at OS8 with BN frozen from the stage-1 run (its init_checkpoint).",
        "The DeepLab papers' v2 number is COCO-pretrained; v1's and v3's are ImageNet-initialised.",
    ],
    rows=[
        dict(name="v1_largefov", label="DeepLab-LargeFOV (v1, VGG-16) [S]", base=V1,
             train={"train.init_checkpoint": "ckpts/vgg16_largefov"},
             paper={"mIoU": 62.25, "crf.mIoU": 67.64}),
        dict(name="v2_aspp_l", label="DeepLab v2 ResNet-101 ASPP-L + MSC, COCO init [U; CRF S]",
             base=V2, train={"train.init_checkpoint": "ckpts/deeplabv2_coco"},
             paper={"mIoU": 76.35, "crf.mIoU": 77.69}),
        dict(name="v3_os16", label="DeepLab v3 ResNet-101, train and eval OS16 [S]", train=V3_TRAIN,
             eval=EXTRA_CRF, paper={"mIoU": 77.21}),
        dict(name="v3_eval_os8", label="DeepLab v3, eval OS8 [U]", train=V3_TRAIN,
             eval={**EXTRA_CRF, "model.output_stride": 8}, paper={"mIoU": 78.51}),
        dict(name="v3_eval_os8_ms_flip", label="DeepLab v3, eval OS8 + MS + flip [U]", train=V3_TRAIN,
             eval={**EXTRA_CRF, **MS_FLIP, "model.output_stride": 8}, paper={"mIoU": 79.77}),
        dict(name="v3_stage2_os8", label="DeepLab v3 stage 2 (OS8, frozen BN), eval OS8",
             base=V3_STAGE2,
             blocked="needs the v3_os16 run's workdir as its init_checkpoint: train it with "
                     "configs/deeplab.py:deeplabv3_resnet101_voc_os8_frozen_bn "
                     "--config.train.init_checkpoint=<that workdir> after v3_os16 finishes"),
        dict(name="pspnet101", label="PSPNet ResNet-101 (VOC test 82.6, no val number)",
             base="configs/pspnet.py:voc_r101",
             train={"train.init_checkpoint": "ckpts/resnet101_deepbase"}, eval=EXTRA_CRF),
    ],
)
