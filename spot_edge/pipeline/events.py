"""Match events: one JSON object per line, one line per person seen, in files rotated by size or age."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


@dataclass
class MatchEvent:
    """A person seen in a frame and what the gallery says about them.

    Attributes:
        timestamp: capture time, seconds since the epoch (``time`` is the same in ISO 8601 UTC).
        source, modality, frame_index: where the person was seen.
        person_index: the person's index within the frame.
        track_id: the person's track in this camera (same person in consecutive frames).
        box: ``[x0, y0, x1, y1]`` in frame pixels.
        pose_score: the pose source's score for the person.
        matched: whether the best gallery entry reaches ``threshold``.
        identity: the matched identity (``None`` when not matched).
        similarity: cosine similarity to the best entry (``None`` when the searched modality of the
            gallery is empty).
        threshold: the decision threshold in force.
        entry: the best gallery entry (entry_id, identity, modality, camera, timestamp, ...).
        top_k: the ``k`` best entries (``[{"identity", "similarity", "entry_id"}]``).
        observed_entry_id: the id under which this observation was added to the gallery, if it was.
    """

    timestamp: float
    source: str
    modality: str
    frame_index: int
    person_index: int
    track_id: int | None
    box: list[float]
    pose_score: float
    matched: bool
    identity: str | None
    similarity: float | None
    threshold: float | None
    entry: dict[str, Any] | None = None
    top_k: list[dict[str, Any]] = field(default_factory=list)
    observed_entry_id: str | None = None
    observed_identity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["time"] = datetime.fromtimestamp(self.timestamp, tz=timezone.utc).isoformat(timespec="milliseconds")
        return d

    @property
    def label(self) -> str:
        """Short text for annotations: ``"alice 0.83"`` / ``"? 0.41"``."""
        name = self.identity if self.matched and self.identity else (self.observed_identity or "?")
        if self.similarity is None:
            return name
        return f"{name} {self.similarity:.2f}"


class EventWriter:
    """Appends events to a JSON-lines file, one flushed line each (a crash loses at most the line
    being written; readers can ``tail -F`` it). Thread-safe.

    Rotation (a service running for weeks): when the file would pass ``max_bytes``, or has been
    open for ``rotate_seconds``, it is closed and renamed, and a new one started. The old files
    are numbered like the log files of ``logrotate``, newest first: ``events.jsonl`` ->
    ``events.1.jsonl`` -> ``events.2.jsonl`` ... ; the ``keep`` newest are kept, older ones
    deleted (``keep=0``: none kept). A line is never split between two files.

    Args:
        path: the file (``None``: count the events, write nothing).
        max_bytes: rotate before a line would take the file past this size (``None``: never).
        rotate_seconds: rotate when the file has been open this long (``None``: never).
        keep: old files kept.
    """

    def __init__(self, path: str | Path | None, max_bytes: int | None = None, rotate_seconds: float | None = None,
                 keep: int = 5) -> None:
        self.path = Path(path) if path is not None else None
        self.max_bytes = max_bytes
        self.rotate_seconds = rotate_seconds
        self.keep = keep
        self._file = None
        self._lock = threading.Lock()
        self.count = 0
        #: how many times the file was rotated
        self.rotations = 0
        self._opened_at = 0.0
        self._size = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()

    def _open(self) -> None:
        self._file = open(self.path, "a", buffering=1)
        self._size = self._file.tell()
        self._opened_at = time.monotonic()

    def rotated_path(self, n: int) -> Path:
        """The ``n``-th newest old file: ``events.jsonl`` -> ``events.<n>.jsonl``."""
        return self.path.with_name(f"{self.path.stem}.{n}{self.path.suffix}")

    def _due(self, extra: int) -> bool:
        if self._size == 0:
            return False
        if self.max_bytes is not None and self._size + extra > self.max_bytes:
            return True
        return self.rotate_seconds is not None and time.monotonic() - self._opened_at >= self.rotate_seconds

    def _rotate(self) -> None:
        """Close, shift the old files by one (the oldest beyond ``keep`` is replaced), start anew."""
        self._file.close()
        self._file = None
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            for n in range(self.keep - 1, 0, -1):
                if self.rotated_path(n).exists():
                    os.replace(self.rotated_path(n), self.rotated_path(n + 1))
            os.replace(self.path, self.rotated_path(1))
        self.rotations += 1
        self._open()

    def write(self, event: MatchEvent) -> str:
        """Append one event; returns its JSON line (without the newline)."""
        line = json.dumps(event.to_dict(), separators=(",", ":"), default=_jsonable)
        with self._lock:
            self.count += 1
            if self._file is not None:
                data = line + "\n"
                if self._due(len(data.encode())):
                    self._rotate()
                self._file.write(data)
                self._size += len(data.encode())
        return line

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()
                self._file.close()
                self._file = None


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """All events of a JSON-lines file (skips a truncated last line)."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


__all__ = ["MatchEvent", "EventWriter", "read_events"]
