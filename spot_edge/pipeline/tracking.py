"""A minimal per-camera IoU tracker: the same person in consecutive frames keeps one track id.

Greedy matching of each frame's boxes to the live tracks by intersection-over-union (highest
first, ``iou_threshold`` minimum); unmatched boxes start new tracks; tracks unseen for
``max_missing`` frames end. Enough to tie a camera's events and gallery observations to one
person over time; it is not a re-identification (that is what SPOT and the gallery do).
"""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of ``(N, 4)`` and ``(M, 4)`` ``(x0, y0, x1, y1)`` boxes -> ``(N, M)``."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


class IoUTracker:
    """Track ids for the boxes of successive frames of one camera (not thread-safe: one per camera)."""

    def __init__(self, iou_threshold: float = 0.3, max_missing: int = 10) -> None:
        self.iou_threshold = iou_threshold
        self.max_missing = max_missing
        self._boxes = np.zeros((0, 4))
        self._ids: list[int] = []
        self._last_seen: list[int] = []
        self._next_id = 0

    def update(self, boxes, frame_index: int) -> list[int]:
        """Track ids of ``boxes`` ``(N, 4)`` seen in frame ``frame_index`` (increasing)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        keep = [i for i, seen in enumerate(self._last_seen) if frame_index - seen <= self.max_missing]
        self._boxes = self._boxes[keep]
        self._ids = [self._ids[i] for i in keep]
        self._last_seen = [self._last_seen[i] for i in keep]
        out = [-1] * len(boxes)
        if len(boxes) and len(self._boxes):
            iou = box_iou(boxes, self._boxes)
            pairs = np.argwhere(iou >= self.iou_threshold)
            order = np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")
            used_tracks: set[int] = set()
            for n, t in pairs[order]:
                if out[n] == -1 and t not in used_tracks:
                    out[n] = self._ids[t]
                    used_tracks.add(int(t))
                    self._boxes[t] = boxes[n]
                    self._last_seen[t] = frame_index
        for n in range(len(boxes)):
            if out[n] == -1:
                out[n] = self._next_id
                self._next_id += 1
                self._boxes = np.concatenate([self._boxes, boxes[n:n + 1]])
                self._ids.append(out[n])
                self._last_seen.append(frame_index)
        return out


__all__ = ["IoUTracker", "box_iou"]
