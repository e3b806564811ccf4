"""Synthetic skeletons for tests, benchmarks and demos (no images, no weights needed)."""

from __future__ import annotations

import numpy as np

from spot_edge.pose.skeleton import NUM_KEYPOINTS

# A standing person in units of its height: (dx from the centre line, dy from the top).
STANDING_POSE: tuple[tuple[float, float], ...] = (
    (0.0, 0.08), (0.0, 0.18), (-0.12, 0.18), (-0.15, 0.35), (-0.16, 0.50), (0.12, 0.18), (0.15, 0.35),
    (0.16, 0.50), (-0.07, 0.52), (-0.08, 0.72), (-0.08, 0.95), (0.07, 0.52), (0.08, 0.72), (0.08, 0.95),
    (-0.03, 0.06), (0.03, 0.06), (-0.06, 0.07), (0.06, 0.07),
)


def standing_people(centres_x, tops, heights, rng: np.random.Generator | None = None, jitter: float = 1.5) -> np.ndarray:
    """``(P, 18, 3)`` keypoints (x, y, 1) of standing people facing the camera, pixel coordinates.

    Person p is centred on ``centres_x[p]``, its head top at ``tops[p]``, ``heights[p]`` pixels
    tall; ``jitter`` adds Gaussian noise (pixels) to every keypoint when ``rng`` is given.
    """
    base = np.asarray(STANDING_POSE, dtype=np.float64)
    people = []
    for cx, top, size in zip(centres_x, tops, heights):
        kp = np.ones((NUM_KEYPOINTS, 3))
        kp[:, 0] = cx + size * base[:, 0]
        kp[:, 1] = top + size * base[:, 1]
        if rng is not None and jitter > 0:
            kp[:, :2] += rng.normal(0.0, jitter, (NUM_KEYPOINTS, 2))
        people.append(kp)
    return np.stack(people) if people else np.zeros((0, NUM_KEYPOINTS, 3))


def crowd(num_people: int, image_size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """``num_people`` standing people side by side across an image (for parse benchmarks)."""
    h, w = image_size
    if num_people == 0:
        return np.zeros((0, NUM_KEYPOINTS, 3))
    rows = int(np.ceil(num_people / 8))
    per_row = int(np.ceil(num_people / rows))
    height = 0.9 * h / rows
    xs, tops = [], []
    for i in range(num_people):
        r, c = divmod(i, per_row)
        xs.append((c + 0.5) * w / per_row)
        tops.append(r * h / rows + 0.05 * h / rows)
    return standing_people(xs, tops, [height] * num_people, rng)


__all__ = ["STANDING_POSE", "standing_people", "crowd"]
