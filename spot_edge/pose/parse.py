"""Parse the 56 OpenPose maps into people, exactly as the original post-processing does (numpy).

The algorithm is OpenPose's bottom-up association (Cao et al., TPAMI 2021, Sec. 3.3-3.4) in the
form of the original Python/Matlab demo (``docs/pose-maps.md``): the maps are read at frame
resolution (bicubic upsampling; peaks of the Gaussian-blurred keypoint maps,
:mod:`spot_edge.pose.peaks`), each limb's candidate pairs are scored by the PAF line integral
with the distance prior (:mod:`spot_edge.pose.limbs`), pairs are matched greedily and assembled
into people (:mod:`spot_edge.pose.grouping`).

Nothing is computed at full resolution: the upsampled and blurred maps are evaluated only where
they are read (windows around the stride-8 peaks, the limb samples), through the per-axis
operators of :mod:`spot_edge.pose.resample`. The torch twin for maps on a GPU is
:mod:`spot_edge.pose.device_parse`. Torch tensors given here are moved to numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spot_edge.pose.grouping import People, assemble_people
from spot_edge.pose.limbs import limb_pair_scores
from spot_edge.pose.peaks import Peaks, find_peaks
from spot_edge.pose.resample import SMOOTH_SIGMA, MapGeometry
from spot_edge.pose.skeleton import NUM_KEYPOINTS, NUM_MAPS, PAF_OFFSET

MIN_CONFIDENCE = 1e-6  # a found keypoint never reports confidence <= 0 (that means "absent")


@dataclass(frozen=True)
class ParseConfig:
    """Thresholds of the association (defaults: the original COCO post-processing).

    Attributes:
        peak_threshold: blurred keypoint-map value a peak must exceed (the original's thre1).
        paf_threshold: PAF projection a limb sample must exceed (thre2).
        min_above_fraction: fraction of samples that must exceed ``paf_threshold`` (strictly more).
        num_samples: points sampled along each candidate limb.
        min_parts: people with fewer keypoints are dropped.
        min_mean_score: people whose score / parts is lower are dropped.
        max_candidates: per keypoint type, at most this many map-resolution peaks are examined
            (the strongest; bounds the work on noisy maps).
        subpixel: refine keypoints within +-0.5 px (parabola through the blurred map); ``False``
            returns the original's integer peak pixels.
        smoothing_sigma: Gaussian blur before the peak search, frame pixels.
    """

    peak_threshold: float = 0.1
    paf_threshold: float = 0.05
    min_above_fraction: float = 0.8
    num_samples: int = 10
    min_parts: int = 4
    min_mean_score: float = 0.4
    max_candidates: int = 128
    subpixel: bool = True
    smoothing_sigma: float = SMOOTH_SIGMA

    def __post_init__(self) -> None:
        if not self.peak_threshold >= 0:
            raise ValueError(f"peak_threshold must be >= 0, got {self.peak_threshold}")
        if self.num_samples < 2:
            raise ValueError(f"num_samples must be >= 2, got {self.num_samples}")
        if not 0 <= self.min_above_fraction <= 1:
            raise ValueError(f"min_above_fraction must be in [0, 1], got {self.min_above_fraction}")
        if self.max_candidates < 1:
            raise ValueError(f"max_candidates must be >= 1, got {self.max_candidates}")
        if not self.smoothing_sigma >= 0:
            raise ValueError(f"smoothing_sigma must be >= 0, got {self.smoothing_sigma}")


@dataclass
class PoseDetections:
    """People found in one image.

    Attributes:
        keypoints: ``(N, 18, 3)`` float32 (x, y, confidence); absent keypoints are (0, 0, 0).
            Coordinates are in frame pixels (pixel centres at integers) when an ``image_size``
            was given, else in map pixels.
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
    if not (np.isfinite(arr.min()) and np.isfinite(arr.max())):  # NaN / Inf read as "nothing here"
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    return np.ascontiguousarray(arr)


def parse_pose_maps(maps, image_size: tuple[int, int] | None = None, config: ParseConfig | None = None, *,
                    valid_size: tuple[int, int] | None = None,
                    output_size: tuple[int, int] | None = None) -> PoseDetections:
    """Find people in one image's pose maps, as the original OpenPose post-processing does.

    Args:
        maps: ``(56, h, w)`` (or ``(1, 56, h, w)``) numpy array or torch tensor, layout of
            :mod:`spot_edge.pose.skeleton`, raw network output (values above 1 are fine: they
            are read as they are, like the original does).
        image_size: ``(H, W)`` the maps cover (the padded network input, normally 8 x the map
            size). ``None``: 8 x the map size, and keypoints come back in *map* pixels.
        config: thresholds, see :class:`ParseConfig`.
        valid_size: the top-left part of ``image_size`` that is the frame (the rest is padding);
            default all of it.
        output_size: size of the frame the keypoints are returned in when the frame was resized
            for the network; default ``valid_size``.

    Returns:
        :class:`PoseDetections`, people sorted by score (empty when nobody is found). Keypoints
        are the original's peak pixels plus a sub-pixel offset (``config.subpixel``), confidences
        the upsampled keypoint map at the peak.
    """
    cfg = config or ParseConfig()
    arr = _to_numpy(maps)
    geometry = MapGeometry.create(arr.shape[1:], image_size, valid_size, output_size, sigma=cfg.smoothing_sigma)
    peaks = find_peaks(arr[:NUM_KEYPOINTS], geometry, cfg.peak_threshold, cfg.max_candidates, cfg.subpixel)
    scores = limb_pair_scores(arr[PAF_OFFSET:], peaks, geometry, cfg.num_samples, cfg.paf_threshold,
                              cfg.min_above_fraction)
    people = assemble_people(scores, peaks.starts, peaks.score, cfg.min_parts, cfg.min_mean_score)
    return detections_from(peaks, people, geometry, map_pixels=image_size is None)


def detections_from(peaks: Peaks, people: People, geometry: MapGeometry, map_pixels: bool = False) -> PoseDetections:
    """:class:`PoseDetections` from candidates and assembled people (keypoints in output pixels,
    or map pixels with ``map_pixels=True``), sorted by mean score, highest first."""
    mean = people.totals / np.maximum(people.counts, 1e-12)
    order = np.argsort(-mean, kind="stable")
    slots = people.slots[order]
    keypoints = np.zeros((len(slots), NUM_KEYPOINTS, 3), dtype=np.float32)
    present = slots >= 0
    idx = slots[present]
    pos = peaks.xy[idx] + peaks.offset[idx]
    if map_pixels:
        pos = np.stack([geometry.to_map(pos[:, 0], 1), geometry.to_map(pos[:, 1], 0)], axis=1)
    keypoints[present, :2] = pos
    keypoints[present, 2] = np.maximum(peaks.score[idx], MIN_CONFIDENCE)
    num_parts = present.sum(axis=1)
    return PoseDetections(keypoints=keypoints, scores=mean[order].astype(np.float32),
                          boxes=keypoint_boxes(keypoints), num_parts=num_parts.astype(np.int64))


def parse_pose_maps_batch(maps, image_size: tuple[int, int] | None = None, config: ParseConfig | None = None,
                          **geometry) -> list[PoseDetections]:
    """:func:`parse_pose_maps` over a batch ``(B, 56, h, w)``; one :class:`PoseDetections` per image."""
    if getattr(maps, "ndim", 0) != 4:
        raise ValueError(f"expected a batch of pose maps (B, {NUM_MAPS}, h, w), got shape {tuple(maps.shape)}")
    return [parse_pose_maps(m, image_size, config, **geometry) for m in maps]


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


def expand_keypoint_boxes(boxes: np.ndarray, margin: float, image_size: tuple[int, int]) -> np.ndarray:
    """Grow tight keypoint boxes ``(N, 4)`` by ``margin`` of their size on each side (keypoint boxes
    miss the top of the head and the feet), clipped to the frame ``(H, W)``."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    if len(b) == 0:
        return b
    w = np.maximum(b[:, 2] - b[:, 0], 1.0)
    h = np.maximum(b[:, 3] - b[:, 1], 1.0)
    b[:, 0] -= margin * w
    b[:, 2] += margin * w
    b[:, 1] -= margin * h
    b[:, 3] += margin * h
    hh, ww = image_size
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, ww)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, hh)
    return b


__all__ = ["ParseConfig", "PoseDetections", "parse_pose_maps", "parse_pose_maps_batch", "detections_from",
           "keypoint_boxes", "expand_keypoint_boxes"]
