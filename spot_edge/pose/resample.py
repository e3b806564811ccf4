"""Pose maps -> image pixels: OpenPose's upsampling and smoothing as per-axis linear operators.

OpenPose reads its maps at image resolution (``docs/pose-maps.md``): the stride-8 maps are
resized with OpenCV's bicubic filter (``INTER_CUBIC``, a = -0.75, border pixels replicated) to the
padded network input, the padding is cut off, the result is resized (bicubic again) to the
original frame, and peaks are searched in that upsampled map after a Gaussian blur
(sigma = 3 image pixels, reflected borders).

Every one of those steps is linear and separable, so along one axis the whole chain is a matrix.
For a map ``M`` ``(h, w)``:

- upsampled map ``U = A_y M A_x^T`` (``A``: :attr:`AxisOperator.values`, ``(n_out, n_map)``),
- smoothed map ``S = K_y M K_x^T`` with ``K = G A`` (:attr:`AxisOperator.smooth`).

Both are banded, so a value of ``U`` costs a 4 x 4 neighbourhood of ``M`` and a window of
``S`` around a peak a small patch of ``M``: the parsers never build the full-resolution maps.
Operators are cached per geometry.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

CUBIC_A = -0.75  # OpenCV's bicubic coefficient
SMOOTH_SIGMA = 3.0  # the original's Gaussian blur before peak search, image pixels
SMOOTH_TRUNCATE = 4.0  # kernel radius = int(truncate * sigma + 0.5), as scipy.ndimage does
DEFAULT_STRIDE = 8
SEARCH_MAP_PIXELS = 2.5  # peak search reach around a map-resolution candidate, in map pixels


def cubic_weights(t: np.ndarray) -> np.ndarray:
    """Bicubic convolution weights ``(..., 4)`` of the taps at offsets -1, 0, 1, 2 for a fraction
    ``t`` in [0, 1) (Keys' kernel with a = -0.75, as OpenCV)."""
    t = np.asarray(t, dtype=np.float64)
    a = CUBIC_A
    u = t + 1.0
    w0 = ((a * u - 5 * a) * u + 8 * a) * u - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    v = 1.0 - t
    w2 = ((a + 2) * v - (a + 3)) * v * v + 1
    return np.stack([w0, w1, w2, 1.0 - w0 - w1 - w2], axis=-1)


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` matrix of a bicubic resize along one axis, as ``cv2.resize(INTER_CUBIC)``.

    Output pixel ``o`` reads source coordinate ``(o + 0.5) * n_in / n_out - 0.5`` (pixel centres);
    taps outside the source repeat its border pixel. ``n_in == n_out`` is the identity.
    """
    if n_in == n_out:
        return np.eye(n_in)
    o = np.arange(n_out)
    f = (o + 0.5) * (n_in / n_out) - 0.5
    s = np.floor(f)
    w = cubic_weights(f - s)
    mat = np.zeros((n_out, n_in))
    for k in range(4):
        np.add.at(mat, (o, np.clip(s.astype(np.int64) - 1 + k, 0, n_in - 1)), w[:, k])
    return mat


def gaussian_kernel(sigma: float, truncate: float = SMOOTH_TRUNCATE) -> np.ndarray:
    """Normalised 1-D Gaussian ``(2 r + 1,)`` with ``r = int(truncate * sigma + 0.5)``."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def smooth_rows(mat: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur along axis 0 with mirrored borders (``d c b a | a b c d | d c b a``)."""
    if sigma <= 0:
        return mat.copy()
    kernel = gaussian_kernel(sigma)
    radius = len(kernel) // 2
    n = mat.shape[0]
    # index of the source row for every padded position, mirrored as often as needed
    idx = np.arange(-radius, n + radius)
    period = 2 * n
    idx = np.mod(idx, period)
    idx = np.where(idx >= n, period - 1 - idx, idx)
    padded = mat[idx]
    out = np.zeros_like(mat, dtype=np.float64)
    for k, weight in enumerate(kernel):
        out += weight * padded[k:k + n]
    return out


@dataclass(frozen=True)
class AxisOperator:
    """The map -> image chain along one axis (see the module docstring).

    Attributes:
        values: ``(n_out, n_map)`` upsampling matrix ``A``.
        smooth: ``(n_out, n_map)`` upsampling then Gaussian blur, ``K = G A``.
        smooth32: ``smooth`` in float32 (the peak windows are computed in the maps' precision).
        tap_start: ``(n_out,)`` first map index of each row's band of ``A``.
        taps: ``(n_out, T)`` the band's weights (``A[o, tap_start[o] + t]``).
        smooth_first, smooth_last: ``(n_out,)`` first / last nonzero column of ``K`` per row.
        smooth_start, smooth_taps: the band of ``K`` like ``tap_start`` / ``taps`` for ``A``.
        scale: output pixels per map pixel.
    """

    values: np.ndarray
    smooth: np.ndarray
    smooth32: np.ndarray
    tap_start: np.ndarray
    taps: np.ndarray
    smooth_first: np.ndarray
    smooth_last: np.ndarray
    smooth_start: np.ndarray
    smooth_taps: np.ndarray
    scale: float

    @property
    def n_out(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_map(self) -> int:
        return int(self.values.shape[1])


def _band(mat: np.ndarray, eps: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    nz = np.abs(mat) > eps
    any_nz = nz.any(axis=1)
    first = np.where(any_nz, nz.argmax(axis=1), 0)
    last = np.where(any_nz, mat.shape[1] - 1 - nz[:, ::-1].argmax(axis=1), 0)
    return first, last


@functools.lru_cache(maxsize=64)
def axis_operator(n_map: int, n_image: int, n_valid: int, n_out: int, sigma: float = SMOOTH_SIGMA) -> AxisOperator:
    """Cached :class:`AxisOperator`: ``n_map`` map pixels resized to the ``n_image`` pixels they
    cover, cut to the first ``n_valid`` (the frame; the rest is padding), resized to ``n_out``."""
    first_resize = resize_matrix(n_map, n_image)[:n_valid]
    values = resize_matrix(n_valid, n_out) @ first_resize
    smooth = smooth_rows(values, sigma)
    start, taps = _band_taps(values, *_band(values))
    # the smoothed band: ignore the Gaussian's far tail below 1e-12 (no effect on float64 sums)
    s_first, s_last = _band(smooth, eps=1e-12 * float(np.abs(smooth).max() or 1.0))
    s_start, s_taps = _band_taps(smooth, s_first, s_last)
    smooth32 = smooth.astype(np.float32)
    for arr in (values, smooth, smooth32, start, taps, s_first, s_last, s_start, s_taps):
        arr.setflags(write=False)
    return AxisOperator(values=values, smooth=smooth, smooth32=smooth32, tap_start=start, taps=taps,
                        smooth_first=s_first, smooth_last=s_last, smooth_start=s_start, smooth_taps=s_taps,
                        scale=(n_image / n_map) * (n_out / n_valid))


def _band_taps(mat: np.ndarray, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A banded matrix as ``(start (n,), taps (n, T))`` with ``mat[o, start[o] + t] = taps[o, t]``."""
    width = int((last - first).max()) + 1
    start = np.minimum(first, mat.shape[1] - width)  # keep every band inside the matrix
    cols = start[:, None] + np.arange(width)
    return start, np.take_along_axis(mat, cols, axis=1)


def _pair(size, what: str) -> tuple[int, int]:
    try:
        h, w = int(size[0]), int(size[1])
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{what} must be a (height, width) pair, got {size!r}") from exc
    if h < 1 or w < 1:
        raise ValueError(f"{what} must be positive, got {(h, w)}")
    return h, w


@dataclass(frozen=True)
class MapGeometry:
    """Where pose maps sit in the image they were computed from.

    Attributes:
        map_size: ``(h, w)`` of the maps.
        image_size: ``(H, W)`` the maps cover: the (padded) network input, normally ``stride``
            times the map size.
        valid_size: ``(H_v, W_v)`` top-left part of ``image_size`` that is the frame (the rest is
            right/bottom padding); keypoints are never found in the padding.
        output_size: ``(H_o, W_o)`` of the frame the keypoints are returned in (the original frame
            when it was resized for the network; default ``valid_size``).
        sigma: Gaussian blur before peak search, output pixels (the original's 3).
    """

    map_size: tuple[int, int]
    image_size: tuple[int, int]
    valid_size: tuple[int, int]
    output_size: tuple[int, int]
    sigma: float = SMOOTH_SIGMA

    @classmethod
    def create(cls, map_size, image_size=None, valid_size=None, output_size=None, stride: int = DEFAULT_STRIDE,
               sigma: float = SMOOTH_SIGMA) -> "MapGeometry":
        """Fill defaults: ``image_size = stride * map_size``, ``valid_size = image_size``,
        ``output_size = valid_size``."""
        map_size = _pair(map_size, "map size")
        image_size = _pair(image_size, "image_size") if image_size is not None else (
            map_size[0] * stride, map_size[1] * stride)
        valid_size = _pair(valid_size, "valid_size") if valid_size is not None else image_size
        if valid_size[0] > image_size[0] or valid_size[1] > image_size[1]:
            raise ValueError(f"valid_size {valid_size} is larger than the image the maps cover {image_size}")
        output_size = _pair(output_size, "output_size") if output_size is not None else valid_size
        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        for size in (image_size, output_size):
            if size[0] * size[1] > 64_000_000:
                raise ValueError(f"image size {size} is implausibly large (over 64 megapixels)")
        return cls(map_size, image_size, valid_size, output_size, float(sigma))

    def axis(self, axis: int) -> AxisOperator:
        """The operator along rows (``axis=0``, y) or columns (``axis=1``, x)."""
        return axis_operator(self.map_size[axis], self.image_size[axis], self.valid_size[axis],
                             self.output_size[axis], self.sigma)

    def to_output(self, coord: np.ndarray, axis: int) -> np.ndarray:
        """Map-pixel coordinates -> output-pixel coordinates along one axis (pixel centres)."""
        covered = (np.asarray(coord, np.float64) + 0.5) * self.image_size[axis] / self.map_size[axis] - 0.5
        return (covered + 0.5) * self.output_size[axis] / self.valid_size[axis] - 0.5

    def to_map(self, coord: np.ndarray, axis: int) -> np.ndarray:
        """Inverse of :meth:`to_output`."""
        covered = (np.asarray(coord, np.float64) + 0.5) * self.valid_size[axis] / self.output_size[axis] - 0.5
        return (covered + 0.5) * self.map_size[axis] / self.image_size[axis] - 0.5

    def search_radius(self, axis: int) -> int:
        """Reach (output pixels) of the peak search around a map-resolution candidate:
        :data:`SEARCH_MAP_PIXELS` map pixels (see :mod:`spot_edge.pose.peaks`)."""
        return int(math.ceil(SEARCH_MAP_PIXELS * self.axis(axis).scale))




@dataclass(frozen=True)
class Window:
    """A grid of output pixels around a centre along one axis, and the map patch it reads.

    The window centred at output pixel ``c`` holds pixels ``c + offsets`` (``offsets = step *
    (-half .. half)``); the blurred map there depends only on map pixels
    ``lo[c] .. lo[c] + patch - 1``, through ``kernels[c]`` ``(W, patch)`` (rows of ``K``
    restricted to the patch, zero for pixels outside the frame; float32).
    """

    offsets: np.ndarray
    patch: int
    lo: np.ndarray  # (n_out,)
    kernels: np.ndarray  # (n_out, W, patch) float32

    @property
    def size(self) -> int:
        return int(self.offsets.shape[0])


@functools.lru_cache(maxsize=16)
def window(geometry: MapGeometry, axis: int, step: int, half: int) -> Window:
    """Cached :class:`Window` of ``geometry`` along ``axis``."""
    op = geometry.axis(axis)
    offsets = step * np.arange(-half, half + 1)
    pix = np.arange(op.n_out)[:, None] + offsets
    rows = np.clip(pix, 0, op.n_out - 1)
    first = op.smooth_first[rows].min(axis=1)
    last = op.smooth_last[rows].max(axis=1)
    patch = int(min((last - first).max() + 1, op.n_map))
    lo = np.clip(first, 0, op.n_map - patch)
    kernels = op.smooth32[rows[:, :, None], lo[:, None, None] + np.arange(patch)]
    kernels *= ((pix >= 0) & (pix < op.n_out))[:, :, None]
    for arr in (offsets, lo, kernels):
        arr.setflags(write=False)
    return Window(offsets=offsets, patch=patch, lo=lo, kernels=kernels)

__all__ = ["CUBIC_A", "SMOOTH_SIGMA", "DEFAULT_STRIDE", "cubic_weights", "resize_matrix", "gaussian_kernel",
           "smooth_rows", "AxisOperator", "axis_operator", "MapGeometry", "Window", "window"]
