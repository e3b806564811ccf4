"""PAF line scores of every candidate pair of every limb, as the original computes them (numpy).

For a pair (a, b) of keypoint candidates (integer frame pixels), ``num_samples`` points are taken
evenly from a to b inclusive and rounded to pixels; at each the upsampled PAF of the limb is
projected on the unit vector from a to b. The pair's score is the mean projection plus the
distance prior ``min(0.5 H / |b - a| - 1, 0)`` (H: frame height; it penalises limbs longer than
half the frame). A pair is accepted when more than ``min_above_fraction`` of the projections
exceed ``paf_threshold`` and the score is positive.

All pairs of all limbs are scored in one vectorised pass; the upsampled PAF at a sample costs a
4 x 4 neighbourhood of the stride-8 map (the band of
:attr:`~spot_edge.pose.resample.AxisOperator.taps`). A pair may
miss at most ``allowed`` of its samples, so it needs one of ``allowed + 1`` middle samples (the
probes) above the threshold. Pairs are rejected before their samples are read in full, cheapest
first, each step exact (the rejected pairs could not pass):

1. probes whose whole tap neighbourhood holds too weak a PAF to reach the threshold (a bound
   from one lookup in a block-maximum map, :func:`weak_bound_map`): all probes weak -> rejected;
2. the probes read exactly: none above the threshold -> rejected;
3. the survivors' other samples bounded the same way: failed probes plus weak samples more than
   ``allowed`` -> rejected;
4. the other samples read exactly; the survivors are scored.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from spot_edge.pose.peaks import Peaks, block_view
from spot_edge.pose.resample import MapGeometry
from spot_edge.pose.skeleton import LIMBS, PAF_CHANNELS

MIN_NORM = 0.001  # the original's floor on the limb length (pixels)
LIMB_PARTS = np.asarray(LIMBS, np.int64)  # (19, 2) part a, part b of each limb
LIMB_CHANNELS = np.asarray(PAF_CHANNELS, np.int64)  # (19, 2) PAF x, y channel of each limb (of the 38)
#: with fewer pairs than this, the exact probe reads cost less than the block-maximum map
BOUND_MIN_PAIRS = 64


@functools.lru_cache(maxsize=8)
def sample_fractions(num_samples: int) -> np.ndarray:
    """``(S,)`` positions along a limb, 0 .. 1 inclusive (``np.linspace``; read-only)."""
    t = np.linspace(0.0, 1.0, num_samples)
    t.setflags(write=False)
    return t


@functools.lru_cache(maxsize=8)
def probe_order(num_samples: int, allowed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``allowed + 1`` middle samples (a pair must pass one of them) and the others."""
    probe = np.arange(allowed + 1) + (num_samples - allowed - 1) // 2
    rest = np.setdiff1d(np.arange(num_samples), probe)
    for arr in (probe, rest):
        arr.setflags(write=False)
    return probe, rest


def pair_scores(start: np.ndarray, end: np.ndarray, proj: np.ndarray, image_height: int, paf_threshold: float,
                min_above_fraction: float) -> np.ndarray:
    """Scores ``(P,)`` from the projections ``proj`` ``(P, S)`` of pairs from ``start`` to ``end``
    ``(P, 2)``: mean + distance prior where the criteria hold, ``-inf`` elsewhere."""
    norm = np.maximum(np.linalg.norm((end - start).astype(np.float64), axis=1), MIN_NORM)
    score = proj.mean(axis=1) + np.minimum(0.5 * image_height / norm - 1.0, 0.0)
    above = (proj > paf_threshold).sum(axis=1) > min_above_fraction * proj.shape[1]
    return np.where(above & (score > 0), score, -np.inf)


