# Sourced by the speed scripts (speed_vs_pytorch.sh, speed_rewrites.sh): `cpu_kind KIND SCRIPT`
# leaves the CPU as it is (native) or caps both XLA and PyTorch to AVX2 (avx2), and quiets
# Python's warnings; another KIND is refused, naming SCRIPT.
cpu_kind() {
  case "$1" in
    native) ;;
    avx2) export XLA_FLAGS="--xla_cpu_max_isa=AVX2 ${XLA_FLAGS:-}" ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ;;
    *) echo "$2: kind must be native or avx2, got '$1'" >&2; exit 2 ;;
  esac
  export PYTHONWARNINGS=ignore
}
