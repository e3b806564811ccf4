"""PAF line scores of every candidate pair of every limb, as the original computes them (numpy).

For a pair (a, b) of keypoint candidates (integer frame pixels), ``num_samples`` points are taken
evenly from a to b inclusive and rounded to pixels; at each the upsampled PAF of the limb is
projected on the unit vector from a to b. The pair's score is the mean projection plus the
distance prior ``min(0.5 H / |b - a| - 1, 0)`` (H: frame height; it penalises limbs longer than
half the frame). A pair is accepted when more than ``min_above_fraction`` of the projections
exceed ``paf_threshold`` and the score is positive.

All pairs of all limbs are scored in one vectorised pass; the upsampled PAF at a sample costs a
4 x 4 neighbourhood of the stride-8 map (:func:`spot_edge.pose.peaks.upsampled_values`). Pairs
that certainly fail the sample criterion are rejected before their samples are read in full:
first from a bound on the PAF around each sample, then from a few middle samples (both exact:
those pairs could not pass it).
"""

from __future__ import annotations

import numpy as np

from spot_edge.pose.peaks import Peaks, tap_indices
from spot_edge.pose.resample import MapGeometry
from spot_edge.pose.skeleton import LIMBS, PAF_CHANNELS

MIN_NORM = 0.001  # the original's floor on the limb length (pixels)


def sample_fractions(num_samples: int) -> np.ndarray:
    """``(S,)`` positions along a limb, 0 .. 1 inclusive (``np.linspace``)."""
    return np.linspace(0.0, 1.0, num_samples)


def pair_scores(start: np.ndarray, end: np.ndarray, proj: np.ndarray, image_height: int, paf_threshold: float,
                min_above_fraction: float) -> np.ndarray:
    """Scores ``(P,)`` from the projections ``proj`` ``(P, S)`` of pairs from ``start`` to ``end``
    ``(P, 2)``: mean + distance prior where the criteria hold, ``-inf`` elsewhere."""
    norm = np.maximum(np.linalg.norm((end - start).astype(np.float64), axis=1), MIN_NORM)
    score = proj.mean(axis=1) + np.minimum(0.5 * image_height / norm - 1.0, 0.0)
    above = (proj > paf_threshold).sum(axis=1) > min_above_fraction * proj.shape[1]
    return np.where(above & (score > 0), score, -np.inf)


