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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spot_edge.pose.resample import MapGeometry, window

COARSE_FRACTION = 0.7  # coarse candidates must exceed this fraction of the peak threshold
TIE_MARGIN = 1e-5  # float32 windows keep pixels within this of passing; float64 decides


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
        return np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)

    def of_part(self, k: int) -> slice:
        start = int(self.starts[k])
        return slice(start, start + int(self.counts[k]))

    def __len__(self) -> int:
        return int(self.part.shape[0])

    @classmethod
    def empty(cls, num_parts: int) -> "Peaks":
        return cls(np.zeros(0, np.int64), np.zeros((0, 2), np.int64), np.zeros((0, 2)), np.zeros(0),
                   np.zeros(num_parts, np.int64))


def coarse_candidates(maps: np.ndarray, threshold: float, max_candidates: int,
                      cut_rows: tuple[int, ...] = (), cut_cols: tuple[int, ...] = ()) -> tuple[np.ndarray, ...]:
    """Map pixels ``>=`` their 4 neighbours and ``> threshold``: ``(part, i, j)`` int arrays,
    at most ``max_candidates`` per map (the strongest).

    ``cut_rows`` / ``cut_cols``: map rows / columns where the frame ends inside the maps (padding
    beyond): there the frame's border pixel can hold a peak of a blob whose maximum lies in the
    padding, so pixels that are maxima *along* such a row (column) are candidates too.
    """
    k = maps.shape[0]
    ok = maps > threshold
    ok[:, 1:, :] &= maps[:, 1:, :] >= maps[:, :-1, :]
    ok[:, :-1, :] &= maps[:, :-1, :] >= maps[:, 1:, :]
    ok[:, :, 1:] &= maps[:, :, 1:] >= maps[:, :, :-1]
    ok[:, :, :-1] &= maps[:, :, :-1] >= maps[:, :, 1:]
    for r in cut_rows:
        line = maps[:, r, :]
        along = line > threshold
        along[:, 1:] &= line[:, 1:] >= line[:, :-1]
        along[:, :-1] &= line[:, :-1] >= line[:, 1:]
        ok[:, r, :] |= along
    for c in cut_cols:
        line = maps[:, :, c]
        along = line > threshold
        along[:, 1:] &= line[:, 1:] >= line[:, :-1]
        along[:, :-1] &= line[:, :-1] >= line[:, 1:]
        ok[:, :, c] |= along
    part, i, j = np.nonzero(ok)
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


def blurred_windows(maps: np.ndarray, part: np.ndarray, centre_y: np.ndarray, centre_x: np.ndarray,
                    geometry: MapGeometry, half: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blurred upsampled map (float32) on the ``(2 half + 1)^2`` output pixels around each
    centre (output pixels, inside the frame).

    Returns ``(S, y, x)``: ``S`` ``(n, W, W)`` (0 outside the frame, as the original's neighbour
    test sees it), ``y``, ``x`` ``(n, W)`` the output pixels of the window's rows and columns
    (possibly outside the frame).
    """
    wins = [window(geometry, axis, 1, half) for axis in (0, 1)]
    (wy, wx), (cy, cx) = wins, (centre_y, centre_x)
    patch = maps[part[:, None, None], wy.lo[cy][:, None, None] + np.arange(wy.patch)[None, :, None],
                 wx.lo[cx][:, None, None] + np.arange(wx.patch)[None, None, :]]
    s = wy.kernels[cy] @ patch.astype(np.float32, copy=False) @ wx.kernels[cx].transpose(0, 2, 1)
    return s, cy[:, None] + wy.offsets, cx[:, None] + wx.offsets


def window_peaks(s: np.ndarray, y: np.ndarray, x: np.ndarray, geometry: MapGeometry,
                 threshold: float) -> tuple[np.ndarray, ...]:
    """Pixels of each window that pass the original's peak test up to :data:`TIE_MARGIN` (blurred
    value >= its 4 neighbours and > threshold, in the frame): ``(part-window, y, x)``; the
    survivors are re-tested exactly by :func:`exact_peaks`."""
    c = s[:, 1:-1, 1:-1] + np.float32(TIE_MARGIN)
    ok = c > threshold
    scratch = np.empty_like(ok)
    for nb in (s[:, :-2, 1:-1], s[:, 2:, 1:-1], s[:, 1:-1, :-2], s[:, 1:-1, 2:]):
        ok &= np.greater_equal(c, nb, out=scratch)
    if threshold <= TIE_MARGIN:  # outside the frame S is 0, which only such a threshold lets through
        ho, wo = geometry.output_size
        ok &= (((y[:, 1:-1] >= 0) & (y[:, 1:-1] < ho))[:, :, None]
               & ((x[:, 1:-1] >= 0) & (x[:, 1:-1] < wo))[:, None, :])
    n, wy, wx = np.nonzero(ok)
    return n, y[n, wy + 1], x[n, wx + 1]


def tap_indices(geometry: MapGeometry, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the upsampled map at output pixels ``(y, x)`` reads the map: flat indices
    ``(N, Ty, Tx)`` into one ``(h, w)`` channel and the weights ``(N, Ty)``, ``(N, Tx)``."""
    ay, ax = geometry.axis(0), geometry.axis(1)
    w = geometry.map_size[1]
    rows = ay.tap_start[y][:, None] + np.arange(ay.taps.shape[1])
    cols = ax.tap_start[x][:, None] + np.arange(ax.taps.shape[1])
    return rows[:, :, None] * w + cols[:, None, :], ay.taps[y], ax.taps[x]


