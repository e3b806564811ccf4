"""What a pipeline run is given and what it reports: :class:`PipelineConfig`, :class:`CameraInput`,
:class:`RunSummary`."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

from spot_edge.errors import InputError
from spot_edge.pipeline.pose_sources import PoseSource
from spot_edge.pipeline.reconnecting import ReconnectPolicy
from spot_edge.pipeline.sources import FrameSource

DEFAULT_THRESHOLD = 0.5
#: Seconds a live source may deliver no frame before it is given up (``spot-edge run`` default).
DEFAULT_RECONNECT_TIMEOUT = 30.0
#: Smallest ``events_max_bytes`` (a few events; smaller would rotate at every line).
MIN_EVENTS_BYTES = 1024


@dataclass
class PipelineConfig:
    """Knobs of :class:`~spot_edge.pipeline.runner.Pipeline` (the ``spot-edge run`` options).

    Attributes:
        top_k: gallery entries reported per person.
        threshold: similarity needed to call a match; ``None``: the gallery's calibrated threshold,
            else ``DEFAULT_THRESHOLD``.
        max_batch: most crops gathered across frames into one embedder call (a frame's people are
            never split; the backend splits a call larger than its own ``max_batch``).
        frame_queue_size: frames waiting per source; beyond it the oldest is dropped (live sources).
        work_queue_size: cropped frames waiting for the embedder.
        realtime: pace file / folder sources at their frame rate and drop frames when behind, as
            a camera would; otherwise every frame of a file is processed.
        default_fps: frame rate of sources that do not tell (image folders), for pacing and video.
        observe: add what is seen to the gallery (matched people under their identity, others under
            a new ``unknown-*`` identity), so one camera's people can be found by the other.
        observe_novelty: skip an observation when an entry of its own modality is at least this
            similar (avoids one entry per frame for a person standing still; above 1: never skip).
        save_thumbnails: with ``observe`` and an output folder, save each observation's crop as
            ``thumbnails/<source>_<frame>_<person>.jpg`` and record its path in the gallery entry.
        flush_interval: seconds between gallery saves while running (also saved at the end).
        crop_expand: extra margin around each person box (fraction).
        min_pose_score, min_box_height: people below these are ignored.
        max_people: most people per frame (highest scores kept).
        write_video: write ``annotated_<source>.avi``.
        frames_every: also write every n-th annotated frame as PNG (0: never).
        only_matches: write events only for matched people.
        events_max_bytes: rotate ``events.jsonl`` before it passes this size (``None``: never;
            at least :data:`MIN_EVENTS_BYTES`).
        events_rotate_seconds: rotate ``events.jsonl`` after it has been open this long
            (``None``: never).
        events_keep: rotated event files kept (``events.1.jsonl`` newest).
        backoff_initial, backoff_max: reconnection delays (seconds) for live sources.
        reconnect_timeout: a live source that delivers no frame for this many seconds (from the
            start, or from a drop) is given up and reported in :attr:`RunSummary.errors`
            (``None`` or ``inf``: keep trying).
        max_reconnect_attempts: reopenings without a frame in between (failed or not) before a live
            source is given up (``None``: no limit; the timeout applies).
        max_seconds: stop after this long (``None``: until the sources end or Ctrl-C).
        max_frames: stop each source after this many frames (``None``: no limit).

    Raises:
        InputError: (a ``ValueError``) for a value out of its range, naming the field.
    """

    top_k: int = 5
    threshold: float | None = None
    max_batch: int = 32
    frame_queue_size: int = 2
    work_queue_size: int = 2
    realtime: bool = False
    default_fps: float = 10.0
    observe: bool = False
    observe_novelty: float = 0.9
    save_thumbnails: bool = True
    flush_interval: float = 30.0
    crop_expand: float = 0.0
    min_pose_score: float = 0.0
    min_box_height: float = 16.0
    max_people: int = 32
    write_video: bool = True
    frames_every: int = 0
    only_matches: bool = False
    events_max_bytes: int | None = None
    events_rotate_seconds: float | None = None
    events_keep: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    reconnect_timeout: float | None = DEFAULT_RECONNECT_TIMEOUT
    max_reconnect_attempts: int | None = None
    max_seconds: float | None = None
    max_frames: int | None = None

    def __post_init__(self) -> None:
        at_least = {"top_k": 1, "max_batch": 1, "frame_queue_size": 1, "work_queue_size": 1, "max_people": 1,
                    "frames_every": 0, "max_reconnect_attempts": 0, "max_frames": 1, "crop_expand": 0.0,
                    "min_box_height": 0.0, "events_max_bytes": MIN_EVENTS_BYTES, "events_keep": 0}
        for name, minimum in at_least.items():
            value = getattr(self, name)
            if value is not None and not (_finite(value) and value >= minimum):
                raise InputError(f"PipelineConfig.{name} must be at least {minimum}, got {value!r}")
        positive = {"default_fps": False, "flush_interval": True, "backoff_initial": False, "backoff_max": False,
                    "reconnect_timeout": True, "max_seconds": False, "events_rotate_seconds": False}
        for name, inf_ok in positive.items():
            value = getattr(self, name)
            if value is not None and not (_number(value) and value > 0 and (_finite(value) or inf_ok)):
                raise InputError(f"PipelineConfig.{name} must be above 0, got {value!r}")
        if self.threshold is not None and not (_finite(self.threshold) and -1.0 <= self.threshold <= 1.0):
            raise InputError(f"PipelineConfig.threshold is a cosine similarity in [-1, 1], got {self.threshold!r}")
        if not _finite(self.observe_novelty):
            raise InputError(f"PipelineConfig.observe_novelty must be a finite similarity, "
                             f"got {self.observe_novelty!r}")
        if self.backoff_max < self.backoff_initial:
            raise InputError(f"PipelineConfig.backoff_max ({self.backoff_max}) must be at least backoff_initial "
                             f"({self.backoff_initial})")

    @property
    def reconnect_policy(self) -> ReconnectPolicy:
        return ReconnectPolicy(backoff_initial=self.backoff_initial, backoff_max=self.backoff_max,
                               timeout=self.reconnect_timeout, max_attempts=self.max_reconnect_attempts)


def _number(value) -> bool:
    """A real number, not a bool and not NaN."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)


def _finite(value) -> bool:
    return _number(value) and math.isfinite(value)


@dataclass
class CameraInput:
    """One camera of the pipeline: a frame source, its modality and its pose source."""

    name: str
    modality: str
    source: FrameSource
    pose: PoseSource


@dataclass
class RunSummary:
    """What a run did (also saved as ``stats.json``).

    ``errors`` lists what went wrong for good: a source that failed or never came (reconnect
    timeout), a source none of whose frames could be used, an output or gallery save that failed.
    ``spot-edge run`` exits with code 1 when it is not empty.
    """

    duration_s: float
    sources: dict[str, dict[str, Any]]
    latency: dict[str, dict[str, float]]
    events: int
    gallery_entries: int | None
    gallery_saved: bool
    threshold: float | None
    stop_reason: str
    errors: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return self.stop_reason in ("interrupted", "terminated")

    @property
    def failed_sources(self) -> list[str]:
        return [name for name, c in self.sources.items() if c["status"] == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["PipelineConfig", "CameraInput", "RunSummary", "DEFAULT_THRESHOLD", "DEFAULT_RECONNECT_TIMEOUT",
           "MIN_EVENTS_BYTES"]
