"""Per-stage latency statistics (p50/p90/p99) and per-source counters, thread-safe.

Both can be watched while a run goes on: :meth:`LatencyStats.add_listener` is told of every
duration as it is recorded (the Prometheus histograms of :mod:`spot_edge.service.metrics`), and
:meth:`Counters.down_for` says how long a source has been delivering no frame (the health check).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import numpy as np

MAX_SAMPLES = 100_000  # per stage; older samples are forgotten on very long runs


class LatencyStats:
    """Durations per named stage, summarised as percentiles in milliseconds.

    >>> stats = LatencyStats()
    >>> with stats.time("pose"):
    ...     pass
    >>> sorted(stats.summary())
    ['pose']
    """

    def __init__(self, max_samples: int = MAX_SAMPLES) -> None:
        self._samples: dict[str, deque] = defaultdict(lambda: deque(maxlen=max_samples))
        self._counts: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str, float], None]] = []

    def add_listener(self, listener: Callable[[str, float], None]) -> None:
        """Call ``listener(stage, seconds)`` for every duration recorded from now on (in the
        recording thread: it must be quick and must not raise)."""
        self._listeners.append(listener)

    def record(self, stage: str, seconds: float) -> None:
        seconds = float(seconds)
        with self._lock:
            self._samples[stage].append(seconds)
            self._counts[stage] += 1
        for listener in self._listeners:
            listener(stage, seconds)

    @contextlib.contextmanager
    def time(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.record(stage, time.perf_counter() - t0)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{stage: {count, mean_ms, p50_ms, p90_ms, p99_ms, max_ms}}``."""
        with self._lock:
            items = {k: (np.asarray(v, np.float64), self._counts[k]) for k, v in self._samples.items() if v}
        out = {}
        for stage, (x, count) in items.items():
            p50, p90, p99 = np.percentile(x, [50, 90, 99]) * 1e3
            out[stage] = {"count": int(count), "mean_ms": float(x.mean() * 1e3), "p50_ms": float(p50),
                          "p90_ms": float(p90), "p99_ms": float(p99), "max_ms": float(x.max() * 1e3)}
        return out

    def table(self, title: str = "per-stage latency (ms)"):
        """A rich ``Table`` of :meth:`summary`."""
        from rich.table import Table

        table = Table(title=title)
        for col in ("stage", "count", "mean", "p50", "p90", "p99", "max"):
            table.add_column(col, justify="left" if col == "stage" else "right")
        for stage, s in self.summary().items():
            table.add_row(stage, str(s["count"]), *(f"{s[k]:.2f}" for k in ("mean_ms", "p50_ms", "p90_ms", "p99_ms",
                                                                              "max_ms")))
        return table


@dataclass
class SourceCounters:
    """What happened to one source's frames.

    Every frame read ends up in exactly one of: processed, dropped (the pipeline was behind),
    discarded (still queued at shutdown) or errors (unusable, or pose / crop failed on it).
    """

    frames_read: int = 0
    frames_processed: int = 0
    frames_dropped: int = 0  # dropped because the pipeline was behind
    frames_discarded: int = 0  # left in queues at shutdown
    people: int = 0
    events: int = 0
    matches: int = 0
    disconnects: int = 0  # a live source stopped delivering frames
    reconnects: int = 0  # successful reopenings after a disconnect
    reconnect_attempts: int = 0
    errors: int = 0  # frames that could not be used, or failed in pose/crop
    status: str = "starting"  # starting | running | reconnecting | finished | stopped | failed
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Counters:
    """Thread-safe :class:`SourceCounters` per source name."""

    def __init__(self, names) -> None:
        self._by_source = {name: SourceCounters() for name in names}
        self._down_since: dict[str, float | None] = {name: None for name in names}  # time.monotonic()
        self._lock = threading.Lock()

    def mark_down(self, source: str) -> None:
        """The source stopped delivering frames (or never started); the first call since it last
        delivered starts the clock of :meth:`down_for`."""
        with self._lock:
            if self._down_since[source] is None:
                self._down_since[source] = time.monotonic()

    def mark_up(self, source: str) -> None:
        """The source delivered a frame."""
        with self._lock:
            self._down_since[source] = None

    def down_for(self, source: str) -> float | None:
        """Seconds since ``source`` last stopped delivering frames; ``None`` while it delivers."""
        with self._lock:
            since = self._down_since[source]
        return None if since is None else time.monotonic() - since

    def add(self, source: str, field: str, amount: int = 1) -> None:
        with self._lock:
            c = self._by_source[source]
            setattr(c, field, getattr(c, field) + amount)

    def set(self, source: str, field: str, value) -> None:
        with self._lock:
            setattr(self._by_source[source], field, value)

    def get(self, source: str) -> SourceCounters:
        with self._lock:
            return SourceCounters(**asdict(self._by_source[source]))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: v.to_dict() for k, v in self._by_source.items()}


__all__ = ["LatencyStats", "SourceCounters", "Counters"]
