"""Parse the 56 OpenPose maps into people: peak finding, PAF scoring, greedy grouping.

The algorithm is OpenPose's bottom-up association (Cao et al., TPAMI 2021, Sec. 3.3-3.4): keypoint
candidates are local maxima of the keypoint maps; each limb's candidate pairs are scored by the
line integral of its PAF along the segment (sampled at ``num_samples`` points); pairs are matched
greedily per limb; limbs sharing keypoints are assembled into people.

Everything per pixel is vectorised numpy (peak finding, segment sampling of all candidate pairs
of a limb at once); the only Python loops run over limbs and over the (few) accepted connections.
Torch tensors are accepted and moved to numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spot_edge.pose.skeleton import LIMBS, NUM_KEYPOINTS, NUM_MAPS, PAF_CHANNELS, PAF_OFFSET

# Limbs 17 and 18 (shoulder-ear) duplicate the head chain; like OpenPose they may join keypoints
# to an existing person but never start a new one.
_REDUNDANT_LIMBS = frozenset({17, 18})


@dataclass(frozen=True)
class ParseConfig:
    """Thresholds of the association (defaults: OpenPose COCO / the pytorch-openpose port)."""

    peak_threshold: float = 0.1  # keypoint-map value a peak must exceed (thre1)
    paf_threshold: float = 0.05  # PAF . direction a sample must exceed (thre2)
    min_above_fraction: float = 0.8  # fraction of samples above paf_threshold
    num_samples: int = 10  # points sampled along each candidate limb
    min_parts: int = 4  # people with fewer keypoints are dropped
    min_mean_score: float = 0.4  # people with a lower total score / keypoint count are dropped
    max_candidates: int = 128  # per keypoint type, strongest kept (bounds the pair matrix)


@dataclass
class PoseDetections:
    """People found in one image.

    Attributes:
        keypoints: ``(N, 18, 3)`` float32 (x, y, confidence); absent keypoints are (0, 0, 0).
            Coordinates are in image pixels when an ``image_size`` was given, else in map pixels.
        scores: ``(N,)`` float32 OpenPose person score (sum of keypoint and limb scores divided by
            the number of keypoints), highest first.
        boxes: ``(N, 4)`` float32 ``(x0, y0, x1, y1)`` tight box around the present keypoints.
        num_parts: ``(N,)`` int number of present keypoints.
    """

    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, NUM_KEYPOINTS, 3), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    num_parts: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


def _to_numpy(maps) -> np.ndarray:
    if hasattr(maps, "detach"):  # torch tensor
        maps = maps.detach().float().cpu().numpy()
    arr = np.asarray(maps, dtype=np.float32)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[0] != NUM_MAPS:
        raise ValueError(f"expected pose maps of shape ({NUM_MAPS}, H, W) or (1, {NUM_MAPS}, H, W), "
                         f"got {arr.shape}; parse a batch one image at a time")
    if arr.shape[1] < 1 or arr.shape[2] < 1:
        raise ValueError(f"pose maps are empty: shape {arr.shape}")
    return np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)


def find_peaks(heatmaps: np.ndarray, threshold: float = 0.1, max_candidates: int = 128) -> list[np.ndarray]:
    """Local maxima of each keypoint map, with sub-pixel refinement.

    Args:
        heatmaps: ``(K, H, W)`` keypoint maps.
        threshold: minimum value of a peak.
        max_candidates: keep at most this many strongest peaks per map.

    Returns:
        K arrays ``(n_k, 3)`` of (x, y, score) in map pixels, strongest first. A pixel is a peak
        when it is >= its 8 neighbours, strictly > those after it in raster order (so a plateau of
        equal values yields one peak). The position is refined by a parabola through the log
        values of the 3x3 neighbourhood (exact for a Gaussian), clipped to half a pixel.
    """
    k, h, w = heatmaps.shape
    padded = np.pad(heatmaps, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    centre = padded[:, 1:-1, 1:-1]
    is_peak = centre > threshold
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy == 0 and dx == 0:
                continue
            neighbour = padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            after = (dy, dx) > (0, 0)  # raster order: strict comparison with later pixels
            is_peak &= (centre > neighbour) if after else (centre >= neighbour)
    kk, yy, xx = np.nonzero(is_peak)
    values = heatmaps[kk, yy, xx]

    # Sub-pixel offsets from the log values (falls back to the raw values near zero).
    def offset(minus: np.ndarray, mid: np.ndarray, plus: np.ndarray) -> np.ndarray:
        lm, lc, lp = (np.log(np.maximum(v, 1e-6)) for v in (minus, mid, plus))
        denom = lm - 2.0 * lc + lp
        off = np.where(denom < -1e-9, 0.5 * (lm - lp) / np.where(denom < -1e-9, denom, -1.0), 0.0)
        return np.clip(off, -0.5, 0.5)

    def at(dy: int, dx: int) -> np.ndarray:
        v = padded[kk, yy + 1 + dy, xx + 1 + dx]
        return np.where(np.isfinite(v), v, 0.0)

    ox = offset(at(0, -1), values, at(0, 1))
    oy = offset(at(-1, 0), values, at(1, 0))
    peaks = np.stack([xx + ox, yy + oy, values], axis=1).astype(np.float32)

    out = []
    for part in range(k):
        p = peaks[kk == part]
        p = p[np.argsort(-p[:, 2], kind="stable")][:max_candidates]
        out.append(p)
    return out


def score_limb_candidates(
    cand_a: np.ndarray, cand_b: np.ndarray, paf_x: np.ndarray, paf_y: np.ndarray, cfg: ParseConfig
) -> np.ndarray:
    """PAF line-integral scores of every (a, b) candidate pair of one limb.

    Args:
        cand_a, cand_b: ``(nA, 3)`` and ``(nB, 3)`` candidates (x, y, score) in map pixels.
        paf_x, paf_y: ``(H, W)`` PAF components of the limb.

    Returns:
        ``(nA, nB)`` scores: mean of ``PAF . unit(b - a)`` over the samples plus OpenPose's
        distance prior ``min(0.5 H / |b - a| - 1, 0)``; ``-inf`` where the pair fails the
        criteria (too few samples above ``paf_threshold``, or a non-positive score).
    """
    h, w = paf_x.shape
    delta = cand_b[None, :, :2] - cand_a[:, None, :2]  # (nA, nB, 2)
    norm = np.linalg.norm(delta, axis=-1)
    unit = delta / np.maximum(norm, 1e-6)[..., None]
    t = np.linspace(0.0, 1.0, cfg.num_samples)
    pts = cand_a[:, None, None, :2] + t[None, None, :, None] * delta[:, :, None, :]  # (nA, nB, S, 2)
    xi = np.clip(np.rint(pts[..., 0]).astype(np.int64), 0, w - 1)
    yi = np.clip(np.rint(pts[..., 1]).astype(np.int64), 0, h - 1)
    dots = paf_x[yi, xi] * unit[..., None, 0] + paf_y[yi, xi] * unit[..., None, 1]  # (nA, nB, S)
    score = dots.mean(axis=-1) + np.minimum(0.5 * h / np.maximum(norm, 1e-6) - 1.0, 0.0)
    above = (dots > cfg.paf_threshold).sum(axis=-1) > cfg.min_above_fraction * cfg.num_samples
    ok = above & (score > 0) & (norm > 1e-6)
    return np.where(ok, score, -np.inf)


def _greedy_match(scores: np.ndarray) -> list[tuple[int, int, float]]:
    """Best-first one-to-one matching of a ``(nA, nB)`` score matrix (``-inf`` = forbidden)."""
    ia, ib = np.nonzero(np.isfinite(scores))
    order = np.argsort(-scores[ia, ib], kind="stable")
    used_a, used_b, matches = set(), set(), []
    limit = min(scores.shape)
    for o in order:
        a, b = int(ia[o]), int(ib[o])
        if a in used_a or b in used_b:
            continue
        used_a.add(a)
        used_b.add(b)
        matches.append((a, b, float(scores[a, b])))
        if len(matches) >= limit:
            break
    return matches


def parse_pose_maps(maps, image_size: tuple[int, int] | None = None, config: ParseConfig | None = None) -> PoseDetections:
    """Find people in one image's pose maps.

    Args:
        maps: ``(56, h, w)`` (or ``(1, 56, h, w)``) numpy array or torch tensor, layout of
            :mod:`spot_edge.pose.skeleton`, e.g. from ``PoseEstimator`` or ``render_pose_maps``.
        image_size: ``(H_img, W_img)`` the maps cover; keypoints and boxes are returned in its pixel
            coordinates (inverse of the mapping in :mod:`spot_edge.pose.render`). ``None``: map
            pixels.
        config: thresholds, see :class:`ParseConfig`.

    Returns:
        :class:`PoseDetections`, people sorted by score (empty when nobody is found).
    """
    cfg = config or ParseConfig()
    arr = _to_numpy(maps)
    h, w = arr.shape[1:]
    peaks = find_peaks(arr[:NUM_KEYPOINTS], cfg.peak_threshold, cfg.max_candidates)

    # people: rows of 18 candidate indices (-1 absent); totals: summed score; counts: #keypoints.
    people = np.full((0, NUM_KEYPOINTS), -1, dtype=np.int64)
    totals: list[float] = []
    for limb, (a, b) in enumerate(LIMBS):
        cand_a, cand_b = peaks[a], peaks[b]
        if len(cand_a) == 0 or len(cand_b) == 0:
            continue
        cx, cy = PAF_CHANNELS[limb]
        scores = score_limb_candidates(cand_a, cand_b, arr[PAF_OFFSET + cx], arr[PAF_OFFSET + cy], cfg)
        for ia, ib, s in _greedy_match(scores):
            rows = np.nonzero((people[:, a] == ia) | (people[:, b] == ib))[0]
            if len(rows) == 1 or (len(rows) == 2 and _overlap(people[rows[0]], people[rows[1]])):
                j = rows[0]
                if people[j, b] == -1:
                    people[j, b] = ib
                    totals[j] += float(cand_b[ib, 2]) + s
            elif len(rows) == 2:  # two partial people joined by this limb: merge them
                j1, j2 = rows
                keep = people[j2] >= 0
                people[j1, keep] = people[j2, keep]
                totals[j1] += totals[j2] + s
                people = np.delete(people, j2, axis=0)
                del totals[j2]
            elif len(rows) == 0 and limb not in _REDUNDANT_LIMBS:
                row = np.full((1, NUM_KEYPOINTS), -1, dtype=np.int64)
                row[0, a], row[0, b] = ia, ib
                people = np.concatenate([people, row])
                totals.append(float(cand_a[ia, 2] + cand_b[ib, 2]) + s)

    counts = (people >= 0).sum(axis=1)
    mean_scores = np.asarray(totals, dtype=np.float64) / np.maximum(counts, 1)
    keep = (counts >= cfg.min_parts) & (mean_scores >= cfg.min_mean_score)
    people, mean_scores, counts = people[keep], mean_scores[keep], counts[keep]
    order = np.argsort(-mean_scores, kind="stable")
    people, mean_scores, counts = people[order], mean_scores[order], counts[order]

    keypoints = np.zeros((len(people), NUM_KEYPOINTS, 3), dtype=np.float32)
    for part in range(NUM_KEYPOINTS):
        present = people[:, part] >= 0
        keypoints[present, part] = peaks[part][people[present, part]]
    if image_size is not None:
        img_h, img_w = int(image_size[0]), int(image_size[1])
        present = keypoints[..., 2] > 0
        keypoints[..., 0] = np.where(present, (keypoints[..., 0] + 0.5) * img_w / w - 0.5, 0.0)
        keypoints[..., 1] = np.where(present, (keypoints[..., 1] + 0.5) * img_h / h - 0.5, 0.0)
    return PoseDetections(keypoints=keypoints, scores=mean_scores.astype(np.float32),
                          boxes=keypoint_boxes(keypoints), num_parts=counts.astype(np.int64))


def parse_pose_maps_batch(maps, image_size: tuple[int, int] | None = None,
                          config: ParseConfig | None = None) -> list[PoseDetections]:
    """:func:`parse_pose_maps` over a batch ``(B, 56, h, w)``; one :class:`PoseDetections` per image."""
    if getattr(maps, "ndim", 0) != 4:
        raise ValueError(f"expected a batch of pose maps (B, {NUM_MAPS}, h, w), got shape {tuple(maps.shape)}")
    return [parse_pose_maps(m, image_size, config) for m in maps]


def _overlap(row1: np.ndarray, row2: np.ndarray) -> bool:
    return bool(((row1 >= 0) & (row2 >= 0)).any())


def keypoint_boxes(keypoints: np.ndarray) -> np.ndarray:
    """Tight ``(x0, y0, x1, y1)`` boxes ``(N, 4)`` around the keypoints with confidence > 0."""
    kp = np.asarray(keypoints, dtype=np.float32)
    if len(kp) == 0:
        return np.zeros((0, 4), np.float32)
    present = kp[..., 2] > 0
    big = np.float32(np.inf)
    x0 = np.where(present, kp[..., 0], big).min(axis=1)
    y0 = np.where(present, kp[..., 1], big).min(axis=1)
    x1 = np.where(present, kp[..., 0], -big).max(axis=1)
    y1 = np.where(present, kp[..., 1], -big).max(axis=1)
    boxes = np.stack([x0, y0, x1, y1], axis=1)
    boxes[~present.any(axis=1)] = 0.0
    return boxes.astype(np.float32)


__all__ = ["ParseConfig", "PoseDetections", "find_peaks", "score_limb_candidates", "parse_pose_maps",
           "parse_pose_maps_batch", "keypoint_boxes"]
