"""Person crops on the host (numpy frames): OpenCV for the image, small matrix products for the maps.

One thread, no torch. The image crop of a region is one OpenCV affine warp of the frame (bilinear,
constant border = the pad value) in 4 channels (OpenCV's vectorised path; 3-channel warps are
about 2.5 times slower), positions quantised to 1/32 pixel and values rounded to grey levels as
OpenCV does; with a :class:`~spot_edge.preprocessing.PreprocessSpec` each crop is split into
planes and normalised straight into the ``(N, 3, H, W)`` float32 network input (one
``addWeighted`` per channel: ``x / (255 std) - mean / std``). A region shrunk by more than 1.5x is
warped at k times the output size and box-averaged (``INTER_AREA`` by an integer factor).

The map crop is separable: for each axis an ``(n_out, n_read)`` matrix of bilinear weights over the
map rows (columns) the region reads (zero outside the maps, k sub-samples averaged), so all 56
maps of all people are two batched matrix products on the map blocks under the regions: exactly
what ``grid_sample`` computes (up to float32 rounding), without its per-output-pixel work.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.lib.stride_tricks import as_strided

from spot_edge.pose.skeleton import NUM_KEYPOINTS, NUM_MAPS
from spot_edge.preprocessing import PreprocessSpec

MAX_SUPERSAMPLE = 4


def supersample_factor(shrink: float, max_supersample: int = MAX_SUPERSAMPLE) -> int:
    """Sub-samples per output pixel along an axis shrunk ``shrink`` times (1 up to 1.5x)."""
    return int(min(max(math.ceil(shrink - 0.5), 1), max_supersample))


def axis_weights(lo: np.ndarray, hi: np.ndarray, n_out: int, n_in: int, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear weights for ``n_out`` output pixels over each source interval ``[lo, hi)`` ``(N,)``
    (edges; source pixel ``i`` covers ``[i, i + 1)``, ``n_in`` of them), each output the mean of
    ``k`` sub-samples, taps outside the source weighing 0: ``(start (N,), weights (N, n_out,
    width) float32)`` over the source pixels ``start .. start + width - 1`` (one ``width`` for
    all: the widest any interval reads)."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    n, m = len(lo), n_out * k
    u = lo[:, None] + (np.arange(m) + 0.5) * ((hi - lo) / m)[:, None] - 0.5  # sample positions, pixel centres
    i0 = np.floor(u).astype(np.int64)
    frac = u - i0
    ok0, ok1 = (i0 >= 0) & (i0 < n_in), (i0 >= -1) & (i0 < n_in - 1)
    first = np.where(ok0, i0, np.where(ok1, i0 + 1, n_in)).min(axis=1)
    last = np.where(ok1, i0 + 1, np.where(ok0, i0, -1)).max(axis=1)
    reads = last >= first
    first, last = np.where(reads, first, 0), np.where(reads, last, 0)
    width = int((last - first).max()) + 1
    start = np.minimum(first, n_in - width)
    weights = np.zeros((n, m, width))
    item, row = np.arange(n)[:, None], np.arange(m)[None, :]
    col = i0 - start[:, None]
    weights[item, row, np.clip(col, 0, width - 1)] += np.where(ok0, 1.0 - frac, 0.0)  # one tap per (item, row)
    weights[item, row, np.clip(col + 1, 0, width - 1)] += np.where(ok1, frac, 0.0)
    return start, weights.reshape(n, n_out, k, width).mean(axis=2).astype(np.float32)


def _row_major_blocks(maps: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Read-only view ``(h - rows + 1, w - cols + 1, rows, 56, cols)`` of every block of ``(56, h, w)``
    maps, rows before maps (indexing it copies the blocks in that order)."""
    c, h, w = maps.shape
    s0, s1, s2 = maps.strides
    return as_strided(maps, (h - rows + 1, w - cols + 1, rows, c, cols), (s1, s2, s1, s0, s2), writeable=False)


def map_crops(maps: np.ndarray, regions: np.ndarray, stride: tuple[float, float], out_hw: tuple[int, int],
              clamp: bool = True) -> np.ndarray:
    """Crops ``(N, 56, h, w)`` float32 of ``maps`` ``(56, h_m, w_m)`` at ``regions`` ``(N, 4)``
    (frame pixels; the maps at ``stride = (sy, sx)``), clamped to OpenPose's ranges first.

    All people at once: per axis the weights over the widest window any region reads, the map
    blocks under the windows, then two batched products (rows, then columns)."""
    out_h, out_w = out_hw
    sy, sx = stride
    maps = np.ascontiguousarray(maps, dtype=np.float32)
    r = np.asarray(regions, np.float64).reshape(-1, 4)
    out = np.zeros((len(r), NUM_MAPS, out_h, out_w), np.float32)
    if not len(r):
        return out
    factors = np.array([[supersample_factor((y1 - y0) / sy / out_h), supersample_factor((x1 - x0) / sx / out_w)]
                        for x0, y0, x1, y1 in r])
    for ky, kx in {tuple(f) for f in factors.tolist()}:
        sel = np.flatnonzero((factors[:, 0] == ky) & (factors[:, 1] == kx))
        n = len(sel)
        ry, wy = axis_weights(r[sel, 1] / sy, r[sel, 3] / sy, out_h, maps.shape[1], ky)
        rx, wx = axis_weights(r[sel, 0] / sx, r[sel, 2] / sx, out_w, maps.shape[2], kx)
        rows, cols = wy.shape[2], wx.shape[2]
        blocks = _row_major_blocks(maps, rows, cols)[ry, rx]  # (n, rows, 56, cols)
        if clamp:
            np.clip(blocks[:, :, :NUM_KEYPOINTS], 0.0, 1.0, out=blocks[:, :, :NUM_KEYPOINTS])
            np.clip(blocks[:, :, NUM_KEYPOINTS:], -1.0, 1.0, out=blocks[:, :, NUM_KEYPOINTS:])
        along_y = wy @ blocks.reshape(n, rows, NUM_MAPS * cols)  # (n, out_h, 56 cols)
        both = along_y.reshape(n, out_h * NUM_MAPS, cols) @ wx.transpose(0, 2, 1)  # (n, out_h 56, out_w)
        out[sel] = both.reshape(n, out_h, NUM_MAPS, out_w).transpose(0, 2, 1, 3)
    return out


