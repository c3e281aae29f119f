#!/usr/bin/env bash
# What the train step gains from its layers knowing which CPU convolutions it is compiled with
# (psp_jax/models/ops.py: the tap-dot weight gradients off where the train steps run XLA's own
# convolutions, TAP_DOT_GRAD_WITH_XLA_CONVOLUTIONS; 1x1 products as 2-D matrix products over the
# pixels, PIXELS_MATMUL), on the CPU as it is ("native") or with both sides capped to AVX2:
#
#   bash experiments/speed_conv_grads.sh native > experiments/results/speed_conv_grads_native_xeon_amx.md
#   bash experiments/speed_conv_grads.sh avx2 > experiments/results/speed_conv_grads_avx2_xeon_amx.md
#
# 1. PSPNet-50's train step at 2x233x233, one device, "before" (both switches as they were) and
#    "ours" each in its own process, alternating 3 times (one program per process);
# 2. the same with PyTorch interleaved in one process (before, ours, torch in every round);
# 3. the eval forward against PyTorch (PIXELS_MATMUL only: the forward's 1x1 products);
# 4. every convolution's forward, dx and dW against PyTorch, compiled and traced as the train
#    steps are (experiments/benchmark_layers.py --grad).
# Run it on a quiet machine.
set -euo pipefail
kind=${1:?usage: speed_conv_grads.sh native|avx2}
cd "$(dirname "$0")/.."
source experiments/cpu_kind.sh
cpu_kind "$kind" speed_conv_grads.sh
before=(TAP_DOT_GRAD_WITH_XLA_CONVOLUTIONS=1 PIXELS_MATMUL=0)
echo "# The layers' convolution gradients on this CPU ($kind)"
echo
echo "Made by: \`bash experiments/speed_conv_grads.sh $kind\` on $(date -u +%Y-%m-%d)."
echo "Environment: XLA_FLAGS='${XLA_FLAGS:-}' ATEN_CPU_CAPABILITY='${ATEN_CPU_CAPABILITY:-}' ONEDNN_MAX_CPU_ISA='${ONEDNN_MAX_CPU_ISA:-}'."
echo "before: ops switches ${before[*]}; the train step's convolutions are XLA's own here: $(python -c \
  "from psp_jax import xla_cpu; print(xla_cpu.train_convolutions_are_xla_own('cpu'))")."
echo
echo "## train_step, before and ours in separate processes, alternating"
echo
echo '```'
for round in 1 2 3; do
  python experiments/benchmark_core.py train_step --devices 1 --batch 2 --repeats 5 \
      "${before[@]/#/--ops=}" 2>&1 | grep -E "^train_step|median"
  python experiments/benchmark_core.py train_step --devices 1 --batch 2 --repeats 5 2>&1 \
      | grep -E "^train_step|median"
done
echo '```'
echo
echo "## train_step against PyTorch (before, ours, torch in every round)"
echo
echo '```'
python experiments/benchmark_core.py train_step --torch --pairs 6 "${before[@]/#/--before=}" 2>&1 \
    | grep -v "^wrote .* checkpoint to"
echo '```'
echo
echo "## forward against PyTorch (before: PIXELS_MATMUL=0)"
echo
echo '```'
python experiments/benchmark_core.py forward --torch --pairs 6 --before PIXELS_MATMUL=0 2>&1 \
    | grep -v "^wrote .* checkpoint to"
echo '```'
echo
echo "## every convolution of the train step, forward and gradients"
echo
python experiments/benchmark_layers.py --grad 2>&1 | sed -n '/^| convolution/,$p' | grep -v "^wrote "
