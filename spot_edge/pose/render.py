"""Render the 56 OpenPose maps from keypoints, at any resolution.

This is how keypoints from any detector, a dataset's annotations or the synthetic set become
SPOT's structure input (``docs/pose-maps.md``): 18 Gaussian keypoint maps and 38 PAF channels laid out as
in :mod:`spot_edge.pose.skeleton`.

Coordinates. Keypoints are in pixel coordinates of the source image (pixel centres at integer
positions). A map of ``out_size = (h, w)`` covers the same image, so map pixel ``(i, j)`` is
centred on image point ``((j + 0.5) * W_img / w - 0.5, (i + 0.5) * H_img / h - 0.5)``; at
stride 8 this is OpenPose's ``8 j + 3.5``. A horizontal mirror of the image
(``x -> W_img - 1 - x``) is exactly a left-right flip of the maps.
"""

from __future__ import annotations

import math

import numpy as np

from spot_edge.pose.skeleton import LIMBS, NUM_KEYPOINTS, NUM_MAPS, PAF_CHANNELS, PAF_OFFSET

DEFAULT_SIGMA = 7.0  # keypoint Gaussian std in image pixels (OpenPose COCO training value)
DEFAULT_PAF_WIDTH = 8.0  # PAF half-width in image pixels (OpenPose: 1 map pixel at stride 8)
MIN_SIGMA_MAP = 0.5  # floors, in map pixels, that keep thin structures visible at coarse maps
MIN_PAF_WIDTH_MAP = 1.0
GAUSSIAN_CUTOFF = 0.01  # OpenPose sets keypoint-map values below this to 0
MAX_MAP_PIXELS = 64_000_000  # per channel; anything larger is almost certainly a unit mistake


def _check_size(size, what: str) -> tuple[int, int]:
    try:
        h, w = (int(size[0]), int(size[1]))
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{what} must be a (height, width) pair of integers, got {size!r}") from exc
    if h <= 0 or w <= 0 or h * w > MAX_MAP_PIXELS:
        raise ValueError(f"{what} must be positive and at most {MAX_MAP_PIXELS} pixels, got {(h, w)}")
    return h, w


