"""Training augmentations applied identically to an image and its pose maps.

- horizontal flip: the image is mirrored and the maps go through
  :func:`spot_edge.pose.skeleton.flip_pose_maps` (left/right keypoint channels swapped, mirrored
  limbs' PAF pairs swapped, PAF x components negated);
- pad-and-crop: the image is zero-padded by ``pad`` pixels and cropped back at a random
  offset, i.e. translated by an integer ``(tx, ty)`` in ``[-pad, pad]``; the maps are
  translated by the same amount in image units (``tx * w / W`` map pixels, bilinear, zero
  fill), which is exact under the render convention of ``spot_edge.pose.render``;
- random erasing (image only, after normalisation): a random rectangle gets random normal
  values (``fill="noise"``) or the normalisation's mean colour, 0 (``fill="mean"``).

All randomness comes from the ``numpy.random.Generator`` passed in, so a batch is a pure
function of its seed.
"""

from __future__ import annotations

import math

import numpy as np

from spot_edge.pose.skeleton import flip_pose_maps

__all__ = ["flip_pair", "translate_image", "translate_maps", "pad_crop_pair", "random_erase", "ERASING_FILLS"]


def flip_pair(image: np.ndarray, maps: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Mirror ``image (H, W, C)`` and ``maps (56, h, w)`` (or None) horizontally."""
    return np.ascontiguousarray(image[:, ::-1]), (flip_pose_maps(maps) if maps is not None else None)


def translate_image(image: np.ndarray, tx: int, ty: int) -> np.ndarray:
    """Shift ``image (H, W, C)`` by integer pixels (content moves right/down for positive
    values), zero fill: the pad-``p`` random crop with offset ``(p - tx, p - ty)``."""
    h, w = image.shape[:2]
    out = np.zeros_like(image)
    ys, yd = (0, ty) if ty >= 0 else (-ty, 0)
    xs, xd = (0, tx) if tx >= 0 else (-tx, 0)
    hh, ww = h - abs(ty), w - abs(tx)
    if hh > 0 and ww > 0:
        out[yd:yd + hh, xd:xd + ww] = image[ys:ys + hh, xs:xs + ww]
    return out


def _shift_axis(x: np.ndarray, shift: float, axis: int) -> np.ndarray:
    """Linear-interpolated shift along ``axis`` with zero fill: ``out[i] = x[i - shift]``."""
    n = x.shape[axis]
    base = math.floor(shift)
    frac = shift - base
    out = np.zeros_like(x)

    def shifted(k: int) -> np.ndarray:
        res = np.zeros_like(x)
        if abs(k) >= n:
            return res
        src = [slice(None)] * x.ndim
        dst = [slice(None)] * x.ndim
        if k >= 0:
            src[axis], dst[axis] = slice(0, n - k), slice(k, n)
        else:
            src[axis], dst[axis] = slice(-k, n), slice(0, n + k)
        res[tuple(dst)] = x[tuple(src)]
        return res

    out += (1.0 - frac) * shifted(base)
    if frac > 0:
        out += frac * shifted(base + 1)
    return out


def translate_maps(maps: np.ndarray, tx: float, ty: float, image_size: tuple[int, int]) -> np.ndarray:
    """Shift ``maps (56, h, w)`` by ``(tx, ty)`` pixels of an image of ``image_size (H, W)``."""
    h, w = maps.shape[-2:]
    out = maps
    if tx:
        out = _shift_axis(out, tx * w / image_size[1], axis=-1)
    if ty:
        out = _shift_axis(out, ty * h / image_size[0], axis=-2)
    return out


def pad_crop_pair(image: np.ndarray, maps: np.ndarray | None, pad: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Zero-pad by ``pad`` and crop back at a random offset, image and maps alike."""
    if pad <= 0:
        return image, maps
    tx, ty = int(rng.integers(-pad, pad + 1)), int(rng.integers(-pad, pad + 1))
    out_maps = translate_maps(maps, tx, ty, image.shape[:2]) if maps is not None else None
    return translate_image(image, tx, ty), out_maps


ERASING_FILLS = ("noise", "mean")


def random_erase(image: np.ndarray, rng: np.random.Generator, area: tuple[float, float] = (0.02, 0.4),
                 aspect: tuple[float, float] = (0.3, 3.3), attempts: int = 10, fill: str = "noise") -> np.ndarray:
    """Erase one rectangle of a normalised ``(3, H, W)`` float image in place: with N(0, 1) values
    (``fill="noise"``) or with 0, the mean colour in normalised units (``fill="mean"``). The
    random draws (rectangle and noise) are the same for both fills up to the fill values."""
    if fill not in ERASING_FILLS:
        raise ValueError(f"unknown erasing fill {fill!r}; use 'noise' or 'mean'")
    _, h, w = image.shape
    for _ in range(attempts):
        target = rng.uniform(*area) * h * w
        ratio = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
        eh, ew = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
        if 0 < eh < h and 0 < ew < w:
            y, x = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
            noise = rng.standard_normal((image.shape[0], eh, ew)).astype(image.dtype)
            image[:, y:y + eh, x:x + ew] = noise if fill == "noise" else 0.0
            break
    return image