def _source(frame: np.ndarray, regions: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The part of ``frame`` the regions read (1 pixel of margin), as 4-channel uint8, and its
    top-left corner ``(x, y)`` in the frame."""
    h, w = frame.shape[:2]
    x_lo = min(max(int(np.floor(regions[:, 0].min())) - 1, 0), w - 1)
    y_lo = min(max(int(np.floor(regions[:, 1].min())) - 1, 0), h - 1)
    x_hi = max(min(int(np.ceil(regions[:, 2].max())) + 1, w), x_lo + 1)
    y_hi = max(min(int(np.ceil(regions[:, 3].max())) + 1, h), y_lo + 1)
    return cv2.cvtColor(frame[y_lo:y_hi, x_lo:x_hi], cv2.COLOR_BGR2BGRA), x_lo, y_lo


def image_crops(frame: np.ndarray, regions: np.ndarray, out_hw: tuple[int, int], pad_value: float = 0.0,
                preprocessing: PreprocessSpec | None = None, frame_channel_order: str = "BGR") -> np.ndarray:
    """Crops of ``frame`` ``(H, W, 3)`` uint8 (other dtypes are rounded to uint8 first) at
    ``regions`` ``(N, 4)``: ``(N, h, w, 3)`` uint8 in the frame's channel order, or with
    ``preprocessing`` the normalised network input ``(N, 3, h, w)`` float32 (sampled at
    ``out_hw``). Outside the frame: ``pad_value`` (rounded to a grey level)."""
    if frame_channel_order not in ("BGR", "RGB"):
        raise ValueError(f"frame_channel_order must be 'BGR' or 'RGB', got {frame_channel_order!r}")
    out_h, out_w = out_hw
    n = len(regions)
    if preprocessing is None:
        out = np.empty((n, out_h, out_w, 3), np.uint8)
    else:
        out = np.empty((n, 3, out_h, out_w), np.float32)
        # output channel c reads frame channel order[c]; x -> x / (255 std) - mean / std
        order = [2, 1, 0] if frame_channel_order != preprocessing.channel_order else [0, 1, 2]
        scale = [1.0 / (255.0 * sd) for sd in preprocessing.std]
        offset = [-m / sd for m, sd in zip(preprocessing.mean, preprocessing.std)]
    if n == 0:
        return out
    if frame.dtype != np.uint8:
        frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    src, ox, oy = _source(np.ascontiguousarray(frame), regions)
    pad = float(np.clip(np.rint(pad_value), 0, 255))
    border = (pad, pad, pad, 0.0)
    crop = np.empty((out_h, out_w, 4), np.uint8)
    planes = [np.empty((out_h, out_w), np.uint8) for _ in range(4)]  # reused: no allocation per person
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(regions, np.float64)):
        ky, kx = supersample_factor((y1 - y0) / out_h), supersample_factor((x1 - x0) / out_w)
        sx, sy = (x1 - x0) / (out_w * kx), (y1 - y0) / (out_h * ky)  # source pixels per sampled pixel
        affine = np.array([[sx, 0.0, x0 - ox + 0.5 * sx - 0.5], [0.0, sy, y0 - oy + 0.5 * sy - 0.5]])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        if kx == ky == 1:
            cv2.warpAffine(src, affine, (out_w, out_h), dst=crop, flags=flags, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=border)
        else:
            fine = cv2.warpAffine(src, affine, (out_w * kx, out_h * ky), flags=flags,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=border)
            cv2.resize(fine, (out_w, out_h), dst=crop, interpolation=cv2.INTER_AREA)  # k x k box means
        if preprocessing is None:
            cv2.cvtColor(crop, cv2.COLOR_BGRA2BGR, dst=out[i])
        else:
            cv2.split(crop, planes)
            for c, k in enumerate(order):
                cv2.addWeighted(planes[k], scale[c], planes[k], 0.0, offset[c], dst=out[i, c], dtype=cv2.CV_32F)
    return out


__all__ = ["MAX_SUPERSAMPLE", "supersample_factor", "axis_weights", "map_crops", "image_crops"]
