"""A source that comes back, or is given up: the reconnection state machine of the pipeline's readers.

:class:`ReconnectingSource` wraps a :class:`~spot_edge.pipeline.sources.FrameSource` and yields its
frames. A live source (camera, stream) that cannot be opened, or stops delivering frames, is
closed and reopened with exponential back-off (:class:`Backoff`) until it delivers again; it is
given up (status ``failed``, :attr:`ReconnectingSource.failure` says why) when it has delivered no
frame for :attr:`ReconnectPolicy.timeout` seconds -- counted from the start for a source that never
opened, from the drop otherwise -- or after :attr:`ReconnectPolicy.max_attempts` reopenings
without a frame. While it is down, :meth:`~spot_edge.pipeline.stats.Counters.down_for` says for how
long (the service's health check). A file or folder that ends is ``finished``; one that cannot be opened or read is
``failed`` at once (no retries).

Status of the source in :class:`~spot_edge.pipeline.stats.Counters`::

    starting --opened--> running --read fails (live)--> reconnecting --reopened--> running
       |                    |                                |
       | open fails (live)  | the file ends: finished        | no frame for `timeout` s,
       +--> reconnecting    | stop asked: stopped            | or too many reopenings: failed
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from spot_edge.pipeline.sources import FrameError, FrameSource
from spot_edge.pipeline.stats import Counters, LatencyStats

log = logging.getLogger("spot_edge.pipeline")


@dataclass
class Backoff:
    """Exponential back-off between reconnection attempts: ``initial * factor**n`` capped at ``maximum``."""

    initial: float = 0.5
    maximum: float = 10.0
    factor: float = 2.0
    attempts: int = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * self.factor ** min(self.attempts, 64))
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0


@dataclass(frozen=True)
class ReconnectPolicy:
    """When and how long a live source is reopened.

    Attributes:
        backoff_initial, backoff_max: delays between reopenings (seconds), doubling from the first
            to the cap.
        timeout: a live source that delivers no frame for this many seconds is given up (``None``
            or ``inf``: never).
        max_attempts: a live source is given up after this many reopenings without a frame
            (``None``: no limit).
    """

    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    timeout: float | None = 30.0
    max_attempts: int | None = None

    @property
    def deadline_s(self) -> float | None:
        """:attr:`timeout`, with ``inf`` as ``None``."""
        return None if self.timeout is None or math.isinf(self.timeout) else float(self.timeout)


class ReconnectingSource:
    """The frames of ``source`` with reconnection (see the module docstring).

    Args:
        name: the source's name in ``counters`` and in messages.
        source: the frame source (opened and closed here).
        counters: where ``status``, ``disconnects``, ``reconnects``, ``reconnect_attempts``,
            ``errors`` and ``last_error`` of ``name`` are kept.
        policy: :class:`ReconnectPolicy`.
        stop: set to stop waiting and reading.
        stats: read latency is recorded as ``read/<name>`` (optional).
    """

    def __init__(self, name: str, source: FrameSource, counters: Counters, policy: ReconnectPolicy,
                 stop: threading.Event, stats: LatencyStats | None = None) -> None:
        self.name = name
        self.source = source
        self.counters = counters
        self.policy = policy
        self.stop = stop
        self.stats = stats
        #: why the source was given up (``None`` while it is not)
        self.failure: str | None = None

    def frames(self) -> Iterator[np.ndarray | FrameError]:
        """Yield each frame (the source's array), or the :class:`FrameError` of a frame that cannot
        be used, until the source ends, is given up or ``stop`` is set. Close the iterator (or
        exhaust it) to close the source."""
        src, name, c = self.source, self.name, self.counters
        backoff = Backoff(self.policy.backoff_initial, self.policy.backoff_max)
        opened = reopening = delivered = False
        down_since: float | None = None  # first failure since the last frame (None: delivering)
        attempts = 0  # reopenings since the last frame
        try:
            while not self.stop.is_set():
                if not opened:
                    if reopening:
                        reason = self._give_up_reason(attempts, down_since, delivered)
                        if reason is not None:
                            self._fail(reason)
                            return
                        attempts += 1
                        c.add(name, "reconnect_attempts")
                    try:
                        src.open()
                    except Exception as exc:  # a driver error is a failed attempt, not a crash
                        c.set(name, "last_error", _text(exc))
                        if not src.live:
                            self._fail(f"{name}: {_text(exc)}")
                            return
                        down_since = time.monotonic() if down_since is None else down_since
                        c.mark_down(name)
                        c.set(name, "status", "reconnecting")
                        reopening = True
                        self._pause(backoff, down_since, f"{name}: {_text(exc)}")
                        continue
                    opened = True
                    if reopening:
                        c.add(name, "reconnects")
                        log.warning("%s: reconnected", name)
                        reopening = False
                    c.set(name, "status", "running")
                t0 = time.perf_counter()
                try:
                    image = src.read()
                except FrameError as exc:  # one unusable frame: the source goes on
                    yield exc
                    continue
                except Exception as exc:
                    if not src.live:
                        self._fail(f"{name}: read failed: {_text(exc)}")
                        return
                    c.set(name, "last_error", f"read failed: {_text(exc)}")
                    image = None
                if image is None:
                    if not src.live:
                        c.set(name, "status", "finished")
                        return
                    c.add(name, "disconnects")
                    c.set(name, "status", "reconnecting")
                    with contextlib.suppress(Exception):
                        src.close()
                    opened, reopening = False, True
                    down_since = time.monotonic() if down_since is None else down_since
                    c.mark_down(name)
                    self._pause(backoff, down_since, f"{name}: no frame (camera dropped)")
                    continue
                backoff.reset()
                if down_since is not None or not delivered:
                    c.mark_up(name)
                attempts, down_since, delivered = 0, None, True
                if self.stats is not None:
                    self.stats.record(f"read/{name}", time.perf_counter() - t0)
                yield image
        finally:
            with contextlib.suppress(Exception):
                src.close()
            if c.get(name).status in ("running", "reconnecting", "starting"):
                c.set(name, "status", "stopped")

    def _give_up_reason(self, attempts: int, down_since: float | None, delivered: bool) -> str | None:
        p, name = self.policy, self.name
        last = self.counters.get(name).last_error
        if p.max_attempts is not None and attempts >= p.max_attempts:
            return f"{name}: no frames after {p.max_attempts} reconnection attempts ({last})"
        limit = p.deadline_s
        if limit is not None and down_since is not None and time.monotonic() - down_since >= limit:
            if delivered:
                return (f"{name}: no frame from {self.source.description} for {limit:g} s after it dropped "
                        f"(reconnect timeout); last error: {last}")
            return (f"{name}: {self.source.description} delivered no frame within {limit:g} s "
                    f"(reconnect timeout); last error: {last}")
        return None

    def _pause(self, backoff: Backoff, down_since: float, what: str) -> None:
        """Wait the next back-off delay, cut short at the timeout (so the give-up is on time)."""
        delay = backoff.next_delay()
        limit = self.policy.deadline_s
        if limit is not None:
            delay = min(delay, max(0.0, down_since + limit - time.monotonic()))
        log.warning("%s; retrying in %.2fs", what, delay)
        self.stop.wait(delay)

    def _fail(self, message: str) -> None:
        self.failure = message
        self.counters.set(self.name, "status", "failed")
        log.error("%s", message)


def _text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


__all__ = ["Backoff", "ReconnectPolicy", "ReconnectingSource"]
