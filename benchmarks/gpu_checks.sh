#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one run; ends with a summary table.
#   bash benchmarks/gpu_checks.sh [OUT_DIR]
# 1. build the CUDA kernel library for this GPU      (spot-edge kernels build)
# 2. kernel parity on the GPU: Triton and CUDA vs the reference at SPOT's shapes (pytest)
# 3. kernel timings: reference vs Triton vs CUDA, B = 1, 8, 32, 64, fp16/fp32 (bench_kernels.py)
# 4. SPOT fp16 vs fp32 parity on the GPU (PyTorch backend; kernels on) (pytest tests/test_*gpu*)
# 5. end-to-end latency: PyTorch CUDA fp16 + CUDA graphs, batch 1 and 64 (spot-edge bench)
set -uo pipefail
out=${1:-gpu-checks}
mkdir -p "$out"
python - <<'PY' || { echo "no CUDA GPU here: nothing to check"; exit 0; }
import sys, torch
sys.exit(0 if torch.cuda.is_available() else 1)
PY
cc=$(python -c "import torch; p=torch.cuda.get_device_capability(); print(f'{p[0]}{p[1]}')")
status() { if [ "$1" -eq 0 ]; then echo ok; else echo "FAILED ($1)"; fi; }
spot-edge kernels build --arch "$cc" > "$out/build.log" 2>&1;                         s1=$?
python -m pytest -q tests/test_kernels_gpu.py tests/test_bench.py > "$out/kernel_tests.log" 2>&1; s2=$?
python benchmarks/bench_kernels.py --json "$out/kernels.json" > "$out/kernels.txt" 2>&1; s3=$?
python -m pytest -q -k "gpu or cuda or fp16" tests/ > "$out/gpu_tests.log" 2>&1;      s4=$?
spot-edge bench --preset spot --device cuda --precision fp16 --precision fp32 --batch 1 --batch 64 \
    --out "$out/bench" > "$out/bench.txt" 2>&1;                                        s5=$?
cat "$out/kernels.txt" "$out/bench.txt"
printf '\n%-55s %s\n' "check" "result"
printf '%-55s %s\n' "CUDA kernel library build (sm_$cc)" "$(status $s1)"
printf '%-55s %s\n' "kernel parity vs reference on the GPU" "$(status $s2)"
printf '%-55s %s\n' "kernel benchmark (see kernels.txt)" "$(status $s3)"
printf '%-55s %s\n' "GPU/fp16 tests across the suite" "$(status $s4)"
printf '%-55s %s\n' "spot-edge bench, CUDA fp16 + CUDA graphs (see bench.txt)" "$(status $s5)"
