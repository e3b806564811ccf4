"""Benchmark SPOT's two kernels: reference vs Triton vs CUDA library, at SPOT's shapes.

Shapes (paper setting, 288 x 144 input, ResNet-50 with last stride 1):

- fused structure attention: q, k ``(B, 162, 256)``, v ``(B, 162, 2048)``, passed as the
  ``conv(x).flatten(2).transpose(1, 2)`` views the ASR module produces;
- part pooling: part maps ``(B, 7, 18, 9)``, features ``(B, 2048, 18, 9)``.

For every (op, B, dtype) each backend's output is first checked against the reference; then
it is timed with CUDA events (median over ``--reps`` individually timed runs after warm-up).
Achieved bandwidth counts the compulsory traffic (each input read once, the output written
once); the FLOP rate counts the useful multiply-adds (2 per MAC). The device's measured peaks
(a large device-to-device copy and a large matmul) are printed for comparison.

Usage::

    python benchmarks/bench_kernels.py                      # B = 1, 8, 32, 64; fp16 and fp32
    python benchmarks/bench_kernels.py --batches 32 --dtypes fp16 --reps 200 --json out.json

On a machine without a CUDA GPU it says so and exits 0 (``--cpu`` times the reference on the
CPU instead).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from spot_edge.kernels import (available_backends, fused_structure_attention,
                               fused_structure_attention_reference, part_pool, part_pool_reference)

NODES, KEY_DIM, VALUE_DIM = 162, 256, 2048            # n = 18 x 9, asr_key_dim, C_I
PARTS, CHANNELS, HEIGHT, WIDTH = 7, 2048, 18, 9
DTYPES = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}
TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 6e-2, torch.float32: 2e-4}
TARGETS = {"attention": 1.5, "part_pool": 2.0}       # speed-up over the reference at B = 32, fp16


@dataclass
class Row:
    op: str
    batch: int
    dtype: str
    backend: str
    ok: bool
    max_error: float
    median_us: float | None
    gbps: float | None
    tflops: float | None
    speedup: float | None


# ----------------------------------------------------------------------------- inputs

def attention_inputs(batch: int, dtype: torch.dtype, device: str):
    gen = torch.Generator(device=device).manual_seed(batch)
    def view(channels: int) -> torch.Tensor:          # (B, C, n) -> (B, n, C) view, as in ASR
        x = torch.randn(batch, channels, NODES, generator=gen, device=device, dtype=torch.float32)
        return (x / channels ** 0.25).to(dtype).transpose(1, 2)
    return view(KEY_DIM), view(KEY_DIM), view(VALUE_DIM)


def pool_inputs(batch: int, dtype: torch.dtype, device: str):
    gen = torch.Generator(device=device).manual_seed(batch)
    maps = torch.sigmoid(torch.randn(batch, PARTS, HEIGHT, WIDTH, generator=gen, device=device)).to(dtype)
    feats = torch.randn(batch, CHANNELS, HEIGHT, WIDTH, generator=gen, device=device).to(dtype)
    return maps, feats


def attention_cost(batch: int, dtype: torch.dtype) -> tuple[float, float]:
    size = torch.finfo(dtype).bits // 8
    bytes_moved = size * batch * NODES * (2 * KEY_DIM + 2 * VALUE_DIM)
    flops = 2.0 * batch * NODES * NODES * (KEY_DIM + VALUE_DIM)
    return bytes_moved, flops


def pool_cost(batch: int, dtype: torch.dtype) -> tuple[float, float]:
    size = torch.finfo(dtype).bits // 8
    nodes = HEIGHT * WIDTH
    bytes_moved = size * batch * (PARTS * nodes + CHANNELS * nodes + PARTS * CHANNELS)
    flops = 2.0 * batch * PARTS * CHANNELS * nodes
    return bytes_moved, flops


# ----------------------------------------------------------------------------- timing

def time_cuda(fn: Callable[[], object], reps: int, warmup: int = 10) -> float:
    """Median time of one call in microseconds, each call timed with its own CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for start, end in zip(starts, ends):
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends)) * 1e3