def sample_points(start: np.ndarray, end: np.ndarray, num_samples: int,
                  which: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Integer sample pixels ``(x, y)``, each ``(P, S)``, from ``start`` to ``end`` ``(P, 2)``
    (only the samples ``which`` when given: the same pixels as in the full set).

    ``np.linspace`` then rounding: the fractions of integer end points never fall on .5, so the
    rounding rule does not matter.
    """
    t = sample_fractions(num_samples)
    which = np.arange(num_samples) if which is None else np.asarray(which)
    start = start.astype(np.float64)
    end = end.astype(np.float64)
    pts = start[:, None, :] + t[which][None, :, None] * (end - start)[:, None, :]
    last = which == num_samples - 1
    if last.any():
        pts[:, last] = end[:, None, :]
    pix = np.rint(pts).astype(np.int64)
    return pix[..., 0], pix[..., 1]


@functools.lru_cache(maxsize=16)
def _tap_gain(geometry: MapGeometry) -> float:
    """The largest sum of absolute tap weights of the upsampling (y times x)."""
    ay, ax = geometry.axis(0), geometry.axis(1)
    return float(np.abs(ay.taps).sum(axis=1).max() * np.abs(ax.taps).sum(axis=1).max())


def weak_bound_map(paf_maps: np.ndarray, geometry: MapGeometry) -> np.ndarray:
    """``(19, h, w)`` per limb and map pixel ``(r, c)``: an upper bound of the projection of the
    upsampled PAF at any output pixel whose taps start at ``(r, c)``: ``rho x max(|PAF_x| +
    |PAF_y|)`` over the tap block (``rho``: the largest sum of absolute tap weights). Samples
    where it is ``<= paf_threshold`` certainly fail.

    (A bound on the projection on the pair's direction, from the extremes of the x and y maps, is
    tighter in theory; on crowds it rejected no more pairs and cost more.)"""
    ty, tx = geometry.axis(0).taps.shape[1], geometry.axis(1).taps.shape[1]
    h, w = paf_maps.shape[1:]
    strength = np.abs(paf_maps)
    # the 19 limbs stacked into one image: a tap block starting at row r never passes row h - 1 (the
    # bands stay inside the maps), so the blocks of one limb never read the next limb's rows
    stacked = np.add(strength[LIMB_CHANNELS[:, 0]], strength[LIMB_CHANNELS[:, 1]]).reshape(-1, w)
    block = cv2.dilate(stacked, np.ones((ty, tx), np.uint8), anchor=(0, 0))  # max over rows r.., columns c..
    return block.reshape(len(LIMBS), h, w) * np.float32(_tap_gain(geometry))


def _pairs(peaks: Peaks) -> tuple[np.ndarray, ...]:
    """All candidate pairs of all limbs, a-major within each limb like the original's loops:
    ``(limb (P,), a (P,), b (P,), sizes (19, 2))`` with global candidate indices."""
    counts, starts = peaks.counts, peaks.starts
    sizes = counts[LIMB_PARTS]  # (19, 2) nA, nB
    per_limb = sizes[:, 0] * sizes[:, 1]
    limb = np.repeat(np.arange(len(LIMBS)), per_limb)
    first = np.zeros(len(LIMBS), np.int64)
    np.cumsum(per_limb[:-1], out=first[1:])
    ia, ib = np.divmod(np.arange(len(limb)) - first[limb], sizes[limb, 1])
    return limb, starts[LIMB_PARTS[limb, 0]] + ia, starts[LIMB_PARTS[limb, 1]] + ib, sizes


def limb_pair_scores(paf_maps: np.ndarray, peaks: Peaks, geometry: MapGeometry, num_samples: int = 10,
                     paf_threshold: float = 0.05, min_above_fraction: float = 0.8) -> list[np.ndarray]:
    """Per limb the ``(nA, nB)`` scores of its candidate pairs (``-inf``: rejected).

    Args:
        paf_maps: ``(38, h, w)`` PAF channels (layout of :mod:`spot_edge.pose.skeleton`).
        peaks: the keypoint candidates (:func:`spot_edge.pose.peaks.find_peaks`).
        geometry: where the maps sit in the frame.
    """
    limb, pa, pb, sizes = _pairs(peaks)
    scores = np.full(len(limb), -np.inf)
    if len(limb):
        rows, proj = _surviving_projections(np.ascontiguousarray(paf_maps, dtype=np.float32), peaks, geometry,
                                            limb, pa, pb, num_samples, paf_threshold, min_above_fraction)
        if len(rows):
            scores[rows] = pair_scores(peaks.xy[pa[rows]], peaks.xy[pb[rows]], proj, geometry.output_size[0],
                                       paf_threshold, min_above_fraction)
    bounds = np.zeros(len(LIMBS) + 1, np.int64)
    np.cumsum(sizes[:, 0] * sizes[:, 1], out=bounds[1:])
    return [scores[bounds[i]:bounds[i + 1]].reshape(sizes[i, 0], sizes[i, 1]) for i in range(len(LIMBS))]


def _surviving_projections(paf_maps: np.ndarray, peaks: Peaks, geometry: MapGeometry, limb: np.ndarray,
                           pa: np.ndarray, pb: np.ndarray, num_samples: int, paf_threshold: float,
                           min_above_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs that may pass (indices into ``limb``) and their projections ``(R, S)`` at every
    sample (see the module docstring for the exact rejections)."""
    start, end = peaks.xy[pa], peaks.xy[pb]
    delta = (end - start).astype(np.float64)
    unit = delta / np.maximum(np.sqrt((delta * delta).sum(axis=1)), MIN_NORM)[:, None]
    ay, ax = geometry.axis(0), geometry.axis(1)
    blocks = block_view(paf_maps, ay.taps.shape[1], ax.taps.shape[1])  # every tap block

    def project(rows: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Projections ``(R, k)`` of pairs ``rows`` at sample pixels ``ys``, ``xs`` ``(R, k)``."""
        k = ys.shape[1]
        y, x = ys.ravel(), xs.ravel()
        chan = np.repeat(LIMB_CHANNELS[limb[rows]], k, axis=0)  # (R k, 2): x and y channel
        vals = blocks[chan, ay.tap_start[y][:, None], ax.tap_start[x][:, None]].astype(np.float64)  # (R k, 2, Ty, Tx)
        u = np.einsum("nci,ni->nc", np.einsum("ncij,nj->nci", vals, ax.taps[x]), ay.taps[y]).reshape(len(rows), k, 2)
        return u[..., 0] * unit[rows, None, 0] + u[..., 1] * unit[rows, None, 1]

    def weak(rows: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """``(R, k)`` True where the sample certainly fails (:func:`weak_bound_map`)."""
        return bound[limb[rows, None], ay.tap_start[ys], ax.tap_start[xs]] <= paf_threshold

    rows = np.arange(len(limb))
    allowed = num_samples - (int(np.floor(min_above_fraction * num_samples)) + 1)
    if not 0 <= allowed < num_samples - 1:  # nothing to reject early: read everything
        xs, ys = sample_points(start, end, num_samples)
        return rows, project(rows, ys, xs)
    probe, rest = probe_order(num_samples, allowed)
    bound = weak_bound_map(paf_maps, geometry) if len(rows) >= BOUND_MIN_PAIRS else None
    xs, ys = sample_points(start, end, num_samples, probe)
    if bound is not None:  # 1. all probes certainly weak
        alive = ~weak(rows, ys, xs).all(axis=1)
        rows, xs, ys = rows[alive], xs[alive], ys[alive]
    proj = np.zeros((len(rows), num_samples))
    if len(rows):  # 2. every probe at or below the threshold
        proj[:, probe] = project(rows, ys, xs)
        failed = (proj[:, probe] <= paf_threshold).sum(axis=1)
        alive = failed <= allowed
        rows, proj, failed = rows[alive], proj[alive], failed[alive]
    if not len(rows):
        return rows, proj
    xs, ys = sample_points(start[rows], end[rows], num_samples, rest)
    if bound is not None:  # 3. too many failures counting the certainly weak other samples
        alive = failed + weak(rows, ys, xs).sum(axis=1) <= allowed
        rows, proj, xs, ys = rows[alive], proj[alive], xs[alive], ys[alive]
    if len(rows):  # 4. the other samples read exactly
        proj[:, rest] = project(rows, ys, xs)
    return rows, proj


__all__ = ["MIN_NORM", "LIMB_PARTS", "LIMB_CHANNELS", "sample_fractions", "probe_order", "sample_points", "pair_scores",
           "weak_bound_map", "limb_pair_scores"]
