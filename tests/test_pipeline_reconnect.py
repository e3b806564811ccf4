"""Live sources that drop, come back, or never come: back-off, the reconnect timeout, and what the
run reports (fake cameras, short timeouts)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from spot_edge.pipeline import (
    Backoff,
    CameraInput,
    Pipeline,
    PipelineConfig,
    ReconnectingSource,
    ReconnectPolicy,
    reconnecting,
)
from spot_edge.pipeline.sources import SourceError
from spot_edge.pipeline.stats import Counters

sys.path.insert(0, str(Path(__file__).parent))
from pipeline_fakes import FakeCamera, FakeEmbedder, OnePersonPose, random_frames  # noqa: E402


class NeverOpens:
    """A live source whose every ``open`` fails; records when it was tried."""

    live = True
    fps = None
    description = "camera 97"

    def __init__(self) -> None:
        self.opened_at: list[float] = []

    def open(self) -> None:
        self.opened_at.append(time.monotonic())
        raise SourceError("cannot open camera 97")

    def read(self):  # pragma: no cover - never opened
        raise AssertionError("read without open")

    def close(self) -> None:
        pass


def _feed(source, policy: ReconnectPolicy, stop: threading.Event | None = None):
    counters = Counters(["cam"])
    return ReconnectingSource("cam", source, counters, policy, stop or threading.Event()), counters


def test_backoff_grows_and_resets():
    b = Backoff(initial=0.5, maximum=4.0, factor=2.0)
    assert [b.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next_delay() == 0.5


class FakeClock:
    """Stands in for the ``time`` module of :mod:`spot_edge.pipeline.reconnecting`: time passes
    only when :class:`ClockedStop` waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    perf_counter = monotonic


class ClockedStop(threading.Event):
    """A stop event whose ``wait(delay)`` records the delay and advances the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock, self.waits = clock, []

    def wait(self, timeout=None) -> bool:
        self.waits.append(timeout)
        self.clock.now += timeout
        return self.is_set()


def test_backoff_grows_and_the_last_wait_is_cut_at_the_timeout(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(reconnecting, "time", clock)
    stop = ClockedStop(clock)
    src = NeverOpens()
    src.opened_at = []
    feed, counters = _feed(src, ReconnectPolicy(backoff_initial=0.04, backoff_max=0.16, timeout=0.5), stop)
    assert list(feed.frames()) == []
    # doubling from 0.04 to the cap of 0.16, and the wait that would pass the deadline is shortened
    assert stop.waits == pytest.approx([0.04, 0.08, 0.16, 0.16, 0.06])
    assert clock.now == pytest.approx(0.5)  # given up at the timeout, not a back-off later
    c = counters.get("cam")
    assert c.status == "failed" and c.reconnect_attempts == 4 and len(src.opened_at) == 5
    assert "0.5 s" in feed.failure and "cannot open camera 97" in feed.failure


def test_max_attempts_gives_up_before_the_timeout(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(reconnecting, "time", clock)
    feed, counters = _feed(NeverOpens(), ReconnectPolicy(backoff_initial=0.1, timeout=60, max_attempts=2),
                           ClockedStop(clock))
    assert list(feed.frames()) == []
    assert counters.get("cam").reconnect_attempts == 2 and "2 reconnection attempts" in feed.failure


def test_a_camera_that_never_opens_fails_the_run(tmp_path):
    cfg = PipelineConfig(backoff_initial=0.02, backoff_max=0.05, reconnect_timeout=0.3, write_video=False)
    t0 = time.monotonic()
    summary = Pipeline([CameraInput("cam", "visible", FakeCamera([]), OnePersonPose())], FakeEmbedder(), None,
                       cfg, output_dir=tmp_path / "out").run(handle_signals=False)
    assert time.monotonic() - t0 < 3
    c = summary.sources["cam"]
    assert c["status"] == "failed" and c["frames_read"] == 0 and c["reconnect_attempts"] >= 3
    assert summary.failed_sources == ["cam"] and len(summary.errors) == 1
    assert "delivered no frame within 0.3 s" in summary.errors[0] and "gone" in summary.errors[0]


def test_a_camera_that_drops_for_good_fails_after_the_timeout(tmp_path):
    cam = FakeCamera(random_frames(6), fps=300)  # six frames, then it goes away
    cfg = PipelineConfig(backoff_initial=0.02, backoff_max=0.05, reconnect_timeout=0.3, write_video=False)
    summary = Pipeline([CameraInput("cam", "infrared", cam, OnePersonPose())], FakeEmbedder(), None, cfg
                       ).run(handle_signals=False)
    c = summary.sources["cam"]
    assert c["frames_read"] == 6 and c["disconnects"] == 1 and c["reconnects"] == 0
    assert c["status"] == "failed" and "after it dropped" in summary.errors[0]


def test_a_short_drop_within_the_timeout_is_recovered(tmp_path):
    cam = FakeCamera(random_frames(12), fps=300, fail_at=(5,), open_failures=2, loop=True)
    cfg = PipelineConfig(backoff_initial=0.02, backoff_max=0.05, reconnect_timeout=2.0, write_video=False,
                         max_frames=12, frame_queue_size=64)
    summary = Pipeline([CameraInput("cam", "visible", cam, OnePersonPose())], FakeEmbedder(), None, cfg
                       ).run(handle_signals=False)
    c = summary.sources["cam"]
    assert c["disconnects"] == 1 and c["reconnects"] == 1 and c["reconnect_attempts"] == 3
    assert c["status"] == "finished" and c["frames_read"] == 12 and summary.errors == []


@pytest.mark.parametrize("timeout", [None, float("inf")], ids=["none", "inf"])
def test_no_timeout_keeps_trying_until_stopped(timeout):
    cfg = PipelineConfig(backoff_initial=0.02, backoff_max=0.05, reconnect_timeout=timeout, write_video=False,
                         max_seconds=0.4)
    summary = Pipeline([CameraInput("cam", "visible", FakeCamera([]), OnePersonPose())], FakeEmbedder(), None,
                       cfg).run(handle_signals=False)
    c = summary.sources["cam"]
    assert summary.stop_reason == "time limit" and c["status"] == "stopped" and c["reconnect_attempts"] >= 3
    assert summary.errors == []


def test_stop_during_the_backoff_wait_is_prompt():
    stop = threading.Event()
    feed, counters = _feed(NeverOpens(), ReconnectPolicy(backoff_initial=5.0, backoff_max=5.0, timeout=60))
    threading.Timer(0.2, stop.set).start()
    feed.stop = stop
    t0 = time.monotonic()
    assert list(feed.frames()) == []
    assert time.monotonic() - t0 < 2 and counters.get("cam").status == "stopped" and feed.failure is None


class BrokenFile:
    """A file source (not live) whose reads fail after two frames."""

    live = False
    fps = None
    description = "file broken.avi"

    def open(self) -> None:
        self.n = 0

    def read(self):
        self.n += 1
        if self.n > 2:
            raise OSError("I/O error reading broken.avi")
        return np.zeros((96, 128, 3), np.uint8)

    def close(self) -> None:
        pass


def test_a_file_that_fails_to_read_is_failed_not_finished():
    summary = Pipeline([CameraInput("f", "visible", BrokenFile(), OnePersonPose())], FakeEmbedder(), None,
                       PipelineConfig(write_video=False)).run(handle_signals=False)
    c = summary.sources["f"]
    assert c["frames_read"] == 2 and c["status"] == "failed" and c["reconnect_attempts"] == 0
    assert "I/O error" in summary.errors[0]
