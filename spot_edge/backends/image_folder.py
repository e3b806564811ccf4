"""Read a folder of person crops (+ their pose maps) into network inputs.

Layout (kept deliberately simple)::

    folder/
      0001.jpg      any OpenCV-readable image (BGR, gray or BGRA), any size
      0001.npy      its pose information, either
                    - heatmaps (56, h, w) float: OpenPose maps for this crop (resized to
                      preprocessing.heatmap_size when h, w differ), or
                    - keypoints (18, 3) / (P, 18, 3): (x, y, visibility) in the crop's pixels,
                      rendered with spot_edge.pose.render.render_pose_maps
      labels.csv    optional, for accuracy checks: header ``file,pid,camid,modality,split``
                    (split = query | gallery)

Images without a ``.npy`` are an error naming them (``missing="error"``), unless
``missing="zeros"`` (embed without structure: accuracy drops, say so in reports).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spot_edge.imageio import list_images  # noqa: F401  (re-exported for callers of this module)
from spot_edge.preprocessing import PreprocessSpec


@dataclass
class ImageFolder:
    """``images (N, 3, H, W)`` float32 normalised, ``heatmaps (N, K_S, Hs, Ws)`` float32, file names."""

    images: np.ndarray
    heatmaps: np.ndarray
    files: list[str]
    labels: dict[str, dict[str, str]] | None = None


def pose_maps_for(image_path: Path, image_shape: tuple[int, int], spec: PreprocessSpec,
                  num_pose_maps: int = 56, missing: str = "error") -> np.ndarray:
    """``(K_S, Hs, Ws)`` float32 pose maps for one image from its ``.npy`` sidecar."""
    import cv2

    hs, ws = spec.heatmap_size
    side = image_path.with_suffix(".npy")
    if not side.is_file():
        if missing == "zeros":
            return np.zeros((num_pose_maps, hs, ws), np.float32)
        raise FileNotFoundError(f"no pose file {side.name} beside {image_path.name}: put the crop's heatmaps "
                                f"({num_pose_maps}, h, w) or keypoints (18, 3) there")
    try:
        data = np.load(side, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{side} is not a readable .npy file: {exc}") from exc
    data = np.asarray(data, np.float32)
    if data.ndim in (2, 3) and data.shape[-2:] == (18, 3):  # keypoints
        from spot_edge.pose.render import render_pose_maps

        keypoints = data[None] if data.ndim == 2 else data
        return render_pose_maps(keypoints, image_shape, (hs, ws)).astype(np.float32)
    if data.ndim == 3 and data.shape[0] == num_pose_maps:
        if data.shape[1:] != (hs, ws):
            hwc = np.ascontiguousarray(np.moveaxis(data, 0, -1))
            data = np.moveaxis(cv2.resize(hwc, (ws, hs), interpolation=cv2.INTER_LINEAR), -1, 0)
        if not np.isfinite(data).all():
            raise ValueError(f"{side} holds NaN or Inf values")
        return np.ascontiguousarray(data, np.float32)
    raise ValueError(f"{side} has shape {data.shape}; expected heatmaps ({num_pose_maps}, h, w) or keypoints "
                     f"(18, 3) / (P, 18, 3)")


def load_image_folder(folder: str | Path, spec: PreprocessSpec, num_pose_maps: int = 56,
                      missing: str = "error", limit: int | None = None) -> ImageFolder:
    """Read every image of ``folder`` with its pose maps (see the module docstring)."""
    import cv2

    if missing not in ("error", "zeros"):
        raise ValueError(f"missing must be 'error' or 'zeros', got {missing!r}")
    files = list_images(folder)[:limit]
    crops, maps = [], []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"cannot read image {path} (corrupt or not an image)")
        crops.append(spec.resize_bgr(image))
        maps.append(pose_maps_for(path, image.shape[:2], spec, num_pose_maps, missing))
    labels = read_labels(folder)
    return ImageFolder(spec.normalize(np.stack(crops)), np.stack(maps).astype(np.float32),
                       [p.name for p in files], labels)


def read_labels(folder: str | Path) -> dict[str, dict[str, str]] | None:
    """``{file: {"pid", "camid", "modality", "split"}}`` from ``labels.csv``, or None."""
    path = Path(folder) / "labels.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        needed = {"file", "pid", "camid", "modality", "split"}
        if not reader.fieldnames or not needed <= set(reader.fieldnames):
            raise ValueError(f"{path} needs the header {','.join(sorted(needed))}; got {reader.fieldnames}")
        rows = {row["file"]: row for row in reader}
    for name, row in rows.items():
        if row["split"] not in ("query", "gallery"):
            raise ValueError(f"{path}: split of {name} must be query or gallery, got {row['split']!r}")
        if row["modality"] not in ("visible", "infrared"):
            raise ValueError(f"{path}: modality of {name} must be visible or infrared, got {row['modality']!r}")
    return rows
