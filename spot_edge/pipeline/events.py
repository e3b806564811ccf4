"""Match events: one JSON object per line, one line per person seen."""

from __future__ import annotations

import json
import threading
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
    being written; readers can ``tail -f`` it). Thread-safe."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._file = None
        self._lock = threading.Lock()
        self.count = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", buffering=1)

    def write(self, event: MatchEvent) -> None:
        line = json.dumps(event.to_dict(), separators=(",", ":"), default=_jsonable)
        with self._lock:
            self.count += 1
            if self._file is not None:
                self._file.write(line + "\n")

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
