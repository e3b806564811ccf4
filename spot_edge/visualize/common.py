"""Image helpers shared by the visualisations: overlays, labels, grids, atomic PNG writing.

Every picture is an OpenCV-style ``(H, W, 3)`` uint8 **BGR** array until it is written.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from spot_edge.atomic import atomic_write_bytes
from spot_edge.imageio import read_image


def category_colours(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct BGR colours (cycling matplotlib's tab10/tab20 palettes)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    out = []
    for i in range(n):
        r, g, b, _ = cmap(i % cmap.N)
        out.append((int(b * 255), int(g * 255), int(r * 255)))
    return out


def as_bgr_image(image: np.ndarray | str | os.PathLike) -> np.ndarray:
    """An image file path or array -> ``(H, W, 3)`` uint8 BGR (gray is replicated)."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3) or image.size == 0:
        raise ValueError(f"expected an image (H, W), (H, W, 1) or (H, W, 3); got shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(np.nan_to_num(image.astype(np.float32)), 0, 255).astype(np.uint8)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image)


def normalize_map(values: np.ndarray) -> np.ndarray:
    """Min-max scale a 2-D map to [0, 1] (a constant map becomes all zeros)."""
    values = np.nan_to_num(np.asarray(values, np.float32))
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-12:
        return np.zeros_like(values)
    return (values - lo) / (hi - lo)


def overlay_map(image_bgr: np.ndarray, heat: np.ndarray, alpha: float = 0.5,
                colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Blend a ``(h, w)`` map in [0, 1] (any resolution, upsampled bilinearly) over an image."""
    image_bgr = as_bgr_image(image_bgr)
    h, w = image_bgr.shape[:2]
    heat = np.clip(np.asarray(heat, np.float32), 0.0, 1.0)
    if heat.shape != (h, w):
        heat = cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR)
    coloured = cv2.applyColorMap((heat * 255.0 + 0.5).astype(np.uint8), colormap)
    return cv2.addWeighted(coloured, float(alpha), image_bgr, 1.0 - float(alpha), 0.0)


def overlay_labels(image_bgr: np.ndarray, labels: np.ndarray, colours: Sequence[tuple[int, int, int]],
                   alpha: float = 0.5) -> np.ndarray:
    """Blend a ``(h, w)`` integer label map (nearest-neighbour upsampled) coloured by ``colours``."""
    image_bgr = as_bgr_image(image_bgr)
    h, w = image_bgr.shape[:2]
    labels = np.asarray(labels)
    if labels.shape != (h, w):
        labels = cv2.resize(labels.astype(np.int32).astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    palette = np.asarray(colours, np.uint8)
    coloured = palette[np.clip(labels.astype(np.int64), 0, len(palette) - 1)]
    return cv2.addWeighted(coloured, float(alpha), image_bgr, 1.0 - float(alpha), 0.0)


def resize_tile(image_bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``(height, width)``."""
    h, w = size
    image_bgr = as_bgr_image(image_bgr)
    if image_bgr.shape[:2] == (h, w):
        return image_bgr
    return cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_AREA if image_bgr.shape[0] > h else cv2.INTER_LINEAR)


def add_border(image_bgr: np.ndarray, colour: tuple[int, int, int], width: int = 3) -> np.ndarray:
    """Draw a coloured frame inside the image (size unchanged)."""
    out = as_bgr_image(image_bgr).copy()
    h, w = out.shape[:2]
    cv2.rectangle(out, (0, 0), (w - 1, h - 1), colour, thickness=max(1, min(width, h // 4, w // 4)))
    return out


def add_caption(image_bgr: np.ndarray, text: str, height: int = 14, colour=(0, 0, 0),
                background=(255, 255, 255)) -> np.ndarray:
    """Add a strip of ``height`` pixels with ``text`` above the image (width unchanged)."""
    image_bgr = as_bgr_image(image_bgr)
    w = image_bgr.shape[1]
    strip = np.full((height, w, 3), background, np.uint8)
    scale = max(0.25, height / 36.0)
    (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    while tw > w - 2 and len(text) > 1:               # shorten until it fits
        text = text[:-1]
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.putText(strip, text, (1, height - 4), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)
    return np.concatenate([strip, image_bgr], axis=0)


def grid(rows: Sequence[Sequence[np.ndarray]], pad: int = 4, background: int = 255) -> np.ndarray:
    """Tile equally sized images: ``rows[r][c]`` -> one picture with ``pad`` pixels between tiles."""
    if not rows or not all(rows):
        raise ValueError("grid needs at least one row with at least one image")
    th, tw = rows[0][0].shape[:2]
    for row in rows:
        for tile in row:
            if tile.shape[:2] != (th, tw):
                raise ValueError(f"grid tiles must share one size; got {tile.shape[:2]} and {(th, tw)}")
    cols = max(len(r) for r in rows)
    out = np.full((pad + len(rows) * (th + pad), pad + cols * (tw + pad), 3), background, np.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            y, x = pad + r * (th + pad), pad + c * (tw + pad)
            out[y:y + th, x:x + tw] = tile
    return out


def write_png(path: str | os.PathLike, image_bgr: np.ndarray) -> Path:
    """Write a BGR image as PNG atomically (:mod:`spot_edge.atomic`); returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"output must be a .png file, got {path}")
    ok, data = cv2.imencode(".png", as_bgr_image(image_bgr))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode the picture for {path}")
    return atomic_write_bytes(path, data.tobytes())
