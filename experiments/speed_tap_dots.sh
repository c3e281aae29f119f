#!/usr/bin/env bash
# The train step against PyTorch with and without the tap-dot weight gradients
# (ops.TAP_DOT_GRAD_MIN_WEIGHTS): one benchmark_core line times, in every round and in one
# process, our step with the rewrite off ("before"), with it ("ours") and the PyTorch step.
# The forward is unchanged bit for bit (the rewrite is a gradient rule), so only the step is run.
# Once with the C library's malloc, and once more with tcmalloc preloaded into the process (both
# sides), where Debian's libtcmalloc-minimal4 is installed: XLA's CPU runtime allocates its
# buffers on every step, and glibc returns the large ones to the kernel, so each step
# page-faults them in again.
#
#   bash experiments/speed_tap_dots.sh native > experiments/results/speed_tap_dots_native.md
#   bash experiments/speed_tap_dots.sh avx2 > experiments/results/speed_tap_dots_avx2.md
#
# Run it on a quiet machine.
set -euo pipefail
kind=${1:?usage: speed_tap_dots.sh native|avx2}
cd "$(dirname "$0")/.."
source experiments/cpu_kind.sh
cpu_kind "$kind" speed_tap_dots.sh
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
echo "# Tap-dot weight gradients: the train step of psp_jax vs PyTorch on this CPU ($kind)"
echo
echo "Made by: \`bash experiments/speed_tap_dots.sh $kind\` on $(date -u +%Y-%m-%d)."
echo "Environment: XLA_FLAGS='${XLA_FLAGS:-}' ATEN_CPU_CAPABILITY='${ATEN_CPU_CAPABILITY:-}' ONEDNN_MAX_CPU_ISA='${ONEDNN_MAX_CPU_ISA:-}'."
echo "Before: TAP_DOT_GRAD_MIN_WEIGHTS=0; ours: the defaults. torch/ours > 1: ours faster; before/ours > 1: the rewrite helps."
echo
for allocator in glibc tcmalloc; do
  if [ "$allocator" = tcmalloc ] && [ ! -e "$tcmalloc" ]; then
    echo "## $allocator: not run ($tcmalloc not found; apt-get install libtcmalloc-minimal4)"
    continue
  fi
  echo "## train_step, $allocator malloc"
  echo
  echo '```'
  preload=""
  if [ "$allocator" = tcmalloc ]; then preload=$tcmalloc; fi
  LD_PRELOAD=$preload python experiments/benchmark_core.py train_step --torch --pairs 5 \
      --before TAP_DOT_GRAD_MIN_WEIGHTS=0 2>&1 | grep -v "^wrote .* checkpoint to\|detach\|return float"
  echo '```'
  echo
done
