"""Timers and statistics: per-call latency (synchronised) and back-to-back throughput.

On the CPU ``time.perf_counter``; on a GPU CUDA events around each call, synchronised after every
iteration for latency. Throughput comes from a separate back-to-back run (no synchronisation
between calls), so it includes the overlap a real pipeline gets.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

from spot_edge.latency.settings import BenchmarkError

__all__ = ["latency_stats", "interleaved_ms", "Timer"]


def interleaved_ms(fns: dict[str, Callable[[], Any]], warmup: int, rounds: int) -> dict[str, list[float]]:
    """Milliseconds per call of each function, ``rounds`` times, alternating between them round after
    round so that a change in machine load hits every variant alike (after ``warmup`` calls each)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(1000.0 * (time.perf_counter() - start))
    return times


def latency_stats(times_ms: Sequence[float]) -> dict[str, float]:
    """Median, mean, percentiles (p10/p90/p99), min, max and std of per-call times, in ms."""
    t = np.asarray(times_ms, np.float64)
    if t.size == 0:
        raise BenchmarkError("no timings to summarise")
    p10, p50, p90, p99 = np.percentile(t, [10, 50, 90, 99])
    return {"median": round(float(p50), 4), "mean": round(float(t.mean()), 4), "p10": round(float(p10), 4),
            "p90": round(float(p90), 4), "p99": round(float(p99), 4), "min": round(float(t.min()), 4),
            "max": round(float(t.max()), 4), "std": round(float(t.std()), 4)}


class Timer:
    """Per-call latency (synchronised) and back-to-back throughput of a callable.

    On CUDA, CUDA events on the current stream bracket each call; elsewhere ``perf_counter``.
    ``host_only=True`` forces ``perf_counter`` (stages that run on the CPU only).
    """

    def __init__(self, device: torch.device, host_only: bool = False) -> None:
        self.cuda = device.type == "cuda" and not host_only
        self.device = device
        self.name = "cuda_events" if self.cuda else "perf_counter"

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def latencies(self, fn: Callable[[], Any], iters: int, warmup: int) -> list[float]:
        """``iters`` per-call times in ms, after ``warmup`` untimed calls."""
        for _ in range(warmup):
            fn()
        self._sync()
        times = []
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            for _ in range(iters):
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
        else:
            for _ in range(iters):
                t0 = time.perf_counter()
                fn()
                self._sync()
                times.append((time.perf_counter() - t0) * 1e3)
        return times

    def back_to_back_seconds(self, fn: Callable[[], Any], iters: int) -> float:
        """Wall time of ``iters`` calls issued without synchronising in between."""
        self._sync()
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        self._sync()
        return time.perf_counter() - t0