def measure_peaks(reps: int = 20) -> dict[str, float]:
    """Device-to-device copy bandwidth (GB/s) and dense matmul rates (TFLOP/s)."""
    peaks = {}
    src = torch.empty(1 << 28, dtype=torch.float32, device="cuda")   # 1 GiB
    dst = torch.empty_like(src)
    us = time_cuda(lambda: dst.copy_(src), reps, warmup=3)
    peaks["copy_GBps"] = 2 * src.numel() * 4 / (us * 1e-6) / 1e9
    del src, dst
    for name, dtype in (("matmul_fp16_TFLOPs", torch.float16), ("matmul_fp32_TFLOPs", torch.float32)):
        n = 8192
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        us = time_cuda(lambda: torch.matmul(a, b), max(5, reps // 2), warmup=3)
        peaks[name] = 2 * n ** 3 / (us * 1e-6) / 1e12
        del a, b
    torch.cuda.empty_cache()
    return peaks


# ----------------------------------------------------------------------------- benchmark

def bench_op(op: str, batch: int, dtype_name: str, backends: list[str], reps: int) -> list[Row]:
    dtype = DTYPES[dtype_name]
    if op == "attention":
        inputs = attention_inputs(batch, dtype, "cuda")
        ref_fn = lambda: fused_structure_attention_reference(*inputs, 1.0)  # noqa: E731
        run = lambda backend: (lambda: fused_structure_attention(*inputs, 1.0, backend=backend))  # noqa: E731
        bytes_moved, flops = attention_cost(batch, dtype)
    else:
        inputs = pool_inputs(batch, dtype, "cuda")
        ref_fn = lambda: part_pool_reference(*inputs, 1e-6)  # noqa: E731
        run = lambda backend: (lambda: part_pool(*inputs, 1e-6, backend=backend))  # noqa: E731
        bytes_moved, flops = pool_cost(batch, dtype)
    with torch.no_grad():
        expected = ref_fn().float()
        rows: list[Row] = []
        ref_us = None
        for backend in ["reference"] + [b for b in backends if b != "reference"]:
            fn = ref_fn if backend == "reference" else run(backend)
            try:
                got = fn().float()
                error = (got - expected).abs().max().item() / max(1.0, expected.abs().max().item())
                ok = bool(torch.isfinite(got).all()) and error <= TOLERANCE[dtype]
            except Exception as exc:  # report and keep going with the other backends
                print(f"  {op} B={batch} {dtype_name} {backend}: FAILED to run: {exc}", file=sys.stderr)
                rows.append(Row(op, batch, dtype_name, backend, False, float("nan"), None, None, None, None))
                continue
            us = time_cuda(fn, reps) if ok else None
            if backend == "reference":
                ref_us = us
            rows.append(Row(op, batch, dtype_name, backend, ok, error, us,
                            bytes_moved / (us * 1e-6) / 1e9 if us else None,
                            flops / (us * 1e-6) / 1e12 if us else None,
                            ref_us / us if (us and ref_us) else None))
    return rows


def print_rows(rows: list[Row], peaks: dict[str, float]) -> None:
    print(f"\n{'op':<10}{'B':>4} {'dtype':<6}{'backend':<10}{'check':<7}{'median us':>11}"
          f"{'GB/s':>9}{'TFLOP/s':>9}{'x ref':>7}")
    for r in rows:
        us = f"{r.median_us:.1f}" if r.median_us else "-"
        gbps = f"{r.gbps:.0f}" if r.gbps else "-"
        tf = f"{r.tflops:.2f}" if r.tflops else "-"
        sp = f"{r.speedup:.2f}" if r.speedup else "-"
        check = "ok" if r.ok else "FAIL"
        print(f"{r.op:<10}{r.batch:>4} {r.dtype:<6}{r.backend:<10}{check:<7}{us:>11}{gbps:>9}{tf:>9}{sp:>7}")
    print(f"\nmeasured peaks: copy {peaks['copy_GBps']:.0f} GB/s, matmul fp16 "
          f"{peaks['matmul_fp16_TFLOPs']:.0f} TFLOP/s, fp32 {peaks['matmul_fp32_TFLOPs']:.1f} TFLOP/s")


def print_targets(rows: list[Row]) -> None:
    print("\ntargets (datacenter GPU): B=32 fp16 attention >= 1.5x, part pooling >= 2x; B=1 no slower")
    for op, target in TARGETS.items():
        for r in rows:
            if r.op != op or r.backend == "reference" or r.dtype != "fp16" or r.speedup is None:
                continue
            if r.batch == 32:
                verdict = "met" if r.speedup >= target else "MISSED"
                print(f"  {op} {r.backend} B=32 fp16: {r.speedup:.2f}x (target {target}x) {verdict}")
            elif r.batch == 1:
                verdict = "met" if r.speedup >= 1.0 else "MISSED"
                print(f"  {op} {r.backend} B=1 fp16: {r.speedup:.2f}x (target >= 1x) {verdict}")


def cpu_reference(batches: list[int]) -> None:
    print("CPU reference timings (float32, median of 5):")
    for batch in batches:
        q, k, v = attention_inputs(batch, torch.float32, "cpu")
        maps, feats = pool_inputs(batch, torch.float32, "cpu")
        for name, fn in (("attention", lambda: fused_structure_attention_reference(q, k, v)),
                         ("part_pool", lambda: part_pool_reference(maps, feats))):
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            print(f"  {name:<10} B={batch:<3} {statistics.median(times) * 1e3:8.2f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example: python benchmarks/bench_kernels.py --batches 1 32 --dtypes fp16")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp16", "fp32"])
    parser.add_argument("--ops", nargs="+", choices=["attention", "part_pool"], default=["attention", "part_pool"])
    parser.add_argument("--backends", nargs="+", choices=["triton", "cuda"], default=None,
                        help="kernel backends to compare with the reference (default: every available one)")
    parser.add_argument("--reps", type=int, default=100, help="timed runs per case (median reported)")
    parser.add_argument("--json", default=None, help="also write the rows and peaks to this JSON file")
    parser.add_argument("--cpu", action="store_true", help="without a GPU, time the reference on the CPU")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print("No CUDA GPU visible: the kernel benchmark needs one; GPU timings skipped.")
        if args.cpu:
            cpu_reference(args.batches)
        return 0

    found = available_backends("cuda")
    backends = [b for b in found if b != "reference"] if args.backends is None else args.backends
    missing = [b for b in backends if b not in found]
    if missing:
        print(f"unavailable backends skipped: {', '.join(missing)}", file=sys.stderr)
        backends = [b for b in backends if b in found]
    print(f"device: {torch.cuda.get_device_name()} | torch {torch.__version__} | backends: "
          f"reference, {', '.join(backends) or '(none)'}")
    peaks = measure_peaks()
    rows: list[Row] = []
    for op in args.ops:
        for dtype_name in args.dtypes:
            for batch in args.batches:
                rows.extend(bench_op(op, batch, dtype_name, backends, args.reps))
    print_rows(rows, peaks)
    print_targets(rows)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": torch.cuda.get_device_name(), "peaks": peaks,
                       "rows": [asdict(r) for r in rows]}, handle, indent=2)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
