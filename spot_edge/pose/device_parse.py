"""Pose-map parsing where the maps are: the torch twin of :mod:`spot_edge.pose.parse`.

For maps on a GPU (the PyTorch and TensorRT estimators), everything per pixel runs on the maps'
device, batched over images, keypoint types and limbs:

- peak search: cross-shaped max-pool suppression (>= the 4 neighbours) and a threshold on the
  stride-8 maps, top-k per keypoint type, then the original's exact peak test on the blurred,
  upsampled map in a window around each candidate (one batched matrix product per window, see
  :mod:`spot_edge.pose.peaks` for the method) and a float64 re-test of the survivors;
- the confidences (upsampled map at the peaks) and sub-pixel offsets;
- PAF line scores of all candidate pairs of all limbs of all images at once (with the same exact
  early rejection as :mod:`spot_edge.pose.limbs`).

Only the candidates (a few hundred numbers) and the ``(limbs, nA, nB)`` score matrices cross to
the host, where the greedy grouping (:mod:`spot_edge.pose.grouping`, sequential by nature) runs.
The result equals the numpy parser's (tests compare both with a model of the original); on the
CPU device it is a reference for the GPU path, not a faster CPU parser (use
:func:`spot_edge.pose.parse.parse_pose_maps` there).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from spot_edge.pose.grouping import assemble_people
from spot_edge.pose.limbs import MIN_NORM
from spot_edge.pose.parse import ParseConfig, PoseDetections, detections_from
from spot_edge.pose.peaks import COARSE_FRACTION, NEIGHBOURS, TIE_MARGIN, Peaks, cut_lines
from spot_edge.pose.resample import MapGeometry, window
from spot_edge.pose.skeleton import LIMBS, NUM_KEYPOINTS, NUM_MAPS, PAF_CHANNELS


class _DeviceOperators:
    """The operators of one geometry as tensors on one device."""

    def __init__(self, geometry: MapGeometry, device: torch.device) -> None:
        half = max(geometry.search_radius(axis) for axis in (0, 1)) + 1
        self.half = half
        self.kernels, self.lo, self.offsets, self.patch = [], [], [], []
        self.tap_start, self.taps, self.smooth_start, self.smooth_taps = [], [], [], []
        for axis in (0, 1):
            op = geometry.axis(axis)
            win = window(geometry, axis, 1, half)
            self.kernels.append(torch.tensor(win.kernels, device=device))
            self.lo.append(torch.tensor(win.lo, device=device))
            self.offsets.append(torch.tensor(win.offsets, device=device))
            self.patch.append(win.patch)
            self.tap_start.append(torch.tensor(op.tap_start, device=device))
            self.taps.append(torch.tensor(op.taps, device=device))
            self.smooth_start.append(torch.tensor(op.smooth_start, device=device))
            self.smooth_taps.append(torch.tensor(op.smooth_taps, device=device))
        scale = [geometry.image_size[a] / geometry.map_size[a] for a in (0, 1)]
        ratio = [geometry.output_size[a] / geometry.valid_size[a] for a in (0, 1)]
        self.to_output = [(scale[a], ratio[a]) for a in (0, 1)]


@functools.lru_cache(maxsize=16)
def _operators(geometry: MapGeometry, device: str) -> _DeviceOperators:
    return _DeviceOperators(geometry, torch.device(device))


def _gather_weighted(flat_maps: torch.Tensor, base: torch.Tensor, y: torch.Tensor, x: torch.Tensor,
                     starts, weights, w: int) -> torch.Tensor:
    """Separable band read: ``sum_ij wy[y, i] wx[x, j] maps[base + (sy[y] + i) w + sx[x] + j]``, float64."""
    wy, wx = weights[0][y], weights[1][x]
    rows = starts[0][y][:, None] + torch.arange(wy.shape[1], device=y.device)
    cols = starts[1][x][:, None] + torch.arange(wx.shape[1], device=y.device)
    idx = base[:, None, None] + rows[:, :, None] * w + cols[:, None, :]
    vals = flat_maps[idx].double()
    return torch.einsum("nij,ni,nj->n", vals, wy, wx)


def _coarse_candidates(kp: torch.Tensor, threshold: float, max_candidates: int, cut_rows=(), cut_cols=()):
    """``(b, part, i, j)`` of map pixels >= their 4 neighbours and > threshold (and of maxima
    along the rows/columns where the frame ends, see :func:`spot_edge.pose.peaks.coarse_candidates`),
    top-k per map."""
    vertical = F.max_pool2d(kp, (3, 1), stride=1, padding=(1, 0))
    horizontal = F.max_pool2d(kp, (1, 3), stride=1, padding=(0, 1))
    keep = (kp >= torch.maximum(vertical, horizontal)) & (kp > threshold)
    for r in cut_rows:
        keep[:, :, r, :] |= (kp[:, :, r, :] >= horizontal[:, :, r, :]) & (kp[:, :, r, :] > threshold)
    for c in cut_cols:
        keep[:, :, :, c] |= (kp[:, :, :, c] >= vertical[:, :, :, c]) & (kp[:, :, :, c] > threshold)
    scores = torch.where(keep, kp, torch.full_like(kp, -torch.inf)).flatten(2)
    k = min(max_candidates, scores.shape[-1])
    values, index = scores.topk(k, dim=-1)
    b, part, slot = torch.nonzero(torch.isfinite(values), as_tuple=True)
    flat = index[b, part, slot]
    w = kp.shape[-1]
    return b, part, flat // w, flat % w


def _find_peaks(maps: torch.Tensor, geometry: MapGeometry, ops: _DeviceOperators, cfg: ParseConfig):
    """Peaks of a batch: ``(b, part, y, x, score, offset (N, 2))`` tensors sorted by (b, part, y, x)."""
    bsz, _, h, w = maps.shape
    ho, wo = geometry.output_size
    kp = maps[:, :NUM_KEYPOINTS]
    b, part, i, j = _coarse_candidates(kp, COARSE_FRACTION * cfg.peak_threshold, cfg.max_candidates,
                                       *cut_lines(geometry))
    dev = maps.device
    if len(b) == 0:
        return None
    kernels, los, pix = [], [], []
    for axis, c in enumerate((i, j)):
        scale, ratio = ops.to_output[axis]
        out = ((c.double() + 0.5) * scale - 0.5 + 0.5) * ratio - 0.5
        centre = torch.round(out).long().clamp_(0, geometry.output_size[axis] - 1)
        p = centre[:, None] + ops.offsets[axis]
        lo = ops.lo[axis][centre]
        kernels.append(ops.kernels[axis][centre])
        los.append(lo)
        pix.append(p)
    py_, px_ = ops.patch
    base = (b * NUM_MAPS + part) * (h * w)
    idx = (base[:, None, None] + (los[0][:, None, None] + torch.arange(py_, device=dev)[None, :, None]) * w
           + los[1][:, None, None] + torch.arange(px_, device=dev)[None, None, :])
    patch = maps.reshape(-1)[idx].float()
    s = kernels[0] @ patch @ kernels[1].transpose(1, 2)  # (n, W, W)
    c = s[:, 1:-1, 1:-1] + TIE_MARGIN
    inside = (((pix[0][:, 1:-1] >= 0) & (pix[0][:, 1:-1] < ho))[:, :, None]
              & ((pix[1][:, 1:-1] >= 0) & (pix[1][:, 1:-1] < wo))[:, None, :])
    ok = (inside & (c > cfg.peak_threshold) & (c >= s[:, :-2, 1:-1]) & (c >= s[:, 2:, 1:-1])
          & (c >= s[:, 1:-1, :-2]) & (c >= s[:, 1:-1, 2:]))
    n, wy, wx = torch.nonzero(ok, as_tuple=True)
    if len(n) == 0:
        return None
    yy, xx = pix[0][n, wy + 1], pix[1][n, wx + 1]
    key = torch.unique(((b[n] * NUM_KEYPOINTS + part[n]) * ho + yy) * wo + xx)  # sorted
    bp, rest = torch.div(key, ho * wo, rounding_mode="floor"), key % (ho * wo)
    yy, xx = torch.div(rest, wo, rounding_mode="floor"), rest % wo
    pb, pk = torch.div(bp, NUM_KEYPOINTS, rounding_mode="floor"), bp % NUM_KEYPOINTS
    # exact float64 re-test: the pixel and its 4 neighbours (0 outside the frame)
    flat = maps.reshape(-1)
    chan = (pb * NUM_MAPS + pk) * (h * w)
    values = []
    for dy, dx in NEIGHBOURS:
        y2, x2 = yy + dy, xx + dx
        inside = (y2 >= 0) & (y2 < ho) & (x2 >= 0) & (x2 < wo)
        v = _gather_weighted(flat, chan, y2.clamp(0, ho - 1), x2.clamp(0, wo - 1), ops.smooth_start,
                             ops.smooth_taps, w)
        values.append(torch.where(inside, v, torch.zeros_like(v)))
    values = torch.stack(values, dim=1)
    passes = (values[:, 0] > cfg.peak_threshold) & (values[:, :1] >= values[:, 1:]).all(dim=1)
    pb, pk, yy, xx, values, chan = pb[passes], pk[passes], yy[passes], xx[passes], values[passes], chan[passes]
    score = _gather_weighted(flat, chan, yy, xx, ops.tap_start, ops.taps, w)
    offset = torch.zeros((len(pb), 2), dtype=torch.float64, device=dev)
    if cfg.subpixel:
        for col, (m, p, coord, size) in enumerate(((3, 4, xx, wo), (1, 2, yy, ho))):
            denom = values[:, m] - 2 * values[:, 0] + values[:, p]
            safe = torch.where(denom < 0, denom, -torch.ones_like(denom))
            off = torch.clamp(0.5 * (values[:, m] - values[:, p]) / safe, -0.5, 0.5)
            offset[:, col] = torch.where((denom < 0) & (coord > 0) & (coord < size - 1), off, torch.zeros_like(off))
    return pb, pk, yy, xx, score, offset


def _limb_scores(maps: torch.Tensor, geometry: MapGeometry, ops: _DeviceOperators, cfg: ParseConfig,
                 pb, pk, yy, xx) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores ``(B, 19, K, K)`` (``-inf``: rejected or absent) of every candidate pair, with
    ``index`` ``(B, 18, K)`` the peak index of each (image, part, slot) (-1 absent)."""
    bsz, _, h, w = maps.shape
    dev = maps.device
    counts = torch.zeros((bsz, NUM_KEYPOINTS), dtype=torch.long, device=dev)
    counts.index_put_((pb, pk), torch.ones_like(pb), accumulate=True)
    kmax = int(counts.max()) if len(pb) else 0
    index = torch.full((bsz, NUM_KEYPOINTS, max(kmax, 1)), -1, dtype=torch.long, device=dev)
    if kmax == 0:
        return torch.full((bsz, len(LIMBS), 1, 1), -torch.inf, dtype=torch.float64, device=dev), index
    first = torch.cumsum(counts.flatten(), 0) - counts.flatten()  # peaks are sorted by (b, part)
    slot = torch.arange(len(pb), device=dev) - first[pb * NUM_KEYPOINTS + pk]
    index[pb, pk, slot] = torch.arange(len(pb), device=dev)
    limbs = torch.as_tensor(LIMBS, device=dev)
    ia = index[:, limbs[:, 0]]  # (B, 19, K)
    ib = index[:, limbs[:, 1]]
    valid = (ia[..., :, None] >= 0) & (ib[..., None, :] >= 0)  # (B, 19, K, K)
    vb, vl, va, vbb = torch.nonzero(valid, as_tuple=True)
    scores = torch.full(valid.shape, -torch.inf, dtype=torch.float64, device=dev)
    if len(vb) == 0:
        return scores, index
    pa, pbb = ia[vb, vl, va], ib[vb, vl, vbb]
    start = torch.stack([xx[pa], yy[pa]], dim=1).double()
    end = torch.stack([xx[pbb], yy[pbb]], dim=1).double()
    delta = end - start
    norm = torch.linalg.vector_norm(delta, dim=1).clamp_min(MIN_NORM)
    unit = delta / norm[:, None]
    s = cfg.num_samples
    t = torch.linspace(0.0, 1.0, s, dtype=torch.float64, device=dev)
    pts = start[:, None, :] + t[None, :, None] * delta[:, None, :]
    pts[:, -1] = end
    sx, sy = torch.round(pts[..., 0]).long(), torch.round(pts[..., 1]).long()
    chans = torch.as_tensor(PAF_CHANNELS, device=dev)[vl] + NUM_KEYPOINTS  # (P, 2) channels in the 56
    flat = maps.reshape(-1)

    def project(rows: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        k = len(samples)
        ys, xs = sy[rows][:, samples].reshape(-1), sx[rows][:, samples].reshape(-1)
        u = []
        for c in (0, 1):
            base = ((vb[rows] * NUM_MAPS + chans[rows, c]) * (h * w)).repeat_interleave(k)
            u.append(_gather_weighted(flat, base, ys, xs, ops.tap_start, ops.taps, w).reshape(-1, k))
        return u[0] * unit[rows, :1] + u[1] * unit[rows, 1:]

    allowed = s - (int(np.floor(cfg.min_above_fraction * s)) + 1)
    everything = torch.arange(len(vb), device=dev)
    proj = torch.zeros((len(vb), s), dtype=torch.float64, device=dev)
    alive = torch.ones(len(vb), dtype=torch.bool, device=dev)
    if 0 <= allowed < s - 1:
        probe = torch.arange(allowed + 1, device=dev) + (s - allowed - 1) // 2
        proj[:, probe] = project(everything, probe)
        alive = (proj[:, probe] > cfg.paf_threshold).any(dim=1)
        mask = torch.ones(s, dtype=torch.bool, device=dev)
        mask[probe] = False
        rest = torch.nonzero(mask, as_tuple=True)[0]
        rows = everything[alive]
        if len(rows):
            proj[rows[:, None], rest[None, :]] = project(rows, rest)
    else:
        proj = project(everything, torch.arange(s, device=dev))
    score = proj.mean(dim=1) + torch.clamp(0.5 * geometry.output_size[0] / norm - 1.0, max=0.0)
    above = (proj > cfg.paf_threshold).sum(dim=1) > cfg.min_above_fraction * s
    ok = alive & above & (score > 0)
    scores[vb, vl, va, vbb] = torch.where(ok, score, torch.full_like(score, -torch.inf))
    return scores, index


@torch.inference_mode()
def parse_pose_maps_torch(maps: torch.Tensor, image_size: tuple[int, int] | None = None,
                          config: ParseConfig | None = None, *, valid_size: tuple[int, int] | None = None,
                          output_size: tuple[int, int] | None = None) -> list[PoseDetections]:
    """People in each image of a batch of maps ``(B, 56, h, w)`` (or ``(56, h, w)``) on any device.

    Same arguments and results as :func:`spot_edge.pose.parse.parse_pose_maps` (one
    :class:`~spot_edge.pose.parse.PoseDetections` per image, keypoints on the host).
    """
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"parse_pose_maps_torch needs a torch tensor, got {type(maps).__name__}; "
                        "use parse_pose_maps for numpy maps")
    cfg = config or ParseConfig()
    if maps.ndim == 3:
        maps = maps[None]
    if maps.ndim != 4 or maps.shape[1] != NUM_MAPS or maps.shape[2] < 1 or maps.shape[3] < 1:
        raise ValueError(f"expected pose maps (B, {NUM_MAPS}, h, w), got {tuple(maps.shape)}")
    maps = torch.nan_to_num(maps.float(), nan=0.0, posinf=0.0, neginf=0.0).contiguous()
    geometry = MapGeometry.create(maps.shape[2:], image_size, valid_size, output_size, sigma=cfg.smoothing_sigma)
    ops = _operators(geometry, str(maps.device))
    bsz = maps.shape[0]
    found = _find_peaks(maps, geometry, ops, cfg)
    if found is None:
        return [detections_from(Peaks.empty(NUM_KEYPOINTS), assemble_people([np.zeros((0, 0))] * len(LIMBS),
                                np.zeros(NUM_KEYPOINTS, np.int64), np.zeros(0)), geometry,
                                map_pixels=image_size is None) for _ in range(bsz)]
    pb, pk, yy, xx, score, offset = found
    scores, index = _limb_scores(maps, geometry, ops, cfg, pb, pk, yy, xx)
    # to the host: the candidates and the pair scores
    pb_h, pk_h = pb.cpu().numpy(), pk.cpu().numpy()
    xy_h = torch.stack([xx, yy], dim=1).cpu().numpy()
    score_h, offset_h = score.cpu().numpy(), offset.cpu().numpy()
    scores_h = scores.cpu().numpy()
    out = []
    for b in range(bsz):
        sel = pb_h == b
        counts = np.bincount(pk_h[sel], minlength=NUM_KEYPOINTS).astype(np.int64)
        peaks = Peaks(part=pk_h[sel], xy=xy_h[sel], offset=offset_h[sel], score=score_h[sel], counts=counts)
        limb_scores = [scores_h[b, limb, :counts[a], :counts[c]] for limb, (a, c) in enumerate(LIMBS)]
        people = assemble_people(limb_scores, peaks.starts, peaks.score, cfg.min_parts, cfg.min_mean_score)
        out.append(detections_from(peaks, people, geometry, map_pixels=image_size is None))
    return out




def parse_pose_batch(maps, image_size: tuple[int, int] | None = None, config: ParseConfig | None = None, *,
                     valid_size: tuple[int, int] | None = None,
                     output_size: tuple[int, int] | None = None) -> list[PoseDetections]:
    """Parse ``(B, 56, h, w)`` (or ``(56, h, w)``) maps where they are: tensors on a GPU with
    :func:`parse_pose_maps_torch` on that GPU, anything on the host with the numpy parser."""
    from spot_edge.pose.parse import parse_pose_maps

    if isinstance(maps, torch.Tensor) and maps.device.type != "cpu":
        return parse_pose_maps_torch(maps, image_size, config, valid_size=valid_size, output_size=output_size)
    arr = maps.detach().float().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"expected pose maps (B, {NUM_MAPS}, h, w), got shape {arr.shape}")
    return [parse_pose_maps(m, image_size, config, valid_size=valid_size, output_size=output_size) for m in arr]


__all__ = ["parse_pose_maps_torch", "parse_pose_batch"]
