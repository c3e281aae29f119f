"""PSPNet Table 3: depth of the pre-trained ResNet, single- and multi-scale testing (ADE20K val).

  psp-jax ablate --table experiments/pspnet_table3.py --scale mini --workdir runs/ablate/table3_mini
  psp-jax ablate --table experiments/pspnet_table3.py --scale paper --workdir runs/ablate/table3_paper \
      --config.data.manual_dir=/data/ade

Each depth is one training run evaluated twice: single scale (SS) and multi-scale (MS,
semseg's scales 0.5-1.75; an evaluation-only row). paper: PSPNet-50/101/152/269 on ADE20K,
each from its ImageNet ResNet converted to ckpts/resnet<depth>_imagenet (`psp-jax convert
--model resnet-deepbase`; semseg publishes 50/101/152, not 269). mini: depths 18/34/50 on the
synthetic scenes (a width-8 ResNet-269 needs ~90 s to compile and ~2 s a step on 2 CPU cores,
too slow for a minutes-long table; 101-269 rows are paper-only). Format: psp_jax/ablate/table.py.
"""
MS_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # semseg's multi-scale test
PAPER = {50: ((41.68, 80.04), (42.78, 80.76)), 101: ((41.96, 80.64), (43.29, 81.39)),
         152: ((42.62, 80.80), (43.51, 81.38)), 269: ((43.81, 80.88), (44.94, 81.69))}


def _rows(depth: int, scales: tuple[str, ...]) -> list[dict]:
  train = {"model.depth": depth}
  paper_train = {"train.init_checkpoint": f"ckpts/resnet{depth}_imagenet"}
  ss, ms = PAPER.get(depth, ((None, None), (None, None)))
  numbers = lambda pair: {k: v for k, v in zip(("mIoU", "aAcc"), pair) if v is not None}  # noqa: E731
  return [
      dict(name=f"r{depth}_ss", label=f"PSPNet{depth} SS", train=train, scales=scales,
           at={"paper": dict(train=paper_train)}, paper=numbers(ss)),
      dict(name=f"r{depth}_ms", label=f"PSPNet{depth} MS", train=train, scales=scales,
           eval={"eval.scales": MS_SCALES}, at={"paper": dict(train=paper_train)}, paper=numbers(ms)),
  ]


TABLE = dict(
    title="PSPNet Table 3: ResNet depth, single- and multi-scale testing (ADE20K val)",
    base={"mini": "configs/pspnet.py:synthetic_mini", "paper": "configs/pspnet.py:ade20k_r50"},
    eval={"paper": {"eval.flip": True}},
    seeds={"mini": [0, 1, 2, 3, 4], "paper": [0]},
    metrics={"mini": ["lookalike_mIoU", "twin_rate", "mIoU", "aAcc"], "paper": ["mIoU", "aAcc"]},
    metric_labels={"lookalike_mIoU": "look-alike mIoU", "twin_rate": "called by its twin",
                   "aAcc": "pixel acc"},
    lower_is_better=["twin_rate"],
    paper_source="PSPNet paper Table 3 (../shared/reference/paper_numbers.md, section 1)",
    notes=[
        "Primary column (mini): the look-alike mIoU, over the two look-alike pairs (boat/car, "
        "bird/cow) that only the context tells apart; 'called by its twin': the share of their "
        "pixels predicted as the other class of the pair (lower is better); overall mIoU and "
        "pixel accuracy beside. The paper columns are ADE20K mIoU and pixel accuracy.",
           "mini: the synthetic look-alike scenes (193 px), ResNets of width 8, 150 steps; the "
           "paper column is shown for the depth-50 rows only (the paper has no 18/34 rows)."],
    # The paper's orderings (its Table 3: deeper is better, multi-scale testing beats single
    # scale), on the primary metric.
    claims={"mini": [
            dict(better="r34_ss", than="r18_ss", metric="lookalike_mIoU"),
            dict(better="r50_ss", than="r34_ss", metric="lookalike_mIoU"),
            *(dict(better=f"r{d}_ms", than=f"r{d}_ss", metric="lookalike_mIoU") for d in (18, 34, 50))]},
    rows=(_rows(18, ("mini",)) + _rows(34, ("mini",)) + _rows(50, ("mini", "paper"))
          + _rows(101, ("paper",)) + _rows(152, ("paper",)) + _rows(269, ("paper",))),
)
