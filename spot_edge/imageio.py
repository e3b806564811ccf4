"""Reading images from disk: the one place that knows image suffixes, bit depths and decode errors.

Every image a user gives (crops, frames of an image-folder source, dataset images) is read by
:func:`read_image`: 8-bit images only. A 16-bit or floating-point image (raw thermal frames, for
example) is refused with the fix instead of being clipped to 8 bits, which would give a silently
wrong embedding; convert such images to 8 bits with the scaling that suits the camera first.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from spot_edge.errors import InputError

__all__ = ["IMAGE_SUFFIXES", "read_image", "list_images", "check_image_array"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def check_image_array(image: np.ndarray, what: str = "image") -> np.ndarray:
    """``image`` as ``(H, W, 3)`` uint8 BGR: grayscale replicated, alpha dropped; anything other than
    8 bits per channel is an :class:`InputError`."""
    import cv2

    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        shape = getattr(image, "shape", None)
        raise InputError(f"{what} must be an (H, W) or (H, W, C) array, got shape {shape}")
    if image.dtype != np.uint8:
        raise InputError(f"{what} has {image.dtype} pixels; only 8-bit images are supported (a 16-bit or "
                         "float image would be clipped): convert it to 8 bits with the scaling that suits "
                         "the camera first")
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] != 3:
        raise InputError(f"{what} has {image.shape[2]} channels; expected 1, 3 or 4")
    return image


def read_image(path: str | os.PathLike) -> np.ndarray:
    """``(H, W, 3)`` uint8 BGR (grayscale replicated); clear errors for a missing, corrupt or
    16-bit file."""
    import cv2

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    image = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise InputError(f"cannot decode image {path} (corrupt or not an image)")
    return check_image_array(image, what=f"image {path}")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly in ``folder``, sorted; clear errors for a missing or empty folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files
