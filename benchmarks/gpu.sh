#!/usr/bin/env bash
# Every CUDA path of mribench in one command, printing one summary table (benchmarks/README.md):
# the CUDA tests, TTT loop vs vectorised at the embedded and at the paper's size, evaluation of a
# U-Net and a VarNet in fp32 and bf16, and SSIM / LPIPS / DISTS throughput. Under 8 minutes on one
# H200. Without a CUDA device it runs a CPU fallback at tiny sizes (seconds; a check, not a measurement).
#
#   bash benchmarks/gpu.sh                       # the GPU check (or the CPU fallback without a GPU)
#   bash benchmarks/gpu.sh --cpu-fallback        # the fallback even on a GPU machine
#   bash benchmarks/gpu.sh --rows ttt-paper --json gpu.json
#
# Exit status 1 when a row failed (the table still lists every row).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" benchmarks/gpu.py "$@"
