"""Read and write the OpenPose binary's ``<name>_pose_heatmaps.png`` files.

``openpose --model_pose COCO --heatmaps_add_parts true --heatmaps_add_PAFs true --write_heatmaps DIR``
writes one 8-bit grey PNG per image: the channels tiled left to right at net output resolution
(``(h, C * w)``), body parts first, then (if ``--heatmaps_add_bkg``) the background, then the 38
PAFs in network channel order (``doc/advanced/heatmap_output.md``). The default ``UnsignedChar``
scaling (``poseExtractorNet.cpp``) is::

    part  q = round(clip(v, 0, 1) * 255)
    PAF   q = round(clip(v, -1, 1) * 128.5 + 128.5), saturated to 255

so a PAF of 0 is written as 128/129. Reading inverts it: ``v = q / 255`` for parts and
``v = (q - 128.5) / 128.5`` for PAFs, with the two codes around zero (128, 129) read as exactly
0. Round trip error: at most 0.5/255 for parts; for PAFs 1/128.5, except near +1 where
OpenPose's saturation at 255 costs up to 2/128.5.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from spot_edge.atomic import atomic_write_bytes
from spot_edge.pose.skeleton import NUM_KEYPOINTS, NUM_MAPS, NUM_PAF_CHANNELS

HEATMAPS_SUFFIX = "_pose_heatmaps.png"


class HeatmapFileError(ValueError):
    """A heatmap PNG that cannot be read as OpenPose COCO pose heatmaps."""


def heatmaps_png_name(image_name: str | Path) -> str:
    """``frames/000123.jpg`` -> ``000123_pose_heatmaps.png`` (OpenPose's naming)."""
    return Path(image_name).stem + HEATMAPS_SUFFIX


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5)


def encode_pose_heatmaps(maps: np.ndarray, include_background: bool = False) -> np.ndarray:
    """``(56, h, w)`` float maps -> ``(h, C * w)`` uint8 tile image (C = 56, or 57 with background).

    The background tile (``1 - max part``, OpenPose's definition) is only written on request.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim != 3 or maps.shape[0] != NUM_MAPS:
        raise ValueError(f"expected ({NUM_MAPS}, h, w) pose maps, got {maps.shape}")
    parts = np.clip(np.nan_to_num(maps[:NUM_KEYPOINTS]), 0.0, 1.0)
    pafs = np.clip(np.nan_to_num(maps[NUM_KEYPOINTS:]), -1.0, 1.0)
    tiles = [_round_half_up(parts * 255.0)]
    if include_background:
        tiles.append(_round_half_up((1.0 - parts.max(axis=0, keepdims=True)) * 255.0))
    tiles.append(np.minimum(_round_half_up(pafs * 128.5 + 128.5), 255.0))
    stack = np.concatenate(tiles).astype(np.uint8)  # (C, h, w)
    c, h, w = stack.shape
    return np.ascontiguousarray(stack.transpose(1, 0, 2).reshape(h, c * w))


def decode_pose_heatmaps(image: np.ndarray, num_tiles: int | None = None) -> np.ndarray:
    """``(h, C * w)`` uint8 tile image -> ``(56, h, w)`` float32 maps.

    ``num_tiles``: 56 (parts + PAFs) or 57 (parts + background + PAFs; the background is dropped).
    ``None`` infers it from the width (56 is tried first).
    """
    img = np.asarray(image)
    if img.ndim == 3:
        if not (img == img[..., :1]).all():
            raise HeatmapFileError("heatmap PNG has colour channels that differ; OpenPose writes grey images")
        img = img[..., 0]
    if img.ndim != 2 or img.dtype != np.uint8:
        raise HeatmapFileError(f"expected an 8-bit grey tile image, got shape {img.shape} dtype {img.dtype}")
    h, total_w = img.shape
    if num_tiles is None:
        options = [n for n in (NUM_MAPS, NUM_MAPS + 1) if total_w % n == 0]
        if not options:
            hint = ""
            if total_w % NUM_KEYPOINTS == 0 or total_w % (NUM_KEYPOINTS + 1) == 0:
                hint = " It looks like parts only: rerun OpenPose with --heatmaps_add_PAFs true."
            raise HeatmapFileError(
                f"width {total_w} is not a multiple of 56 (parts + PAFs) or 57 (parts + background + PAFs)."
                + hint)
        num_tiles = options[0]
    if num_tiles not in (NUM_MAPS, NUM_MAPS + 1) or total_w % num_tiles:
        raise HeatmapFileError(f"cannot split width {total_w} into {num_tiles} tiles of 56/57 COCO heatmaps")
    w = total_w // num_tiles
    tiles = img.reshape(h, num_tiles, w).transpose(1, 0, 2).astype(np.float32)
    if num_tiles == NUM_MAPS + 1:
        tiles = np.delete(tiles, NUM_KEYPOINTS, axis=0)  # background
    out = np.empty((NUM_MAPS, h, w), np.float32)
    out[:NUM_KEYPOINTS] = tiles[:NUM_KEYPOINTS] / 255.0
    q = tiles[NUM_KEYPOINTS:]
    paf = (q - 128.5) / 128.5
    paf[(q == 128) | (q == 129)] = 0.0
    out[NUM_KEYPOINTS:] = paf
    assert out.shape[0] == NUM_KEYPOINTS + NUM_PAF_CHANNELS
    return out


def write_pose_heatmaps_png(path: str | Path, maps: np.ndarray, include_background: bool = False) -> Path:
    """Write ``(56, h, w)`` maps as an OpenPose ``*_pose_heatmaps.png`` (atomically); returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"heatmap files are PNG (lossless); got {path.name}")
    ok, data = cv2.imencode(".png", encode_pose_heatmaps(maps, include_background))
    if not ok:
        raise OSError(f"OpenCV could not encode the heatmap PNG for {path}")
    return atomic_write_bytes(path, data.tobytes())


