"""Generated multi-person pose-map scenes for the parser fidelity tests (helpers, not tests)."""

from __future__ import annotations

import cv2
import numpy as np

from spot_edge.pose.render import render_pose_maps
from spot_edge.pose.synthetic_skeletons import standing_people


def crowd_keypoints(rng: np.random.Generator, n: int, frame_hw, edge: bool = False) -> np.ndarray:
    """``n`` standing people of random size and position; ``edge=True`` pushes some of them
    against or across the frame borders (peaks on the map edge, cut-off limbs)."""
    h, w = frame_hw
    heights = rng.uniform(0.45, 0.9, n) * h
    xs = np.sort(rng.uniform(0.08, 0.92, n)) * w
    tops = rng.uniform(0.0, 1.0, n) * (h - heights)
    if edge and n:
        xs[0] = rng.uniform(-0.02, 0.03) * w  # centre line at the left edge
        if n > 1:
            xs[-1] = w - 1 - rng.uniform(0, 0.02) * w
        if n > 2:
            tops[1] = h - 0.8 * heights[1]  # feet below the frame
    kp = standing_people(xs, tops, heights, rng, jitter=2.0)
    kp[..., 2] = np.where(rng.random(kp.shape[:2]) < 0.06, 0.0, 1.0)  # a few keypoints not visible
    return kp


def scene(kind: str, seed: int, frame_hw=(368, 656), n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``(maps (56, h/8, w/8) float32, truth keypoints)`` of one scene kind:

    ``rendered`` clean rendered maps; ``noisy`` rendered maps + smooth and pixel noise;
    ``edge`` people against the frame borders; ``strong`` keypoint maps scaled above 1 and PAFs
    above unit length (as raw network output can be); ``blurred`` network-like soft maps.
    """
    rng = np.random.default_rng(seed)
    h, w = frame_hw
    kp = crowd_keypoints(rng, n, frame_hw, edge=kind == "edge")
    maps = render_pose_maps(kp, frame_hw, (h // 8, w // 8))
    if kind == "noisy":
        smooth = rng.normal(0, 1, maps.shape).astype(np.float32)
        smooth = np.stack([cv2.GaussianBlur(c, (0, 0), 1.2) for c in smooth]) * 0.06
        maps = maps + smooth + rng.normal(0, 0.015, maps.shape).astype(np.float32)
    elif kind == "strong":
        maps[:18] *= rng.uniform(1.1, 1.6, (18, 1, 1)).astype(np.float32)
        maps[18:] *= 1.25
    elif kind == "blurred":
        maps = np.stack([cv2.GaussianBlur(c, (0, 0), 0.8) for c in maps])
        maps[:18] *= 1.3
        maps[18:] *= 1.5
    elif kind not in ("rendered", "edge"):
        raise ValueError(kind)
    return maps.astype(np.float32), kp


SCENE_KINDS = ("rendered", "noisy", "edge", "strong", "blurred")
