"""A generated visible/infrared video pair for the demo and the pipeline tests.

The same few synthetic identities (``spot_edge.training.synthetic_dataset``) walk across a visible
camera and an infrared camera. Each video comes with what an external person detector would
give the pipeline: per-frame keypoints (JSON lines), plus the ground-truth identity of every
person box so that matching accuracy can be scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class VideoPairConfig:
    """Frames of ``height x width`` at ``fps``; ``people`` identities cross each video."""

    frames: int = 40
    height: int = 240
    width: int = 426
    fps: float = 10.0
    person_height: int = 160
    visible_camera: int = 1
    infrared_camera: int = 3
    seed: int = 7


def _background(camera_ir: bool, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A static cluttered backdrop (uint8 BGR)."""
    base = rng.uniform(40, 90) if camera_ir else rng.uniform(90, 160)
    frame = np.full((height, width, 3), base, np.float32)
    for _ in range(25):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(10, 80)), int(rng.integers(10, 60))
        colour = rng.uniform(20, 200, 3) if not camera_ir else np.full(3, rng.uniform(20, 110))
        cv2.rectangle(frame, (x, y), (x + w, y + h), colour.tolist(), -1)
    return cv2.GaussianBlur(frame, (5, 5), 0).astype(np.uint8)


def write_video_pair(out_dir: str | Path, identities: list, config: VideoPairConfig = VideoPairConfig()
                     ) -> dict[str, dict[str, str]]:
    """Render the pair into ``out_dir``.

    Args:
        identities: :class:`spot_edge.training.synthetic_identity.Identity` objects (2 to 5 work best).

    Returns:
        ``{"visible": {...}, "infrared": {...}}`` each with ``video`` (MJPG .avi),
        ``keypoints`` (JSON lines: ``{"frame": i, "people": [{"keypoints": [[x, y, v] x 18],
        "box": [x0, y0, x1, y1]}]}``) and ``truth`` (JSON lines: per frame, the pid of each box).
    """
    from spot_edge.training.synthetic_render import render_person

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    n = len(identities)
    if n == 0:
        raise ValueError("need at least one identity")
    # Each person crosses once per video, entering at a staggered frame, in their own lane.
    plans = []
    for i in range(n):
        start = int(i * config.frames / n * 0.85)
        speed = rng.uniform(0.8, 1.0) * (config.width + config.person_height) / max(config.frames / n * 1.4, 1)
        direction = 1 if i % 2 == 0 else -1
        plans.append((start, speed, direction))
    outputs: dict[str, dict[str, str]] = {}
    for modality, camera in (("visible", config.visible_camera), ("infrared", config.infrared_camera)):
        ir = modality == "infrared"
        background = _background(ir, config.height, config.width, rng)
        paths = {"video": str(out_dir / f"{modality}.avi"), "keypoints": str(out_dir / f"{modality}.keypoints.jsonl"),
                 "truth": str(out_dir / f"{modality}.truth.jsonl")}
        writer = cv2.VideoWriter(paths["video"], cv2.VideoWriter_fourcc(*"MJPG"), config.fps,
                                 (config.width, config.height))
        if not writer.isOpened():
            raise RuntimeError("OpenCV cannot write MJPG video on this machine")
        with open(paths["keypoints"], "w") as kp_file, open(paths["truth"], "w") as truth_file:
            for f in range(config.frames):
                frame = background.copy()
                people, truth = [], []
                for i, ident in enumerate(identities):
                    start, speed, direction = plans[i]
                    t = f - start
                    if t < 0:
                        continue
                    ph = config.person_height
                    pw = ph // 2
                    x_travel = -pw + t * speed
                    x0 = int(x_travel if direction > 0 else config.width - x_travel - pw)
                    if x0 + pw <= 0 or x0 >= config.width:
                        continue
                    y0 = config.height - ph - 4 - 12 * (i % 3)
                    person_rng = np.random.default_rng([config.seed, camera, i, f])
                    crop, kps = render_person(ident, camera, person_rng, height=ph, width=pw)
                    xa, xb = max(x0, 0), min(x0 + pw, config.width)
                    frame[y0:y0 + ph, xa:xb] = crop[:, xa - x0: xb - x0]
                    kps = kps[0].copy()
                    kps[:, 0] += x0
                    kps[:, 1] += y0
                    outside = (kps[:, 0] < 0) | (kps[:, 0] > config.width - 1)
                    kps[outside, 2] = 0.0
                    box = [xa, y0, xb, y0 + ph]
                    people.append({"keypoints": kps.round(2).tolist(), "box": box})
                    truth.append({"pid": ident.pid, "box": box})
                writer.write(frame)
                kp_file.write(json.dumps({"frame": f, "people": people}) + "\n")
                truth_file.write(json.dumps({"frame": f, "people": truth}) + "\n")
        writer.release()
        outputs[modality] = paths
    return outputs
