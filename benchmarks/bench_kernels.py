"""Benchmark SPOT's two kernels: reference vs Triton vs CUDA library, at SPOT's shapes.

Shapes (paper setting, 288 x 144 input, ResNet-50 with last stride 1):

- fused structure attention: q, k ``(B, 162, 256)``, v ``(B, 162, 2048)``, passed as the
  ``conv(x).flatten(2).transpose(1, 2)`` views the ASR module produces (``--layout nchw``) or
  as contiguous rows (``--layout channels_last``, a channels-last model);
- part pooling: part maps ``(B, 7, 18, 9)``, features ``(B, 2048, 18, 9)``.

For every (op, B, dtype) each backend's output is first checked against the reference. Then:

- **GPU time**: a CUDA graph of K calls, replayed R times, each call reading the next of S input
  sets (S >= 3, together at least twice the L2 cache, so every call reads its inputs from DRAM as
  in the network, not from L2 warmed by the previous repetition); median over replays of
  graph time / K. No Python in the timed region.
- **eager time**: K back-to-back eager calls between two events (GPU idle time between launches
  included: Python dispatch, validation, the ctypes call) / K; what a B = 1 caller sees.

Backends are timed alternately, round after round, and reported as ratios to the reference.
Bandwidth counts the compulsory traffic (inputs read once, output written once); the FLOP rate
the useful multiply-adds. Device attributes (SMs, L2) are queried once
(``spot_edge.kernels.device_info``).

Usage::

    python benchmarks/bench_kernels.py                       # B = 1, 8, 32, 64; fp16 and fp32
    python benchmarks/bench_kernels.py --batches 32 --dtypes fp16 --json out.json
    python benchmarks/bench_kernels.py --dry-run              # plan only (no GPU needed)

On a machine without a CUDA GPU it says so and exits 0 (``--cpu`` times the reference on the
CPU instead).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from spot_edge.atomic import atomic_write_json
from spot_edge.device import cuda_available
from spot_edge.kernels import (available_backends, fused_structure_attention,
                               fused_structure_attention_reference, part_pool, part_pool_reference)

NODES, KEY_DIM, VALUE_DIM = 162, 256, 2048            # n = 18 x 9, asr_key_dim, C_I
PARTS, CHANNELS, HEIGHT, WIDTH = 7, 2048, 18, 9
DTYPES = {"fp16": torch.float16, "fp32": torch.float32, "bf16": torch.bfloat16}
TOLERANCE = {torch.float16: 2e-2, torch.bfloat16: 6e-2, torch.float32: 2e-4}
TARGETS = {"attention": 1.5, "part_pool": 2.0}       # speed-up over the reference at B = 32, fp16
MAX_SETS = 64


@dataclass
class Row:
    op: str
    batch: int
    dtype: str
    layout: str
    backend: str
    ok: bool
    max_error: float
    graph_us: float | None
    eager_us: float | None
    gbps: float | None
    tflops: float | None
    speedup: float | None


# ----------------------------------------------------------------------------- inputs

def attention_inputs(batch: int, dtype: torch.dtype, device: str, layout: str = "nchw", seed: int = 0):
    gen = torch.Generator(device=device).manual_seed(batch * 1000 + seed)

    def view(channels: int) -> torch.Tensor:          # (B, C, n) -> (B, n, C) view, as in ASR
        x = torch.randn(batch, channels, NODES, generator=gen, device=device, dtype=torch.float32)
        x = (x / channels ** 0.25).to(dtype).transpose(1, 2)
        return x.contiguous() if layout == "channels_last" else x
    return view(KEY_DIM), view(KEY_DIM), view(VALUE_DIM)


def pool_inputs(batch: int, dtype: torch.dtype, device: str, layout: str = "nchw", seed: int = 0):
    gen = torch.Generator(device=device).manual_seed(batch * 1000 + seed)
    maps = torch.sigmoid(torch.randn(batch, PARTS, HEIGHT, WIDTH, generator=gen, device=device)).to(dtype)
    feats = torch.randn(batch, CHANNELS, HEIGHT, WIDTH, generator=gen, device=device).to(dtype)
    if layout == "channels_last":
        maps, feats = (t.contiguous(memory_format=torch.channels_last) for t in (maps, feats))
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


def input_sets(bytes_per_set: float, l2_bytes: int) -> int:
    """At least 3 sets, together at least twice the L2 cache (capped at MAX_SETS)."""
    return int(min(MAX_SETS, max(3, math.ceil(2 * l2_bytes / max(1.0, bytes_per_set)))))


def calls_per_graph(sets: int, minimum: int) -> int:
    """K: a multiple of the set count, at least ``minimum``."""
    return sets * max(1, math.ceil(minimum / sets))


# ----------------------------------------------------------------------------- timing

class Timer:
    """One backend's timed work: a CUDA graph of K calls over rotating input sets, and the same K
    calls eagerly. Built (warm-up, capture) before any timing so that backends can alternate."""

    def __init__(self, call: Callable[[tuple], object], sets: list[tuple], calls: int) -> None:
        self.call, self.sets, self.calls = call, sets, calls
        for inputs in sets:                      # compile / autotune / load everything outside capture
            call(inputs)
        torch.cuda.synchronize()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            for i in range(calls):
                call(sets[i % len(sets)])
        self.graph.replay()
        torch.cuda.synchronize()

    def graph_us(self) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        self.graph.replay()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e3 / self.calls

    def eager_us(self) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for i in range(self.calls):
            self.call(self.sets[i % len(self.sets)])
        end.record()
        end.synchronize()
        return start.elapsed_time(end) * 1e3 / self.calls


def measure_peaks(reps: int = 5) -> dict[str, float]:
    """Device-to-device copy bandwidth (GB/s) and dense fp16 matmul rate (TFLOP/s)."""
    def best_ms(fn: Callable[[], object]) -> float:
        fn()
        times = []
        for _ in range(reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return min(times)
    def copy_gbps() -> float:
        src = torch.empty(1 << 27, dtype=torch.float32, device="cuda")   # 512 MiB
        dst = torch.empty_like(src)
        return 2 * src.numel() * 4 / (best_ms(lambda: dst.copy_(src)) * 1e-3) / 1e9

    def matmul_tflops(n: int = 8192) -> float:
        a = torch.randn(n, n, device="cuda", dtype=torch.float16)
        b = torch.randn(n, n, device="cuda", dtype=torch.float16)
        return 2 * n ** 3 / (best_ms(lambda: torch.matmul(a, b)) * 1e-3) / 1e12

    peaks = {"copy_GBps": copy_gbps(), "matmul_fp16_TFLOPs": matmul_tflops()}
    torch.cuda.empty_cache()
    return peaks


# ----------------------------------------------------------------------------- benchmark

def case_plan(op: str, batch: int, dtype: torch.dtype, l2_bytes: int, min_calls: int) -> dict:
    cost = attention_cost if op == "attention" else pool_cost
    bytes_moved, flops = cost(batch, dtype)
    sets = input_sets(bytes_moved, l2_bytes)
    return {"bytes": bytes_moved, "flops": flops, "sets": sets, "calls": calls_per_graph(sets, min_calls)}


def bench_case(op: str, batch: int, dtype_name: str, layout: str, backends: list[str], rounds: int,
               min_calls: int, l2_bytes: int) -> list[Row]:
    dtype = DTYPES[dtype_name]
    plan = case_plan(op, batch, dtype, l2_bytes, min_calls)
    make = attention_inputs if op == "attention" else pool_inputs
    sets = [make(batch, dtype, "cuda", layout, seed) for seed in range(plan["sets"])]
    if op == "attention":
        def run(backend: str) -> Callable[[tuple], object]:
            if backend == "reference":
                return lambda xs: fused_structure_attention_reference(*xs, 1.0)
            return lambda xs: fused_structure_attention(*xs, 1.0, backend=backend)
    else:
        def run(backend: str) -> Callable[[tuple], object]:
            if backend == "reference":
                return lambda xs: part_pool_reference(*xs, 1e-6)
            return lambda xs: part_pool(*xs, 1e-6, backend=backend)

    rows: dict[str, Row] = {}
    timers: dict[str, Timer] = {}
    with torch.no_grad():
        expected = run("reference")(sets[0]).float()
        for backend in ["reference"] + [b for b in backends if b != "reference"]:
            row = Row(op, batch, dtype_name, layout, backend, False, float("nan"), None, None, None, None, None)
            rows[backend] = row
            try:
                got = run(backend)(sets[0]).float()
                row.max_error = (got - expected).abs().max().item() / max(1.0, expected.abs().max().item())
                row.ok = bool(torch.isfinite(got).all()) and row.max_error <= TOLERANCE[dtype]
                if row.ok:
                    timers[backend] = Timer(run(backend), sets, plan["calls"])
            except Exception as exc:  # noqa: BLE001 - report and keep going with the other backends
                print(f"  {op} B={batch} {dtype_name} {layout} {backend}: FAILED: {exc}", file=sys.stderr)
        graph: dict[str, list[float]] = {b: [] for b in timers}
        eager: dict[str, list[float]] = {b: [] for b in timers}
        for _ in range(rounds):                    # variants alternate within every round
            for backend, timer in timers.items():
                graph[backend].append(timer.graph_us())
                eager[backend].append(timer.eager_us())
    ref_us = statistics.median(graph["reference"]) if graph.get("reference") else None
    for backend in timers:
        row = rows[backend]
        row.graph_us = statistics.median(graph[backend])
        row.eager_us = statistics.median(eager[backend])
        row.gbps = plan["bytes"] / (row.graph_us * 1e-6) / 1e9
        row.tflops = plan["flops"] / (row.graph_us * 1e-6) / 1e12
        row.speedup = ref_us / row.graph_us if ref_us else None
    del timers, sets
    torch.cuda.empty_cache()
    return list(rows.values())


def format_rows(rows: list[Row], peaks: dict[str, float] | None) -> str:
    lines = [f"{'op':<10}{'B':>4} {'dtype':<6}{'layout':<14}{'backend':<10}{'check':<7}{'graph us':>10}"
             f"{'eager us':>10}{'GB/s':>8}{'TFLOP/s':>9}{'x ref':>7}"]
    for r in rows:
        def fmt(value, spec):
            return format(value, spec) if value is not None else "-"
        lines.append(f"{r.op:<10}{r.batch:>4} {r.dtype:<6}{r.layout:<14}{r.backend:<10}{'ok' if r.ok else 'FAIL':<7}"
                     f"{fmt(r.graph_us, '.1f'):>10}{fmt(r.eager_us, '.1f'):>10}{fmt(r.gbps, '.0f'):>8}"
                     f"{fmt(r.tflops, '.2f'):>9}{fmt(r.speedup, '.2f'):>7}")
    if peaks:
        lines.append(f"\nmeasured peaks: copy {peaks['copy_GBps']:.0f} GB/s, matmul fp16 "
                     f"{peaks['matmul_fp16_TFLOPs']:.0f} TFLOP/s")
    return "\n".join(lines)


def format_targets(rows: list[Row]) -> str:
    lines = ["targets (graph time): B=32 fp16 attention >= 1.5x, part pooling >= 2x; B=1 no slower"]
    for op, target in TARGETS.items():
        for r in rows:
            if r.op != op or r.backend == "reference" or r.dtype != "fp16" or r.speedup is None:
                continue
            goal = target if r.batch == 32 else (1.0 if r.batch == 1 else None)
            if goal is not None:
                verdict = "met" if r.speedup >= goal else "MISSED"
                lines.append(f"  {op} {r.backend} B={r.batch} fp16 {r.layout}: {r.speedup:.2f}x "
                             f"(target {goal}x) {verdict}")
    return "\n".join(lines)


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example: python benchmarks/bench_kernels.py --batches 1 32 --dtypes fp16")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["fp16", "fp32"])
    parser.add_argument("--ops", nargs="+", choices=["attention", "part_pool"], default=["attention", "part_pool"])
    parser.add_argument("--layouts", nargs="+", choices=["nchw", "channels_last"], default=["nchw"])
    parser.add_argument("--backends", nargs="+", choices=["triton", "cuda"], default=None,
                        help="kernel backends to compare with the reference (default: every available one)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (median reported)")
    parser.add_argument("--calls", type=int, default=24, help="calls per CUDA graph (at least; a multiple of the sets)")
    parser.add_argument("--json", default=None, help="also write the rows and peaks to this JSON file")
    parser.add_argument("--cpu", action="store_true", help="without a GPU, time the reference on the CPU")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (sets, calls per graph) and exit")
    args = parser.parse_args(argv)
    for name in ("rounds", "calls"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if any(b < 1 for b in args.batches):
        parser.error("--batches must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        from spot_edge.kernels.device_info import ARCH_LIMITS
        l2 = ARCH_LIMITS[90].l2_bytes
        print(f"plan (L2 of an H100, {l2 >> 20} MiB; rounds={args.rounds}):")
        for op in args.ops:
            for dtype_name in args.dtypes:
                for batch in args.batches:
                    plan = case_plan(op, batch, DTYPES[dtype_name], l2, args.calls)
                    print(f"  {op:<10} B={batch:<4} {dtype_name:<5} {plan['sets']:>3} input sets x "
                          f"{plan['bytes'] / 1e6:7.2f} MB, {plan['calls']} calls per graph")
        return 0
    if not cuda_available():
        print("No CUDA GPU visible: the kernel benchmark needs one; GPU timings skipped.")
        if args.cpu:
            cpu_reference(args.batches)
        return 0

    from spot_edge.kernels.device_info import device_limits
    limits = device_limits("cuda")
    found = available_backends("cuda")
    backends = [b for b in found if b != "reference"] if args.backends is None else args.backends
    missing = [b for b in backends if b not in found]
    if missing:
        print(f"unavailable backends skipped: {', '.join(missing)}", file=sys.stderr)
        backends = [b for b in backends if b in found]
    print(f"device: {limits.name} (sm_{limits.arch}, {limits.multiprocessors} SMs, L2 {limits.l2_bytes >> 20} MiB) | "
          f"torch {torch.__version__} | backends: reference, {', '.join(backends) or '(none)'}")
    peaks = measure_peaks()
    rows: list[Row] = []
    for op in args.ops:
        for dtype_name in args.dtypes:
            for layout in args.layouts:
                for batch in args.batches:
                    rows.extend(bench_case(op, batch, dtype_name, layout, backends, args.rounds, args.calls,
                                           limits.l2_bytes))
    print(format_rows(rows, peaks))
    print(format_targets(rows))
    if args.json:
        atomic_write_json(args.json, {"device": limits.name, "arch": limits.arch, "peaks": peaks,
                                      "rows": [asdict(r) for r in rows]})
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
