"""Keypoint candidates as the original finds them, computed from the stride-8 maps (numpy).

The original (``docs/pose-maps.md``) upsamples each keypoint map to the frame (bicubic), blurs it
(Gaussian, sigma 3 px) and keeps every pixel that is >= its four neighbours (0 outside the frame)
and above the threshold; the keypoint is that pixel and its confidence the *unblurred* upsampled
map there. We find the same pixels without building the full-resolution maps:

1. coarse candidates: map pixels >= their 4 neighbours and above ``COARSE_FRACTION x threshold``
   (bicubic interpolation of non-negative values overshoots them by at most 1.19 per axis, 1.41
   in all), plus, where the frame ends inside the maps (padding), the maxima along the map rows
   and columns at that border; at most ``max_candidates`` strongest per keypoint type;
2. around each, the blurred map on every frame pixel within
   :data:`~spot_edge.pose.resample.SEARCH_MAP_PIXELS` map pixels (``K_y P K_x^T`` for a patch
   ``P`` of the map, :mod:`spot_edge.pose.resample`, float32), where the original's peak test is
   applied with a small tie margin. The reach matters: bicubic ringing puts a second maximum up
   to ~2.4 map pixels from the map's own maximum when two people's joints merge into one blob,
   and the original's 4-neighbour test also accepts points on diagonal ridges (on 63,000
   reference peaks of generated scenes, a reach of 1.5 map pixels missed 10, 2.5 none);
3. the pixels that pass are re-tested exactly (float64, 5 blurred values each); peaks found by
   two windows are kept once;
4. the confidence: the upsampled map at the peak (a 4 x 4 neighbourhood of the map);
5. a sub-pixel offset from a parabola through the blurred values at the peak and its neighbours
   (within +-0.5 px; the original's keypoints are the integer pixels).

Speed (one thread): the 4-neighbour maxima of steps 1 and 2 are one OpenCV dilation with a
cross-shaped kernel over all maps (or all windows) stacked into one image; steps 3-5 read one
small map block per peak through per-geometry operator rows (:class:`PeakOperators`, cached), so
the float64 values of the peak, its 4 neighbours and the confidence are two batched products.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.lib.stride_tricks import as_strided

from spot_edge.pose.resample import MapGeometry, Window, window

COARSE_FRACTION = 0.7  # coarse candidates must exceed this fraction of the peak threshold
TIE_MARGIN = 1e-5  # float32 windows keep pixels within this of passing; float64 decides
WINDOW_CHUNK_PIXELS = 1 << 18  # window pixels searched at once (~1 MB of float32: larger batches fall out of cache)
NEIGHBOURS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))  # (dy, dx): the pixel, then its 4 neighbours
#: the 4-neighbourhood without the centre: a dilation with it is the largest neighbour
CROSS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.uint8)


@dataclass
class Peaks:
    """Keypoint candidates of one image, sorted by (part, y, x) like the original's.

    Attributes:
        part: ``(N,)`` keypoint type of each candidate.
        xy: ``(N, 2)`` int64 peak pixel (x, y) in output pixels (the original's keypoint).
        offset: ``(N, 2)`` float64 sub-pixel refinement, each in [-0.5, 0.5].
        score: ``(N,)`` float64 upsampled keypoint map at the peak pixel.
        counts: ``(K,)`` number of candidates per keypoint type.
    """

    part: np.ndarray
    xy: np.ndarray
    offset: np.ndarray
    score: np.ndarray
    counts: np.ndarray

    @property
    def starts(self) -> np.ndarray:
        """``(K,)`` index of each keypoint type's first candidate."""
        starts = np.zeros(len(self.counts), np.int64)
        np.cumsum(self.counts[:-1], out=starts[1:])
        return starts

    def of_part(self, k: int) -> slice:
        start = int(self.starts[k])
        return slice(start, start + int(self.counts[k]))

    def __len__(self) -> int:
        return int(self.part.shape[0])

    @classmethod
    def empty(cls, num_parts: int) -> "Peaks":
        return cls(np.zeros(0, np.int64), np.zeros((0, 2), np.int64), np.zeros((0, 2)), np.zeros(0),
                   np.zeros(num_parts, np.int64))


def neighbour_maxima(stacked: np.ndarray) -> np.ndarray:
    """The largest of the 4 neighbours of every pixel of a 2-D float32 image (``-inf``-like
    beyond its border): one OpenCV dilation with :data:`CROSS`."""
    return cv2.dilate(stacked, CROSS)


def _maxima_along(line: np.ndarray, threshold: float) -> np.ndarray:
    """``(K, n)`` True where a value of each row is ``>=`` its 2 neighbours and ``> threshold``."""
    along = line > threshold
    along[:, 1:] &= line[:, 1:] >= line[:, :-1]
    along[:, :-1] &= line[:, :-1] >= line[:, 1:]
    return along


def coarse_candidates(maps: np.ndarray, threshold: float, max_candidates: int,
                      cut_rows: tuple[int, ...] = (), cut_cols: tuple[int, ...] = ()) -> tuple[np.ndarray, ...]:
    """Map pixels ``>=`` their 4 neighbours and ``> threshold``: ``(part, i, j)`` int arrays,
    at most ``max_candidates`` per map (the strongest).

    ``cut_rows`` / ``cut_cols``: map rows / columns where the frame ends inside the maps (padding
    beyond): there the frame's border pixel can hold a peak of a blob whose maximum lies in the
    padding, so pixels that are maxima *along* such a row (column) are candidates too.
    """
    k, h, w = maps.shape
    stacked = np.empty((k, h + 1, w), np.float32)  # one image, maps separated by a -inf row
    stacked[:, :h] = maps
    stacked[:, h] = -np.inf
    flat = stacked.reshape(-1, w)
    ok = ((flat >= neighbour_maxima(flat)) & (flat > threshold)).reshape(k, h + 1, w)
    ok[:, h] = False
    for r in cut_rows:
        ok[:, r, :] |= _maxima_along(maps[:, r, :], threshold)
    for c in cut_cols:
        ok[:, :h, c] |= _maxima_along(maps[:, :, c], threshold)
    part, rest = np.divmod(np.flatnonzero(ok), (h + 1) * w)  # (the separator rows hold nothing)
    i, j = np.divmod(rest, w)
    if len(part):
        counts = np.bincount(part, minlength=k)
        if counts.max() > max_candidates:
            value = maps[part, i, j]
            order = np.lexsort((-value, part))  # by part, strongest first
            rank = np.empty_like(order)
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            rank[order] = np.arange(len(order)) - starts[part[order]]
            keep = rank < max_candidates
            part, i, j = part[keep], i[keep], j[keep]
    return part, i, j


def cut_lines(geometry: MapGeometry) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Map rows and columns next to where the frame ends inside the maps (right/bottom padding)."""
    lines = []
    for axis in (0, 1):
        if geometry.valid_size[axis] >= geometry.image_size[axis]:
            lines.append(())
            continue
        edge = float(geometry.to_map(np.array([geometry.output_size[axis] - 1]), axis)[0])
        n = geometry.map_size[axis]
        lines.append(tuple(sorted({min(max(int(np.floor(edge)) + d, 0), n - 1) for d in (0, 1)})))
    return lines[0], lines[1]


@dataclass(frozen=True)
class PeakOperators:
    """Per-geometry constants of the peak search (built once per geometry, cached).

    Attributes:
        half: window half-size (output pixels): the search reach plus the neighbour ring.
        centre: per axis ``(n_map,)`` the output pixel nearest to each map pixel's centre.
        windows: per axis the :class:`~spot_edge.pose.resample.Window` of the search.
        cuts: :func:`cut_lines` of the geometry.
        block_start: per axis ``(n_out,)`` first map index of the block read for the exact values
            at output pixel ``o``.
        block_rows: per axis ``(n_out, 4, B)`` float64 operator rows over that block: the
            blurred-map rows of ``o - 1``, ``o``, ``o + 1`` (zero outside the frame) and the
            upsampled-map row of ``o`` (the same banded coefficients as
            :attr:`~spot_edge.pose.resample.AxisOperator.smooth_taps` / ``taps``).
    """

    half: int
    centre: tuple[np.ndarray, np.ndarray]
    windows: tuple[Window, Window]
    cuts: tuple[tuple[int, ...], tuple[int, ...]]
    block_start: tuple[np.ndarray, np.ndarray]
    block_rows: tuple[np.ndarray, np.ndarray]


def _block_rows(geometry: MapGeometry, axis: int) -> tuple[np.ndarray, np.ndarray]:
    op = geometry.axis(axis)
    n_out, n_map = op.n_out, op.n_map
    ts, ta = op.smooth_taps.shape[1], op.taps.shape[1]
    o = np.arange(n_out)
    before, after = np.maximum(o - 1, 0), np.minimum(o + 1, n_out - 1)
    lo = np.minimum(op.smooth_start[before], op.tap_start)
    hi = np.maximum(op.smooth_start[after] + ts, op.tap_start + ta)
    width = int(min((hi - lo).max(), n_map))
    start = np.clip(lo, 0, n_map - width)
    rows = np.zeros((n_out, 4, width))
    kinds = ((o - 1, op.smooth_start, op.smooth_taps), (o, op.smooth_start, op.smooth_taps),
             (o + 1, op.smooth_start, op.smooth_taps), (o, op.tap_start, op.taps))
    for r, (src, band_start, taps) in enumerate(kinds):
        inside = (src >= 0) & (src < n_out)
        dst, src = o[inside], src[inside]
        cols = band_start[src][:, None] + np.arange(taps.shape[1]) - start[dst][:, None]
        rows[dst[:, None], r, cols] = taps[src]
    for arr in (start, rows):
        arr.setflags(write=False)
    return start, rows


@functools.lru_cache(maxsize=16)
def peak_operators(geometry: MapGeometry) -> PeakOperators:
    """Cached :class:`PeakOperators` of ``geometry``."""
    half = max(geometry.search_radius(axis) for axis in (0, 1)) + 1
    centre = tuple(np.clip(np.rint(geometry.to_output(np.arange(geometry.map_size[axis]), axis)).astype(np.int64),
                           0, geometry.output_size[axis] - 1) for axis in (0, 1))
    blocks = [_block_rows(geometry, axis) for axis in (0, 1)]
    for arr in centre:
        arr.setflags(write=False)
    return PeakOperators(half=half, centre=centre, windows=(window(geometry, 0, 1, half), window(geometry, 1, 1, half)),
                         cuts=cut_lines(geometry), block_start=(blocks[0][0], blocks[1][0]),
                         block_rows=(blocks[0][1], blocks[1][1]))


def gather_blocks(maps: np.ndarray, part: np.ndarray, row0: np.ndarray, col0: np.ndarray, rows: int,
                  cols: int) -> np.ndarray:
    """The blocks ``maps[part, row0:row0 + rows, col0:col0 + cols]`` of ``(K, h, w)`` maps:
    ``(n, rows, cols)`` (the blocks lie inside the maps)."""
    return block_view(maps, rows, cols)[part, row0, col0]


def block_view(maps: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Read-only view ``(K, h - rows + 1, w - cols + 1, rows, cols)`` of every ``rows x cols`` block
    of ``(K, h, w)`` maps (``sliding_window_view`` without its per-call checks)."""
    k, h, w = maps.shape
    s0, s1, s2 = maps.strides
    return as_strided(maps, (k, h - rows + 1, w - cols + 1, rows, cols), (s0, s1, s2, s1, s2), writeable=False)


def blurred_windows(maps: np.ndarray, part: np.ndarray, centre_y: np.ndarray, centre_x: np.ndarray,
                    ops: PeakOperators) -> np.ndarray:
    """The blurred upsampled map (float32) on the ``W x W`` output pixels (``W = 2 half + 1``)
    around each centre (output pixels, inside the frame), 0 outside the frame (as the original's
    neighbour test sees it): ``(W, n W)``, the windows side by side (window ``k`` is
    ``[:, k W:(k + 1) W]``)."""
    wy, wx = ops.windows
    size, n = wy.size, len(part)
    patch = gather_blocks(maps, part, wy.lo[centre_y], wx.lo[centre_x], wy.patch, wx.patch)
    wide = np.empty((size, n * size), np.float32)
    np.matmul(wy.kernels[centre_y], patch @ wx.kernels[centre_x].transpose(0, 2, 1),
              out=wide.reshape(size, n, size).transpose(1, 0, 2))
    return wide


def window_peaks(s: np.ndarray, centre_y: np.ndarray, centre_x: np.ndarray, ops: PeakOperators,
                 geometry: MapGeometry, threshold: float) -> tuple[np.ndarray, ...]:
    """Pixels of the windows ``s`` (:func:`blurred_windows`) that pass the original's peak test
    up to :data:`TIE_MARGIN` (blurred value >= its 4 neighbours and > threshold, in the frame):
    ``(window, y, x)``; the survivors are re-tested exactly by :func:`exact_values`."""
    size = s.shape[0]
    c = s + np.float32(TIE_MARGIN)
    hit = np.flatnonzero((c > threshold) & (c >= neighbour_maxima(s)))
    r, col = np.divmod(hit, s.shape[1])
    win, q = np.divmod(col, size)
    ho, wo = geometry.output_size
    y = centre_y[win] + ops.windows[0].offsets[r]
    x = centre_x[win] + ops.windows[1].offsets[q]
    # the window's outer ring has no neighbours in the window; the frame's outside is never a peak
    keep = (r > 0) & (r < size - 1) & (q > 0) & (q < size - 1) & (y >= 0) & (y < ho) & (x >= 0) & (x < wo)
    return win[keep], y[keep], x[keep]


def exact_values(maps: np.ndarray, part: np.ndarray, y: np.ndarray, x: np.ndarray,
                 ops: PeakOperators) -> tuple[np.ndarray, np.ndarray]:
    """Float64 values at output pixels ``(part, y, x)`` (in the frame): the blurred map at the
    pixel and its 4 neighbours ``(N, 5)`` (:data:`NEIGHBOURS` order, 0 outside the frame) and the
    upsampled map at the pixel ``(N,)``."""
    (sy, sx), (ry, rx) = ops.block_start, ops.block_rows
    block = gather_blocks(maps, part, sy[y], sx[x], ry.shape[2], rx.shape[2]).astype(np.float64)
    out = ry[y] @ (block @ rx[x].transpose(0, 2, 1))  # (N, 4, 4)
    blurred = np.stack([out[:, 1, 1], out[:, 0, 1], out[:, 2, 1], out[:, 1, 0], out[:, 1, 2]], axis=1)
    return blurred, out[:, 3, 3]


def parabola_offset(minus: np.ndarray, centre: np.ndarray, plus: np.ndarray) -> np.ndarray:
    """Vertex of the parabola through three equally spaced values, clipped to [-0.5, 0.5]."""
    denom = minus - 2.0 * centre + plus
    safe = np.where(denom < 0, denom, -1.0)
    return np.where(denom < 0, np.clip(0.5 * (minus - plus) / safe, -0.5, 0.5), 0.0)


def find_peaks(keypoint_maps: np.ndarray, geometry: MapGeometry, threshold: float = 0.1,
               max_candidates: int = 128, subpixel: bool = True) -> Peaks:
    """Keypoint candidates of ``keypoint_maps`` ``(K, h, w)`` (see the module docstring)."""
    maps = np.ascontiguousarray(keypoint_maps, dtype=np.float32)
    k = maps.shape[0]
    ho, wo = geometry.output_size
    ops = peak_operators(geometry)
    part, i, j = coarse_candidates(maps, COARSE_FRACTION * threshold, max_candidates, *ops.cuts)
    if len(part) == 0:
        return Peaks.empty(k)
    cy, cx = ops.centre[0][i], ops.centre[1][j]
    keys = []
    chunk = max(1, WINDOW_CHUNK_PIXELS // ops.windows[0].size ** 2)
    for first in range(0, len(part), chunk):  # chunks: the windows' temporaries stay in cache
        sl = slice(first, first + chunk)
        win, py, px = window_peaks(blurred_windows(maps, part[sl], cy[sl], cx[sl], ops), cy[sl], cx[sl], ops,
                                   geometry, threshold)
        keys.append((part[sl][win] * ho + py) * wo + px)
    key = np.sort(np.concatenate(keys))  # by (part, y, x); overlapping windows once
    key = key[np.concatenate((key[:1] >= 0, key[1:] != key[:-1]))]
    pk, rest = np.divmod(key, ho * wo)
    py, px = np.divmod(rest, wo)
    values, score = exact_values(maps, pk, py, px, ops)
    passes = (values[:, 0] > threshold) & (values[:, :1] >= values[:, 1:]).all(axis=1)
    if not passes.all():
        pk, py, px, values, score = pk[passes], py[passes], px[passes], values[passes], score[passes]
    if len(pk) == 0:
        return Peaks.empty(k)
    offset = np.zeros((len(pk), 2))
    if subpixel:  # parabola through the blurred values; none at the frame border
        offset[:, 0] = np.where((px > 0) & (px < wo - 1), parabola_offset(values[:, 3], values[:, 0], values[:, 4]), 0)
        offset[:, 1] = np.where((py > 0) & (py < ho - 1), parabola_offset(values[:, 1], values[:, 0], values[:, 2]), 0)
    return Peaks(part=pk, xy=np.stack([px, py], axis=1), offset=offset, score=score,
                 counts=np.bincount(pk, minlength=k).astype(np.int64))


__all__ = ["COARSE_FRACTION", "TIE_MARGIN", "WINDOW_CHUNK_PIXELS", "NEIGHBOURS", "CROSS", "Peaks", "PeakOperators",
           "peak_operators", "neighbour_maxima", "coarse_candidates", "cut_lines", "block_view", "gather_blocks",
           "blurred_windows", "window_peaks", "exact_values", "parabola_offset", "find_peaks"]
