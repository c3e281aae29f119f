#!/usr/bin/env bash
# What the train steps gain from leaving the tap-dot weight gradients off on the CPUs where they
# lost (psp_jax/xla_cpu.py: tap_dot_grads_pay; psp_jax/models/ops.py: TAP_DOT_GRAD_CPU_RULE), on
# the CPU as it is ("native") or with both sides capped to AVX2:
#
#   bash experiments/speed_tap_dot_cpu_rule.sh avx2 > experiments/results/speed_tap_dot_cpu_rule_avx2_epyc.md
#
# 1. PSPNet-50's train step at 2x233x233, one device, "before" (TAP_DOT_GRAD_CPU_RULE=0: the tap
#    dots whatever the CPU) and "ours" each in its own process, alternating 3 times;
# 2. the same with PyTorch interleaved in one process (before, ours, torch in every round).
# On a CPU the rule does not name, or where the train steps run XLA's own convolutions (AVX-512
# in use), both are the same program. Run it on a quiet machine.
set -euo pipefail
kind=${1:?usage: speed_tap_dot_cpu_rule.sh native|avx2}
cd "$(dirname "$0")/.."
source experiments/cpu_kind.sh
cpu_kind "$kind" speed_tap_dot_cpu_rule.sh
echo "# The tap-dot weight gradients' CPU rule on this CPU ($kind)"
echo
echo "Made by: \`bash experiments/speed_tap_dot_cpu_rule.sh $kind\` on $(date -u +%Y-%m-%d)."
echo "Environment: XLA_FLAGS='${XLA_FLAGS:-}' ATEN_CPU_CAPABILITY='${ATEN_CPU_CAPABILITY:-}' ONEDNN_MAX_CPU_ISA='${ONEDNN_MAX_CPU_ISA:-}'."
echo "before: ops switch TAP_DOT_GRAD_CPU_RULE=0; here $(python -c "from psp_jax import xla_cpu, cpu_info; \
print('vendor', cpu_info.read_cpuinfo().vendor, '- the tap dots pay:', xla_cpu.tap_dot_grads_pay('cpu'), \
'- XLA own convolutions in the train step:', xla_cpu.train_convolutions_are_xla_own('cpu'))")."
echo
echo "## train_step, before and ours in separate processes, alternating"
echo
echo '```'
for round in 1 2 3; do
  python experiments/benchmark_core.py train_step --devices 1 --batch 2 --repeats 5 \
      --ops=TAP_DOT_GRAD_CPU_RULE=0 2>&1 | grep -E "^train_step|median" | sed 's/^/before: /'
  python experiments/benchmark_core.py train_step --devices 1 --batch 2 --repeats 5 2>&1 \
      | grep -E "^train_step|median" | sed 's/^/ours:   /'
done
echo '```'
echo
echo "## train_step against PyTorch (before, ours, torch in every round)"
echo
echo '```'
python experiments/benchmark_core.py train_step --torch --pairs 6 --before=TAP_DOT_GRAD_CPU_RULE=0 2>&1 \
    | grep -v "^wrote .* checkpoint to"
echo '```'
