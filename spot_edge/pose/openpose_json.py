"""OpenPose ``*_keypoints.json`` (``--write_json``) read/write for the COCO-18 body model.

Each file: ``{"version": ..., "people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}, ...]}``
with 18 keypoints per person (COCO order, :data:`~spot_edge.pose.skeleton.KEYPOINT_NAMES`);
a missing keypoint is ``0, 0, 0``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spot_edge.pose.skeleton import NUM_KEYPOINTS

KEYPOINTS_SUFFIX = "_keypoints.json"


def read_openpose_json(path: str | Path) -> np.ndarray:
    """People of one OpenPose JSON file as ``(P, 18, 3)`` float32 (x, y, confidence)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"keypoint file not found: {path}")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from exc
    people = doc.get("people", []) if isinstance(doc, dict) else None
    if people is None:
        raise ValueError(f"{path} has no 'people' list: not an OpenPose keypoint file")
    out = []
    for i, person in enumerate(people):
        flat = np.asarray(person.get("pose_keypoints_2d", []), dtype=np.float32)
        if flat.size != NUM_KEYPOINTS * 3:
            raise ValueError(
                f"{path}: person {i} has {flat.size // 3} keypoints; expected 18 (COCO). BODY_25 files "
                "(25 keypoints) need --model_pose COCO")
        out.append(flat.reshape(NUM_KEYPOINTS, 3))
    return np.stack(out) if out else np.zeros((0, NUM_KEYPOINTS, 3), np.float32)


def write_openpose_json(path: str | Path, keypoints: np.ndarray) -> Path:
    """Write ``(P, 18, 3)`` keypoints in OpenPose's JSON layout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kp = np.asarray(keypoints, dtype=np.float32).reshape(-1, NUM_KEYPOINTS, 3)
    doc = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": [round(float(v), 3) for v in p.reshape(-1)]}
                                      for p in kp]}
    path.write_text(json.dumps(doc))
    return path


__all__ = ["KEYPOINTS_SUFFIX", "read_openpose_json", "write_openpose_json"]
