#!/usr/bin/env bash
# Whole-model speed against PyTorch, and the gain of the newest rewrites, side by side: each
# benchmark_core line times three things in every round, in one process: our network with the
# rewrites off ("before"), with them (the defaults, "ours"), and the PyTorch network. Then
# CascadePSP refinement against the official package, interleaved pairs, with and without them.
# On the CPU as it is ("native") or with both sides capped to AVX2 ("avx2"):
#
#   bash experiments/speed_rewrites.sh native OFFICIAL_DIR > experiments/results/speed_rewrites_native.md
#   bash experiments/speed_rewrites.sh avx2 OFFICIAL_DIR > experiments/results/speed_rewrites_avx2.md
#
# "before": ops.POINTWISE_DOT_MIN_WEIGHTS=0 and ops.MATERIALIZE_MIN_CHANNELS=0, the state of
# 2026-12-02. OFFICIAL_DIR as for speed_vs_pytorch.sh. Run it on a quiet machine.
set -euo pipefail
kind=${1:?usage: speed_rewrites.sh native|avx2 OFFICIAL_DIR}
official=${2:?usage: speed_rewrites.sh native|avx2 OFFICIAL_DIR}
cd "$(dirname "$0")/.."
source experiments/cpu_kind.sh
cpu_kind "$kind" speed_rewrites.sh
before=(POINTWISE_DOT_MIN_WEIGHTS=0 MATERIALIZE_MIN_CHANNELS=0)
echo "# Forward 1x1 dots and materialized residual blocks: psp_jax vs PyTorch on this CPU ($kind)"
echo
echo "Made by: \`bash experiments/speed_rewrites.sh $kind OFFICIAL_DIR\` on $(date -u +%Y-%m-%d)."
echo "Environment: XLA_FLAGS='${XLA_FLAGS:-}' ATEN_CPU_CAPABILITY='${ATEN_CPU_CAPABILITY:-}' ONEDNN_MAX_CPU_ISA='${ONEDNN_MAX_CPU_ISA:-}'."
echo "Before: ${before[*]}; ours: the defaults. torch/ours > 1: ours faster; before/ours > 1: the rewrites help."
echo
for what in forward train_step; do
  echo "## $what"
  echo
  echo '```'
  python experiments/benchmark_core.py "$what" --torch --pairs 6 "${before[@]/#/--before=}" 2>&1 \
      | grep -v "^wrote .* checkpoint to"
  echo '```'
  echo
done
for state in before ours; do
  echo "## CascadePSP refinement, $state"
  echo
  echo '```'
  if [ "$state" = before ]; then ops=("${before[@]/#/--ops=}"); else ops=(); fi
  python experiments/benchmark_refine.py --sizes native --modes fast,full --repeats 0 \
      --official "$official" --pairs 3 "${ops[@]}" 2>&1 | grep -v "^random\|^wrote .* checkpoint to"
  echo '```'
  echo
done
