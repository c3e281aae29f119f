#!/usr/bin/env bash
# What psp_jax/xla_cpu.py's compiler setting of the train steps gains (XLA's CPU convolutions
# instead of YNNPACK's), on the CPU as it is ("native") or with both sides capped to AVX2:
#
#   bash experiments/speed_xla_fusions.sh native > experiments/results/speed_xla_fusions_native.md
#   bash experiments/speed_xla_fusions.sh avx2 > experiments/results/speed_xla_fusions_avx2.md
#
# 1. PSPNet-50's train step at 2x233x233, in one process: compiled with XLA's default fusion
#    types ("before", --before-fusions xla) and as psp_jax compiles it ("ours"), alternating,
#    back to back and with 2 s of idle time before each step (what data loading leaves);
# 2. the same with the PyTorch network interleaved (before, ours, torch in every round);
# 3. the eval forward, which keeps XLA's default ("ours") against the train steps' setting
#    ("before" here, --before-fusions dot,reduce): why inference is left alone.
# Run it on a quiet machine.
set -euo pipefail
kind=${1:?usage: speed_xla_fusions.sh native|avx2}
cd "$(dirname "$0")/.."
source experiments/cpu_kind.sh
cpu_kind "$kind" speed_xla_fusions.sh
xla_default=$(python -c "from psp_jax import xla_cpu; print(xla_cpu.XLA_DEFAULT_FUSIONS)")
ours=$(python -c "from psp_jax import xla_cpu; print(xla_cpu.CPU_LIBRARY_FUSIONS)")
echo "# The train steps' XLA CPU fusion setting (psp_jax/xla_cpu.py) on this CPU ($kind)"
echo
echo "Made by: \`bash experiments/speed_xla_fusions.sh $kind\` on $(date -u +%Y-%m-%d)."
echo "Environment: XLA_FLAGS='${XLA_FLAGS:-}' ATEN_CPU_CAPABILITY='${ATEN_CPU_CAPABILITY:-}' ONEDNN_MAX_CPU_ISA='${ONEDNN_MAX_CPU_ISA:-}'."
echo "XLA's default: --xla_cpu_experimental_ynn_fusion_type=$xla_default; the train steps': =$ours."
echo
for idle in 0 2; do
  echo "## train_step, ours vs before, ${idle} s idle before each step"
  echo
  echo '```'
  python experiments/benchmark_core.py train_step --before-fusions xla --pairs 5 --idle "$idle" 2>&1
  echo '```'
  echo
done
echo "## train_step against PyTorch (before, ours, torch in every round)"
echo
echo '```'
python experiments/benchmark_core.py train_step --torch --pairs 6 --before-fusions xla 2>&1 \
    | grep -v "^wrote .* checkpoint to"
echo '```'
echo
echo "## forward (ours: XLA's default; before: the train steps' setting)"
echo
echo '```'
python experiments/benchmark_core.py forward --torch --pairs 6 --before-fusions "$ours" 2>&1 \
    | grep -v "^wrote .* checkpoint to"
echo '```'
