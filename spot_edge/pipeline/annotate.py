"""Annotated output: boxes, identities and similarities drawn on frames; video files and PNGs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from spot_edge.pipeline.events import MatchEvent

UNKNOWN_COLOUR = (160, 160, 160)


def identity_colour(identity: str | None) -> tuple[int, int, int]:
    """A stable bright BGR colour per identity (grey for unknown)."""
    if not identity:
        return UNKNOWN_COLOUR
    import colorsys

    h = int(hashlib.md5(identity.encode()).hexdigest()[:6], 16) / 0xFFFFFF
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return (int(b * 255), int(g * 255), int(r * 255))


def annotate_frame(image: np.ndarray, events: list[MatchEvent], header: str | None = None) -> np.ndarray:
    """A copy of ``image`` ``(H, W, 3)`` uint8 BGR with each event's box and label drawn."""
    import cv2

    out = image.copy()
    h, w = out.shape[:2]
    scale = max(0.35, min(h, w) / 600)
    thick = max(1, round(scale * 2))
    for ev in events:
        colour = identity_colour(ev.identity if ev.matched else None)
        x0, y0, x1, y1 = (int(round(v)) for v in ev.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick)
        label = ev.label
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        ty = max(th + base, y0)
        cv2.rectangle(out, (x0, ty - th - base), (x0 + tw, ty), colour, -1)
        cv2.putText(out, label, (x0, ty - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    if header:
        (tw, th), base = cv2.getTextSize(header, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(out, (0, h - th - 2 * base), (tw + 4, h), (0, 0, 0), -1)
        cv2.putText(out, header, (2, h - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


class AnnotatedVideoWriter:
    """``cv2.VideoWriter`` opened on the first frame (its size); MJPG in .avi (always available in
    OpenCV builds), or mp4v for a .mp4 path."""

    def __init__(self, path: str | Path, fps: float = 10.0) -> None:
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 10.0
        self._writer = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        import cv2

        h, w = image.shape[:2]
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.path.suffix.lower() == ".mp4" else "MJPG"))
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise RuntimeError(f"cannot write video {self.path}: this OpenCV has no encoder for it; "
                                   "use an .avi path (MJPG) or --frames-every to write PNGs")
            self._size = (w, h)
        if (w, h) != self._size:  # a camera that changed resolution after a reconnect
            image = cv2.resize(image, self._size)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


__all__ = ["identity_colour", "annotate_frame", "AnnotatedVideoWriter"]