def sample_points(start: np.ndarray, end: np.ndarray, num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer sample pixels ``(x, y)``, each ``(P, S)``, from ``start`` to ``end`` ``(P, 2)``.

    ``np.linspace`` then rounding: the fractions of integer end points never fall on .5, so the
    rounding rule does not matter.
    """
    t = sample_fractions(num_samples)
    start = start.astype(np.float64)
    pts = start[:, None, :] + t[None, :, None] * (end.astype(np.float64) - start)[:, None, :]
    pts[:, -1] = end
    return np.rint(pts[..., 0]).astype(np.int64), np.rint(pts[..., 1]).astype(np.int64)


def weak_samples(paf_maps: np.ndarray, geometry: MapGeometry, paf_threshold: float, limb_id: np.ndarray,
                 ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """``(P, S)`` True where a sample certainly fails: the upsampled PAF there is a weighted sum of
    a tap block of the map, so its projection is at most ``rho x max(|PAF_x| + |PAF_y|)`` over
    the block (``rho``: the largest sum of absolute tap weights), and that is ``<= paf_threshold``."""
    ay, ax = geometry.axis(0), geometry.axis(1)
    ty, tx = ay.taps.shape[1], ax.taps.shape[1]
    rho = float(np.abs(ay.taps).sum(axis=1).max() * np.abs(ax.taps).sum(axis=1).max())
    channels = np.asarray(PAF_CHANNELS)
    strength = np.abs(paf_maps[channels[:, 0]]) + np.abs(paf_maps[channels[:, 1]])  # (19, h, w)
    h, w = strength.shape[1:]
    block = np.full((len(LIMBS), h + ty - 1, w + tx - 1), -np.inf, dtype=strength.dtype)
    block[:, :h, :w] = strength
    rows = block[:, :h, :].copy()  # block max over rows r .. r + ty - 1
    for d in range(1, ty):
        np.maximum(rows, block[:, d:d + h, :], out=rows)
    out = rows[:, :, :w].copy()  # then over columns c .. c + tx - 1
    for d in range(1, tx):
        np.maximum(out, rows[:, :, d:d + w], out=out)
    bound = rho * out[limb_id[:, None], ay.tap_start[ys], ax.tap_start[xs]]
    return bound <= paf_threshold


def limb_pair_scores(paf_maps: np.ndarray, peaks: Peaks, geometry: MapGeometry, num_samples: int = 10,
                     paf_threshold: float = 0.05, min_above_fraction: float = 0.8) -> list[np.ndarray]:
    """Per limb the ``(nA, nB)`` scores of its candidate pairs (``-inf``: rejected).

    Args:
        paf_maps: ``(38, h, w)`` PAF channels (layout of :mod:`spot_edge.pose.skeleton`).
        peaks: the keypoint candidates (:func:`spot_edge.pose.peaks.find_peaks`).
        geometry: where the maps sit in the frame.
    """
    starts = peaks.starts
    limb_ids, pa_idx, pb_idx, shapes = [], [], [], []
    for limb, (a, b) in enumerate(LIMBS):
        na, nb = int(peaks.counts[a]), int(peaks.counts[b])
        shapes.append((na, nb))
        if na == 0 or nb == 0:
            continue
        pa_idx.append(np.repeat(starts[a] + np.arange(na), nb))  # a-major, like the original's loops
        pb_idx.append(np.tile(starts[b] + np.arange(nb), na))
        limb_ids.append(np.full(na * nb, limb))
    out = [np.full(shape, -np.inf) for shape in shapes]
    if not limb_ids:
        return out
    limb_id = np.concatenate(limb_ids)
    start = peaks.xy[np.concatenate(pa_idx)]
    end = peaks.xy[np.concatenate(pb_idx)]
    xs, ys = sample_points(start, end, num_samples)
    channels = np.asarray(PAF_CHANNELS)[limb_id]  # (P, 2)
    delta = (end - start).astype(np.float64)
    unit = delta / np.maximum(np.linalg.norm(delta, axis=1), MIN_NORM)[:, None]

    h, w = paf_maps.shape[1:]
    flat_maps = paf_maps.reshape(-1)

    def project(rows: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """Projections ``(len(rows), len(samples))`` of the chosen pairs' chosen samples."""
        k = len(samples)
        flat, wy, wx = tap_indices(geometry, ys[rows][:, samples].ravel(), xs[rows][:, samples].ravel())
        base = (np.repeat(channels[rows], k, axis=0) * (h * w)).T  # (2, N): x and y channel offsets
        vals = np.take(flat_maps, flat[None] + base[:, :, None, None]).astype(np.float64)  # (2, N, Ty, Tx)
        u = np.einsum("cnij,ni,nj->cn", vals, wy, wx, optimize=False).reshape(2, -1, k)
        return u[0] * unit[rows, :1] + u[1] * unit[rows, 1:]

    # A pair needs more than min_above_fraction of its samples above paf_threshold, so it may miss
    # at most `allowed` of them. Exact early rejection, cheapest first: (1) samples whose whole
    # tap neighbourhood holds too weak a PAF to reach the threshold (one lookup each), (2) a few
    # middle samples read exactly; only the survivors are sampled in full.
    allowed = num_samples - (int(np.floor(min_above_fraction * num_samples)) + 1)
    everything = np.arange(len(limb_id))
    proj = np.zeros((len(limb_id), num_samples))
    alive = np.ones(len(limb_id), bool)
    if 0 <= allowed < num_samples - 1:
        weak = weak_samples(paf_maps, geometry, paf_threshold, limb_id, ys, xs)
        alive = weak.sum(axis=1) <= allowed
        probe = np.arange(allowed + 1) + (num_samples - allowed - 1) // 2
        rows = everything[alive]
        if len(rows):
            proj[np.ix_(rows, probe)] = project(rows, probe)
            alive[rows] = (proj[np.ix_(rows, probe)] > paf_threshold).any(axis=1)
        unread = np.ones(num_samples, bool)
        unread[probe] = False
        rest = np.flatnonzero(unread)
        rows = everything[alive]
        if len(rows):
            proj[np.ix_(rows, rest)] = project(rows, rest)
    else:
        proj[:] = project(everything, np.arange(num_samples))
    scores = pair_scores(start, end, proj, geometry.output_size[0], paf_threshold, min_above_fraction)
    scores[~alive] = -np.inf
    offset = 0
    for limb, (na, nb) in enumerate(shapes):
        if na and nb:
            out[limb] = scores[offset:offset + na * nb].reshape(na, nb)
            offset += na * nb
    return out


__all__ = ["MIN_NORM", "sample_fractions", "sample_points", "pair_scores", "weak_samples", "limb_pair_scores"]
