#!/usr/bin/env bash
# Our CPU speed against PyTorch, side by side in one process per measurement (interleaved pairs),
# on the CPU as it is ("native") or with both sides capped to AVX2 ("avx2"):
#
#   bash experiments/speed_vs_pytorch.sh native OFFICIAL_DIR > experiments/results/speed_vs_pytorch_native.md
#   bash experiments/speed_vs_pytorch.sh avx2 OFFICIAL_DIR > experiments/results/speed_vs_pytorch_avx2.md
#
# OFFICIAL_DIR holds the authors' segmentation_refinement package (e.g. `pip download --no-deps
# segmentation-refinement` and unzip the wheel there; torch needed, torchvision not). Runs:
#   1. every convolution of PSPNet-50 at 473 (experiments/benchmark_layers.py --rewrites);
#   2. PSPNet-50's eval forward at 473 and one SGD step at 2x233x233 (benchmark_core.py --torch);
#   3. CascadePSP refinement of the 968x648 sample, fast and full (benchmark_refine.py --pairs).
# Run it on a quiet machine: other load changes the ratios.
set -euo pipefail
kind=${1:?usage: speed_vs_pytorch.sh native|avx2 OFFICIAL_DIR}
official=${2:?usage: speed_vs_pytorch.sh native|avx2 OFFICIAL_DIR}
cd "$(dirname "$0")/.."
source experiments/cpu_kind.sh
cpu_kind "$kind" speed_vs_pytorch.sh
echo "# psp_jax vs PyTorch on this CPU ($kind)"
echo
echo "Made by: \`bash experiments/speed_vs_pytorch.sh $kind OFFICIAL_DIR\` on $(date -u +%Y-%m-%d)."
echo "Environment: XLA_FLAGS='${XLA_FLAGS:-}' ATEN_CPU_CAPABILITY='${ATEN_CPU_CAPABILITY:-}' ONEDNN_MAX_CPU_ISA='${ONEDNN_MAX_CPU_ISA:-}'."
echo
echo "## Whole-model ratios (torch or official time / our time; > 1: ours faster)"
echo
echo '```'
python experiments/benchmark_core.py forward --torch --pairs 6 2>&1 | grep -v "^pair \|^wrote .* checkpoint to"
python experiments/benchmark_core.py train_step --torch --pairs 6 2>&1 | grep -v "^pair \|^wrote .* checkpoint to"
python experiments/benchmark_refine.py --sizes native --modes fast,full --repeats 0 \
    --official "$official" --pairs 3 2>&1 | grep -v "^random\|^wrote .* checkpoint to"
echo '```'
echo
python experiments/benchmark_layers.py --model pspnet50 --size 473 --rewrites --pairs 5 --inner 3 \
    2>&1 | sed -n '/^# Convolutions/,$p' | sed 's/^# /## /'
