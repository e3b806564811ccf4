#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one bounded run on a fresh machine without internet.
#
#   bash benchmarks/gpu_checks.sh                  # on the GPU machine; results in ${OUT:-gpu-checks}
#   bash benchmarks/gpu_checks.sh --dry-run        # on any machine: every step up to the first GPU call
#
# Options: --dry-run; --arch SM (dry run: the architecture to build for, default 90; on a GPU:
# overrides the detected one); --build-dir DIR (default: build/ at the repository root, where
# spot_edge.kernels looks; the dry run uses a temporary folder unless given one).
# Environment: OUT (results folder, default gpu-checks), PYTHON (interpreter, default python3,
# else python).
#
# Steps, each under `timeout`, logs in $OUT/<step>.log, a summary table at the end (also
# $OUT/summary.txt); the exit status is non-zero when any step failed:
#   1. install     pip install --no-deps --no-build-isolation --no-index -e .  (offline; the dry run
#                  runs pip's --dry-run of the same command, which leaves the environment as it is)
#   2. build       CMake + nvcc, the CUDA kernel library for this GPU's architecture only
#   3. gpu-tests   pytest -m gpu with SPOT_EDGE_REQUIRE_GPU_KERNELS=1: a missing kernel library or
#                  Triton fails instead of skipping (dry run: collection only)
#   4. kernels     benchmarks/bench_kernels.py: CUDA-graph timings, reference vs Triton vs CUDA
#   5. end-to-end  spot-edge bench: SPOT fp16 with the kernels (auto) and with the reference
#   (extra steps of later issues go in extra_steps below)
# Whole run on an H100 / H200: a few minutes (each step's timeout bounds it).
set -uo pipefail

dry_run=0
arch=""
build_dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --arch) arch="${2:?--arch needs a value, e.g. 90}"; shift ;;
        --build-dir) build_dir="${2:?--build-dir needs a folder}"; shift ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

caller_dir=$(pwd)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${OUT:-gpu-checks}
case "$out" in /*) ;; *) out="$caller_dir/$out" ;; esac
mkdir -p "$out" || { echo "error: cannot create $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
[ -z "$build_dir" ] || case "$build_dir" in /*) ;; *) build_dir="$caller_dir/$build_dir" ;; esac
cd "$root" || exit 2

if [ -n "${PYTHON:-}" ]; then py=$PYTHON
elif command -v python3 >/dev/null 2>&1; then py=python3
elif command -v python >/dev/null 2>&1; then py=python
else echo "error: no python3 or python on PATH" >&2; exit 2
fi
jobs=$(nproc 2>/dev/null || echo 2)

names=()
results=()
failed=0
# run NAME SECONDS COMMAND...: one bounded step, its output in $out/NAME.log (and on the screen).
run() {
    local name=$1 limit=$2 status
    shift 2
    echo "=== $name (timeout ${limit}s): $*"
    timeout --kill-after=10 "$limit" "$@" > "$out/$name.log" 2>&1
    status=$?
    tail -n 40 "$out/$name.log"
    names+=("$name")
    if [ "$status" -eq 0 ]; then results+=("ok")
    elif [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then results+=("TIMED OUT after ${limit}s"); failed=1
    else results+=("FAILED (exit $status)"); failed=1
    fi
    return "$status"
}

summary() {
    {
        printf '\n%-14s %s\n' "step" "result"
        for i in "${!names[@]}"; do printf '%-14s %s\n' "${names[$i]}" "${results[$i]}"; done
        [ "$dry_run" -eq 1 ] && echo "(dry run: nothing ran on a GPU)"
    } | tee "$out/summary.txt"
}

# Checks added by later issues (pose network, pipeline) go here, one `run` line each.
extra_steps() {
    :
}

# ---- 1. install ----------------------------------------------------------------------------
install=("$py" -m pip install --no-deps --no-build-isolation --no-index -e .)
if [ "$dry_run" -eq 1 ]; then install+=(--dry-run); fi
run install 180 "${install[@]}" || { summary; exit 1; }
run import 60 "$py" -c "import spot_edge.kernels, spot_edge.cli.app" || { summary; exit 1; }

# ---- the GPU and its architecture -----------------------------------------------------------
if [ "$dry_run" -eq 1 ]; then
    arch=${arch:-90}
    if [ -z "$build_dir" ]; then
        build_dir=$(mktemp -d "${TMPDIR:-/tmp}/gpu-checks-build.XXXXXX")
        trap 'rm -rf "$build_dir"' EXIT
    fi
else
    if ! detected=$(timeout 60 "$py" -c "import torch, sys
if not torch.cuda.is_available(): sys.exit('no CUDA GPU visible to PyTorch')
major, minor = torch.cuda.get_device_capability()
print(f'{major}{minor}')" 2> "$out/gpu.log"); then
        cat "$out/gpu.log"; names+=("gpu"); results+=("FAILED: no CUDA GPU"); summary; exit 1
    fi
    arch=${arch:-$detected}
    build_dir=${build_dir:-$root/build}
fi

# ---- 2. build: the kernel library for this architecture -------------------------------------
# Not fatal on a GPU: without the library the Triton and reference checks still run (and the GPU
# tests report the missing library as a failure).
if run configure 120 cmake -S "$root" -B "$build_dir" "-DCMAKE_CUDA_ARCHITECTURES=$arch" &&
   run build 420 cmake --build "$build_dir" -j "$jobs"; then
    export SPOT_EDGE_KERNELS_LIB="$build_dir/libspot_edge_kernels.so"
elif [ "$dry_run" -eq 1 ]; then
    summary; exit 1
fi

if [ "$dry_run" -eq 1 ]; then
    # ---- 3-5, up to the first GPU call: collection, argument parsing, plans ----------------
    run gpu-tests 180 "$py" -m pytest -p no:cacheprovider --collect-only -q -m gpu tests/
    if ! grep -q "test_kernels_gpu.py" "$out/gpu-tests.log"; then
        results[${#results[@]}-1]="FAILED (no GPU test collected)"; failed=1
    fi
    run kernels 60 "$py" benchmarks/bench_kernels.py --dry-run --batches 1 32 --dtypes fp16 fp32
    run end-to-end 180 "$py" -c "from spot_edge.cli.app import main; main()" bench --preset spot-small \
        --device cpu --precision fp32 -b 1 --iters 1 --warmup 0 --stage embed --out "$out/bench-dry"
    extra_steps
    summary
    exit "$failed"
fi

# ---- 3. GPU tests: kernels against the reference (missing kernels fail) --------------------
export SPOT_EDGE_REQUIRE_GPU_KERNELS=1
run gpu-tests 300 "$py" -m pytest -p no:cacheprovider -q -rfEs -m gpu tests/

# ---- 4. kernel timings (CUDA graphs, rotating input sets) -----------------------------------
run kernels 240 "$py" benchmarks/bench_kernels.py --batches 1 32 --dtypes fp16 fp32 \
    --layouts nchw channels_last --rounds 5 --json "$out/kernels.json"

# ---- 5. end to end: SPOT fp16, kernels (auto) vs the reference ------------------------------
run end-to-end 240 bash -c "for kernels in auto reference; do \"$py\" -c 'from spot_edge.cli.app import main; main()' \
    bench --preset spot --device cuda --precision fp16 -b 1 -b 32 --iters 20 --warmup 5 --stage embed \
    --kernels \$kernels --out \"$out/bench-\$kernels\" || exit 1; done"

extra_steps
summary
exit "$failed"
