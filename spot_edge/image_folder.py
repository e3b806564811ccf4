"""Read a folder of person crops (+ their pose maps) into network inputs.

Layout (kept deliberately simple)::

    folder/
      0001.jpg      an 8-bit image (BGR, gray or BGRA), any size (read by spot_edge.imageio)
      0001.npy      its pose information, either
                    - heatmaps (56, h, w) float: OpenPose maps for this crop (resized to
                      preprocessing.heatmap_size when h, w differ), or
                    - keypoints (18, 3) / (P, 18, 3): (x, y, visibility) in the crop's pixels,
                      rendered with spot_edge.pose.render.render_pose_maps
      labels.csv    optional, for accuracy checks: header ``file,pid,camid,modality,split``
                    (split = query | gallery)

Images without a ``.npy`` are an error naming them (``missing="error"``), unless
``missing="zeros"`` (embed without structure: accuracy drops, say so in reports).

Used by ``spot-edge embed`` / ``parity``, the gallery commands and INT8 calibration
(:mod:`spot_edge.calibration_data`); it imports neither the backends nor the engines.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spot_edge.errors import InputError
from spot_edge.imageio import list_images, read_image
from spot_edge.modality import MODALITIES
from spot_edge.preprocessing import PreprocessSpec

__all__ = ["ImageFolder", "MISSING_CHOICES", "load_image_folder", "pose_maps_for", "read_labels", "list_images"]

MISSING_CHOICES = ("error", "zeros")


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
        raise InputError(f"{side} is not a readable .npy file: {exc}") from exc
    if not np.issubdtype(data.dtype, np.number):
        raise InputError(f"{side} holds {data.dtype} values; expected numbers")
    data = np.asarray(data, np.float32)
    if not np.isfinite(data).all():
        raise InputError(f"{side} holds NaN or Inf values")
    if data.ndim in (2, 3) and data.shape[-2:] == (18, 3):  # keypoints
        from spot_edge.pose.render import render_pose_maps

        keypoints = data[None] if data.ndim == 2 else data
        return render_pose_maps(keypoints, image_shape, (hs, ws)).astype(np.float32)
    if data.ndim == 3 and data.shape[0] == num_pose_maps and min(data.shape[1:]) > 0:
        if data.shape[1:] != (hs, ws):
            hwc = np.ascontiguousarray(np.moveaxis(data, 0, -1))
            data = np.moveaxis(cv2.resize(hwc, (ws, hs), interpolation=cv2.INTER_LINEAR), -1, 0)
        return np.ascontiguousarray(data, np.float32)
    raise InputError(f"{side} has shape {data.shape}; expected heatmaps ({num_pose_maps}, h, w) or keypoints "
                     f"(18, 3) / (P, 18, 3)")


def load_image_folder(folder: str | Path, spec: PreprocessSpec, num_pose_maps: int = 56,
                      missing: str = "error", limit: int | None = None,
                      names: list[str] | None = None) -> ImageFolder:
    """Read the images of ``folder`` with their pose maps: all of them in name order, the first
    ``limit``, or only the files ``names`` (in that order)."""
    if missing not in MISSING_CHOICES:
        raise InputError(f"missing must be one of {', '.join(MISSING_CHOICES)}, got {missing!r}")
    if limit is not None and limit < 1:
        raise InputError(f"limit must be at least 1, got {limit}")
    files = list_images(folder)
    if names is not None:
        by_name = {p.name: p for p in files}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise FileNotFoundError(f"no image {unknown[0]} in {folder}")
        files = [by_name[n] for n in names]
    files = files[:limit]
    if not files:
        raise FileNotFoundError(f"no images selected in {folder}")
    crops, maps = [], []
    for path in files:
        image = read_image(path)
        crops.append(spec.resize_bgr(image))
        maps.append(pose_maps_for(path, image.shape[:2], spec, num_pose_maps, missing))
    labels = read_labels(folder)
    return ImageFolder(spec.normalize(np.stack(crops)), np.stack(maps).astype(np.float32),
                       [p.name for p in files], labels)


def read_labels(folder: str | Path) -> dict[str, dict[str, str]] | None:
    """``{file: {"pid", "camid", "modality", "split"}}`` from ``labels.csv``, or None. ``pid`` is the
    identity (free text, e.g. a name); ``camid`` an integer camera number."""
    path = Path(folder) / "labels.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        needed = {"file", "pid", "camid", "modality", "split"}
        if not reader.fieldnames or not needed <= set(reader.fieldnames):
            raise InputError(f"{path} needs the header {','.join(sorted(needed))}; got {reader.fieldnames}")
        rows = {row["file"]: row for row in reader}
    for name, row in rows.items():
        if row["split"] not in ("query", "gallery"):
            raise InputError(f"{path}: split of {name} must be query or gallery, got {row['split']!r}")
        if row["modality"] not in MODALITIES:
            raise InputError(f"{path}: modality of {name} must be visible or infrared, got {row['modality']!r}")
        if not (row["pid"] or "").strip():
            raise InputError(f"{path}: pid (the identity) of {name} is empty")
        try:
            int(row["camid"])
        except (TypeError, ValueError):
            raise InputError(f"{path}: camid of {name} must be an integer, got {row['camid']!r}") from None
    return rows
