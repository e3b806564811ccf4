"""Person crops of a frame and of its pose maps, so one full-frame pose pass serves every person.

For each person box the crop region is the box grown (about its centre) to the crop's aspect
ratio, optionally enlarged by ``expand``; the region is sampled into the image crop (default
288x144, SPOT's input) and into the pose-map crop (default 36x18, the stride-8 resolution of that
crop, i.e. what OpenPose run on the crop itself would give). Parts of the region outside the frame
are padded (image: ``pad_value``; maps: 0 = no keypoint / no limb). Because the scale is the same
along x and y, PAF unit vectors stay unit vectors in the crop.

All boxes of a frame are cropped in one batched ``grid_sample`` call (bilinear,
``align_corners=False``; regions shrunk by more than 1.5x are supersampled and averaged, up to 4x).

Coordinates: boxes are ``(x0, y0, x1, y1)`` in frame pixels, edges (a box covering pixels 0..9 is
``(0, 0, 10, 10)``). Pose maps at ``stride`` s cover frame pixels ``[s j, s (j + 1))`` with map
pixel ``j``, as produced by :class:`~spot_edge.pose.network.PoseEstimator` (s = 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from spot_edge.pose.skeleton import NUM_KEYPOINTS, NUM_MAPS


@dataclass(frozen=True)
class CropSpec:
    """Crop geometry.

    Attributes:
        height, width: image crop size (SPOT: 288 x 144).
        map_height, map_width: pose-map crop size; ``None`` = image crop size / 8 (36 x 18).
        expand: fraction by which the aspect-fitted box is enlarged (0.1 = 10% larger each way).
        pad_value: image value outside the frame.
    """

    height: int = 288
    width: int = 144
    map_height: int | None = None
    map_width: int | None = None
    expand: float = 0.0
    pad_value: float = 0.0

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"crop size must be positive, got {self.height}x{self.width}")
        if self.expand < 0 or self.expand > 10:
            raise ValueError(f"expand must be in [0, 10], got {self.expand}")

    @property
    def map_size(self) -> tuple[int, int]:
        return (self.map_height or max(self.height // 8, 1), self.map_width or max(self.width // 8, 1))


@dataclass
class PersonCrops:
    """Crops of one frame.

    Attributes:
        images: ``(N, H, W, 3)`` uint8 for a numpy frame, ``(N, 3, H, W)`` float for a tensor frame
            (same channel order as the frame).
        maps: ``(N, 56, h, w)`` float32 tensor, or ``None`` when no maps were given.
        regions: ``(N, 4)`` float32 crop regions ``(x0, y0, x1, y1)`` in frame pixels (aspect-fitted).
    """

    images: np.ndarray | torch.Tensor
    maps: torch.Tensor | None
    regions: np.ndarray

    def __len__(self) -> int:
        return int(self.regions.shape[0])


def _check_boxes(boxes) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return np.zeros((0, 4))
    if b.ndim == 1:
        b = b[None]
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) = (x0, y0, x1, y1), got shape {b.shape}")
    if not np.isfinite(b).all():
        raise ValueError("boxes contain NaN or infinite coordinates")
    if ((b[:, 2] - b[:, 0]) <= 0).any() or ((b[:, 3] - b[:, 1]) <= 0).any():
        raise ValueError(f"boxes must have x1 > x0 and y1 > y0, got {b[((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))][:3].tolist()}")
    return b


def fit_boxes_to_aspect(boxes, aspect: float, expand: float = 0.0) -> np.ndarray:
    """Grow boxes ``(N, 4)`` about their centres to height/width = ``aspect``, then by ``1 + expand``."""
    b = _check_boxes(boxes)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    bh_fit = np.maximum(bh, bw * aspect) * (1.0 + expand)
    bw_fit = bh_fit / aspect
    return np.stack([cx - bw_fit / 2, cy - bh_fit / 2, cx + bw_fit / 2, cy + bh_fit / 2], axis=1).astype(np.float32)


def _affine(regions: np.ndarray, in_h: float, in_w: float) -> torch.Tensor:
    """``affine_grid`` matrices mapping the output's [-1, 1] square onto each region of an input
    of size ``in_h x in_w`` (edge coordinates, ``align_corners=False``)."""
    x0, y0, x1, y1 = (regions[:, i].astype(np.float64) for i in range(4))
    bw, bh = x1 - x0, y1 - y0
    theta = np.zeros((len(regions), 2, 3))
    theta[:, 0, 0] = bw / in_w
    theta[:, 0, 2] = (2 * x0 + bw) / in_w - 1
    theta[:, 1, 1] = bh / in_h
    theta[:, 1, 2] = (2 * y0 + bh) / in_h - 1
    return torch.from_numpy(theta).float()


def _sample(src: torch.Tensor, regions: np.ndarray, out_hw: tuple[int, int], scale: float,
            max_supersample: int = 4) -> torch.Tensor:
    """Crop ``src`` ``(C, H, W)`` at ``regions / scale`` into ``(N, C, h, w)``, zeros outside.

    When a region shrinks by more than 1.5x, it is sampled at k times the output size and
    average-pooled (k <= ``max_supersample``), so thin PAF bands and peaks are not aliased away.
    """
    n = len(regions)
    shrink = float(np.max((regions[:, 3] - regions[:, 1]) / scale / out_hw[0]))
    k = int(min(max(np.ceil(shrink - 0.5), 1), max_supersample))
    theta = _affine(regions / scale, src.shape[1], src.shape[2]).to(src.device)
    size = [n, src.shape[0], out_hw[0] * k, out_hw[1] * k]
    grid = F.affine_grid(theta, size, align_corners=False)
    out = F.grid_sample(src[None].expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return F.avg_pool2d(out, k) if k > 1 else out


def crop_people(frame, boxes, maps=None, stride: float = 8.0, spec: CropSpec = CropSpec()) -> PersonCrops:
    """Image and pose-map crops of the people in one frame.

    Args:
        frame: ``(H, W, 3)`` uint8 numpy (BGR or RGB, kept) or a ``(3, H, W)`` tensor.
        boxes: ``(N, 4)`` person boxes in frame pixels (e.g. ``PoseDetections.boxes``, or a
            detector's). ``N = 0`` gives empty crops.
        maps: optional ``(56, h_m, w_m)`` (or ``(1, 56, h_m, w_m)``) pose maps of the whole frame
            at ``stride`` (numpy or torch).
        stride: frame pixels per map pixel.
        spec: crop geometry, see :class:`CropSpec`.

    Returns:
        :class:`PersonCrops`.
    """
    as_numpy = isinstance(frame, np.ndarray)
    if as_numpy:
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3), got shape {frame.shape}")
        img = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float()
    elif isinstance(frame, torch.Tensor):
        if frame.ndim != 3 or frame.shape[0] != 3:
            raise ValueError(f"frame tensor must be (3, H, W), got shape {tuple(frame.shape)}")
        img = frame.float()
    else:
        raise TypeError(f"frame must be a numpy array or a torch tensor, got {type(frame).__name__}")
    if img.shape[1] == 0 or img.shape[2] == 0:
        raise ValueError(f"empty frame: shape {tuple(frame.shape)}")
    regions = fit_boxes_to_aspect(boxes, spec.height / spec.width, spec.expand)
    n = len(regions)

    if n:
        crops = _sample(img - spec.pad_value, regions, (spec.height, spec.width), 1.0) + spec.pad_value
    else:
        crops = img.new_zeros((0, 3, spec.height, spec.width))
    if as_numpy:
        images = crops.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    else:
        images = crops.to(frame.dtype) if frame.is_floating_point() else crops

    map_crops = None
    if maps is not None:
        m = torch.as_tensor(np.asarray(maps) if not isinstance(maps, torch.Tensor) else maps).float()
        if m.ndim == 4 and m.shape[0] == 1:
            m = m[0]
        if m.ndim != 3 or m.shape[0] != NUM_MAPS:
            raise ValueError(f"maps must be ({NUM_MAPS}, h, w) for one frame, got {tuple(m.shape)}")
        if not stride > 0:
            raise ValueError(f"stride must be positive, got {stride}")
        covered_h, covered_w = m.shape[1] * stride, m.shape[2] * stride
        if covered_h < img.shape[1] - stride or covered_w < img.shape[2] - stride:
            raise ValueError(
                f"maps {tuple(m.shape[1:])} at stride {stride} cover {covered_h:.0f}x{covered_w:.0f} frame pixels "
                f"but the frame is {img.shape[1]}x{img.shape[2]}: wrong stride or maps of another frame")
        map_crops = (_sample(m, regions, spec.map_size, stride) if n
                     else m.new_zeros((0, NUM_MAPS, *spec.map_size)))
    return PersonCrops(images=images, maps=map_crops, regions=regions)


def keypoints_to_crop(keypoints, region, spec: CropSpec = CropSpec(), to_maps: bool = False) -> np.ndarray:
    """Move keypoints ``(P, 18, 3)`` (frame pixels) into the coordinates of one crop ``region``.

    Pixel-centre convention; with ``to_maps=True`` the result is in pose-map-crop pixels. Use with
    :func:`spot_edge.pose.render.render_pose_maps` to render a crop's maps from keypoints instead of
    cropping network maps. Visibility is kept.
    """
    kp = np.asarray(keypoints, dtype=np.float32).copy()
    if kp.ndim == 2:
        kp = kp[None]
    if kp.ndim != 3 or kp.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints must be (P, 18, 3), got {kp.shape}")
    x0, y0, x1, y1 = (float(v) for v in np.asarray(region, dtype=np.float64).reshape(4))
    out_h, out_w = spec.map_size if to_maps else (spec.height, spec.width)
    kp[..., 0] = (kp[..., 0] + 0.5 - x0) * out_w / (x1 - x0) - 0.5
    kp[..., 1] = (kp[..., 1] + 0.5 - y0) * out_h / (y1 - y0) - 0.5
    return kp


__all__ = ["CropSpec", "PersonCrops", "fit_boxes_to_aspect", "crop_people", "keypoints_to_crop"]