def as_keypoint_array(keypoints) -> np.ndarray:
    """Validate keypoints into a float64 ``(P, 18, 3)`` array (x, y, visibility).

    Accepts ``(18, 3)`` for one person and an empty sequence for none. Non-finite coordinates
    mark a keypoint absent.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.size == 0:
        return np.zeros((0, NUM_KEYPOINTS, 3))
    if kp.ndim == 2:
        kp = kp[None]
    if kp.ndim != 3 or kp.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(
            f"keypoints must have shape (P, {NUM_KEYPOINTS}, 3) = (x, y, visibility) per keypoint, "
            f"got {kp.shape}")
    kp = kp.copy()
    bad = ~np.isfinite(kp).all(axis=-1)
    kp[bad] = 0.0
    return kp


def render_pose_maps(
    keypoints,
    image_size: tuple[int, int],
    out_size: tuple[int, int],
    sigma: float = DEFAULT_SIGMA,
    paf_width: float = DEFAULT_PAF_WIDTH,
) -> np.ndarray:
    """Render ``(56, h, w)`` float32 pose maps from keypoints.

    Args:
        keypoints: ``(P, 18, 3)`` array of (x, y, visibility) in pixel coordinates of an image of
            ``image_size``; visibility <= 0 means absent. ``P = 0`` gives all-zero maps.
        image_size: ``(H_img, W_img)`` of the image the keypoints live in.
        out_size: ``(h, w)`` of the maps (any resolution; stride 8 is OpenPose's).
        sigma: keypoint Gaussian standard deviation in image pixels (floored at 0.5 map pixel).
        paf_width: half-width of a limb's PAF band in image pixels (floored at 1 map pixel). The
            band also extends ``paf_width`` beyond both keypoints, as OpenPose's box-shaped
            training label does.

    Returns:
        ``(56, h, w)`` float32: channels 0-17 Gaussian keypoint maps (max over people, values in
        [0, 1], below 0.01 set to 0), channels 18-55 the PAFs: on limb (a, b) the unit vector from
        a to b in map coordinates, averaged where several people's limbs overlap, in [-1, 1].
    """
    kp = as_keypoint_array(keypoints)
    img_h, img_w = _check_size(image_size, "image_size")
    h, w = _check_size(out_size, "out_size")
    if not (sigma > 0 and paf_width > 0):
        raise ValueError(f"sigma and paf_width must be positive, got {sigma}, {paf_width}")

    sx, sy = w / img_w, h / img_h
    xm = (kp[..., 0] + 0.5) * sx - 0.5  # (P, 18) map coordinates
    ym = (kp[..., 1] + 0.5) * sy - 0.5
    visible = kp[..., 2] > 0

    maps = np.zeros((NUM_MAPS, h, w), dtype=np.float32)
    _render_keypoints(maps, xm, ym, visible, max(sigma * sx, MIN_SIGMA_MAP), max(sigma * sy, MIN_SIGMA_MAP))
    _render_pafs(maps, xm, ym, visible, max(paf_width * math.sqrt(sx * sy), MIN_PAF_WIDTH_MAP))
    return maps


def _render_keypoints(maps, xm, ym, visible, sig_x: float, sig_y: float) -> None:
    """Gaussians, max over people, each evaluated on its own window (radius where it drops below
    the cut-off)."""
    h, w = maps.shape[1:]
    reach = math.sqrt(2.0 * math.log(1.0 / GAUSSIAN_CUTOFF))
    rx, ry = reach * sig_x, reach * sig_y
    for p, k in zip(*np.nonzero(visible)):
        cx, cy = xm[p, k], ym[p, k]
        x0, x1 = max(int(math.floor(cx - rx)), 0), min(int(math.ceil(cx + rx)) + 1, w)
        y0, y1 = max(int(math.floor(cy - ry)), 0), min(int(math.ceil(cy + ry)) + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue  # keypoint (with its Gaussian) entirely outside the map
        gx = np.exp(-0.5 * ((np.arange(x0, x1) - cx) / sig_x) ** 2)
        gy = np.exp(-0.5 * ((np.arange(y0, y1) - cy) / sig_y) ** 2)
        g = (gy[:, None] * gx[None, :]).astype(np.float32)
        g[g < GAUSSIAN_CUTOFF] = 0.0
        np.maximum(maps[k, y0:y1, x0:x1], g, out=maps[k, y0:y1, x0:x1])


def _render_pafs(maps, xm, ym, visible, width: float) -> None:
    """Unit vectors along each limb within a band of half-width ``width`` (map pixels)."""
    h, w = maps.shape[1:]
    count = np.zeros((h, w), dtype=np.float32)
    for limb, (a, b) in enumerate(LIMBS):
        people = np.nonzero(visible[:, a] & visible[:, b])[0]
        if people.size == 0:
            continue
        cx_ch, cy_ch = PAF_OFFSET + PAF_CHANNELS[limb][0], PAF_OFFSET + PAF_CHANNELS[limb][1]
        count[:] = 0.0
        for p in people:
            ax, ay, bx, by = xm[p, a], ym[p, a], xm[p, b], ym[p, b]
            length = math.hypot(bx - ax, by - ay)
            if length < 1e-6:
                continue  # a zero-length limb has no direction
            ux, uy = (bx - ax) / length, (by - ay) / length
            x0 = max(int(math.floor(min(ax, bx) - width)), 0)
            x1 = min(int(math.ceil(max(ax, bx) + width)) + 1, w)
            y0 = max(int(math.floor(min(ay, by) - width)), 0)
            y1 = min(int(math.ceil(max(ay, by) + width)) + 1, h)
            if x0 >= x1 or y0 >= y1:
                continue
            px = np.arange(x0, x1)[None, :] - ax
            py = np.arange(y0, y1)[:, None] - ay
            along = px * ux + py * uy
            across = np.abs(px * uy - py * ux)
            on = (along >= -width) & (along <= length + width) & (across <= width)
            maps[cx_ch, y0:y1, x0:x1] += on * np.float32(ux)
            maps[cy_ch, y0:y1, x0:x1] += on * np.float32(uy)
            count[y0:y1, x0:x1] += on
        covered = count > 0
        maps[cx_ch][covered] /= count[covered]
        maps[cy_ch][covered] /= count[covered]


def render_pose_maps_batch(keypoints_per_image, image_size, out_size, **kwargs) -> np.ndarray:
    """Render a batch: a sequence of ``(P_i, 18, 3)`` arrays -> ``(B, 56, h, w)`` float32."""
    return np.stack([render_pose_maps(kp, image_size, out_size, **kwargs) for kp in keypoints_per_image])


__all__ = ["render_pose_maps", "render_pose_maps_batch", "as_keypoint_array", "DEFAULT_SIGMA", "DEFAULT_PAF_WIDTH"]