def read_map_png(path: str | Path) -> np.ndarray:
    """The stored pixels of a pose-map PNG, exactly as written: ``(h, W)`` uint8 (or ``(h, W, C)``).

    The one place that reads map PNGs. It is deliberately not :func:`spot_edge.imageio.read_image`,
    the reader for photographs: that one returns a 3-channel BGR picture (grey replicated, alpha
    dropped) ready for a network, while a map PNG is data, an 8-bit grey tile image whose
    values are decoded by :func:`decode_pose_heatmaps` and must come back unconverted. Anything
    but 8 bits per pixel is refused here rather than rescaled.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"heatmap file not found: {path}")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise HeatmapFileError(f"{path} is not a readable image (corrupt or not a PNG)")
    if img.dtype != np.uint8:
        raise HeatmapFileError(f"{path} has {img.dtype} pixels; OpenPose heatmap PNGs are 8-bit grey images")
    return img


def read_pose_heatmaps_png(path: str | Path, num_tiles: int | None = None) -> np.ndarray:
    """Read an OpenPose ``*_pose_heatmaps.png`` into ``(56, h, w)`` float32 maps."""
    img = read_map_png(path)
    try:
        return decode_pose_heatmaps(img, num_tiles)
    except HeatmapFileError as exc:
        raise HeatmapFileError(f"{path}: {exc}") from None


# Short names (used by spot_edge.training.heatmap_cache).
read_pose_heatmaps = read_pose_heatmaps_png
write_pose_heatmaps = write_pose_heatmaps_png

__all__ = ["read_pose_heatmaps", "write_pose_heatmaps", "HEATMAPS_SUFFIX", "HeatmapFileError", "heatmaps_png_name",
           "encode_pose_heatmaps", "decode_pose_heatmaps", "write_pose_heatmaps_png", "read_pose_heatmaps_png",
           "read_map_png"]