def interpolate(maps: np.ndarray, channel: np.ndarray, flat: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """``(N,)`` float64 values of ``maps[channel]`` read through :func:`tap_indices`."""
    h, w = maps.shape[1:]
    vals = np.take(maps.reshape(-1), flat + (np.asarray(channel) * (h * w))[:, None, None]).astype(np.float64)
    return np.einsum("nij,ni,nj->n", vals, wy, wx, optimize=False)


def upsampled_values(maps: np.ndarray, channel: np.ndarray, y: np.ndarray, x: np.ndarray,
                     geometry: MapGeometry) -> np.ndarray:
    """The upsampled map ``channel[n]`` at output pixel ``(y[n], x[n])`` (in the frame): ``(N,)``."""
    return interpolate(maps, channel, *tap_indices(geometry, y, x))


def parabola_offset(minus: np.ndarray, centre: np.ndarray, plus: np.ndarray) -> np.ndarray:
    """Vertex of the parabola through three equally spaced values, clipped to [-0.5, 0.5]."""
    denom = minus - 2.0 * centre + plus
    safe = np.where(denom < 0, denom, -1.0)
    return np.where(denom < 0, np.clip(0.5 * (minus - plus) / safe, -0.5, 0.5), 0.0)


NEIGHBOURS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))  # (dy, dx): the pixel, then its 4 neighbours


def blurred_values(maps: np.ndarray, part: np.ndarray, y: np.ndarray, x: np.ndarray,
                   geometry: MapGeometry) -> np.ndarray:
    """The blurred upsampled map ``part[n]`` at output pixel ``(y[n], x[n])`` in float64, 0 outside
    the frame: ``(N,)``."""
    ho, wo = geometry.output_size
    ay, ax = geometry.axis(0), geometry.axis(1)
    inside = (y >= 0) & (y < ho) & (x >= 0) & (x < wo)
    yc, xc = np.clip(y, 0, ho - 1), np.clip(x, 0, wo - 1)
    h, w = maps.shape[1:]
    rows = ay.smooth_start[yc][:, None] + np.arange(ay.smooth_taps.shape[1])
    cols = ax.smooth_start[xc][:, None] + np.arange(ax.smooth_taps.shape[1])
    flat = (part[:, None, None] * h + rows[:, :, None]) * w + cols[:, None, :]
    vals = np.take(maps.reshape(-1), flat).astype(np.float64)
    out = np.einsum("nij,ni,nj->n", vals, ay.smooth_taps[yc], ax.smooth_taps[xc], optimize=False)
    return np.where(inside, out, 0.0)


def exact_peaks(maps: np.ndarray, part: np.ndarray, y: np.ndarray, x: np.ndarray, geometry: MapGeometry,
                threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The original's peak test in float64 at pixels ``(part, y, x)``: ``(passes (N,), values
    (N, 5))`` with the blurred values at the pixel and its neighbours (:data:`NEIGHBOURS` order)."""
    dy, dx = np.asarray(NEIGHBOURS).T
    values = blurred_values(maps, np.repeat(part, len(dy)), (y[:, None] + dy).ravel(), (x[:, None] + dx).ravel(),
                            geometry).reshape(-1, len(dy))
    passes = (values[:, 0] > threshold) & (values[:, :1] >= values[:, 1:]).all(axis=1)
    return passes, values


def find_peaks(keypoint_maps: np.ndarray, geometry: MapGeometry, threshold: float = 0.1,
               max_candidates: int = 128, subpixel: bool = True) -> Peaks:
    """Keypoint candidates of ``keypoint_maps`` ``(K, h, w)`` (see the module docstring)."""
    maps = np.ascontiguousarray(keypoint_maps, dtype=np.float32)
    k = maps.shape[0]
    ho, wo = geometry.output_size
    part, i, j = coarse_candidates(maps, COARSE_FRACTION * threshold, max_candidates, *cut_lines(geometry))
    if len(part) == 0:
        return Peaks.empty(k)
    centres = [np.clip(np.rint(geometry.to_output(c, axis)).astype(np.int64), 0, geometry.output_size[axis] - 1)
               for axis, c in enumerate((i, j))]
    half = max(geometry.search_radius(axis) for axis in (0, 1)) + 1
    s, ywin, xwin = blurred_windows(maps, part, centres[0], centres[1], geometry, half)
    n, py, px = window_peaks(s, ywin, xwin, geometry, threshold)
    key = np.unique((part[n] * ho + py) * wo + px)  # sorted by (part, y, x); overlapping windows once
    pk, rest = np.divmod(key, ho * wo)
    py, px = np.divmod(rest, wo)
    passes, values = exact_peaks(maps, pk, py, px, geometry, threshold)
    pk, py, px, values = pk[passes], py[passes], px[passes], values[passes]
    if len(pk) == 0:
        return Peaks.empty(k)
    score = upsampled_values(maps, pk, py, px, geometry)
    offset = np.zeros((len(pk), 2))
    if subpixel:  # parabola through the blurred values; none at the frame border
        offset[:, 0] = np.where((px > 0) & (px < wo - 1), parabola_offset(values[:, 3], values[:, 0], values[:, 4]), 0)
        offset[:, 1] = np.where((py > 0) & (py < ho - 1), parabola_offset(values[:, 1], values[:, 0], values[:, 2]), 0)
    return Peaks(part=pk.astype(np.int64), xy=np.stack([px, py], axis=1).astype(np.int64), offset=offset,
                 score=score, counts=np.bincount(pk, minlength=k).astype(np.int64))


__all__ = ["COARSE_FRACTION", "TIE_MARGIN", "Peaks", "coarse_candidates", "cut_lines", "blurred_windows",
           "window_peaks",
           "tap_indices", "interpolate", "upsampled_values", "parabola_offset", "blurred_values", "exact_peaks",
           "find_peaks"]
