"""Person crops of a frame and of its pose maps, so one full-frame pose pass serves every person.

For each person box the crop region is the box grown (about its centre) to the crop's aspect
ratio, optionally enlarged by ``expand``; the region is sampled into the image crop (default
288x144, SPOT's input) and into the pose-map crop (default 36x18, the stride-8 resolution of that
crop, i.e. what OpenPose run on the crop itself would give). Parts of the region outside the frame
are padded (image: ``pad_value``; maps: 0 = no keypoint / no limb). Because the scale is the same
along x and y, PAF unit vectors stay unit vectors in the crop.

All boxes of a frame are cropped in one batched ``grid_sample`` call (bilinear,
``align_corners=False``; regions shrunk by more than 1.5x are supersampled and averaged, up to 4x),
on the device of the frame and maps: with tensors on a GPU the crops never leave it, and with
``preprocessing=`` they come out as the embedder's normalised input. The maps are clamped to
OpenPose's output ranges before cropping (raw network maps are parsed unclamped, see
``docs/pose-maps.md``).

Coordinates: boxes are ``(x0, y0, x1, y1)`` in frame pixels, edges (a box covering pixels 0..9 is
``(0, 0, 10, 10)``). Pose maps at ``stride`` s cover frame pixels ``[s j, s (j + 1))`` with map
pixel ``j``, as produced by :class:`~spot_edge.pose.network.PoseEstimator` (s = 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from spot_edge.pose.skeleton import NUM_KEYPOINTS, NUM_MAPS, clamp_pose_maps
from spot_edge.preprocessing import PreprocessSpec


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
            (same channel order as the frame); with ``preprocessing`` the normalised network input
            ``(N, 3, height, width)`` float32 (numpy for a numpy frame).
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
    bad = (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
    if bad.any():
        raise ValueError(f"boxes must have x1 > x0 and y1 > y0, got {b[bad][:3].tolist()}")
    return b


def fit_boxes_to_aspect(boxes, aspect: float, expand: float = 0.0) -> np.ndarray:
    """Grow boxes ``(N, 4)`` about their centres to height/width = ``aspect``, then by ``1 + expand``."""
    b = _check_boxes(boxes)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    bh_fit = np.maximum(bh, bw * aspect) * (1.0 + expand)
    bw_fit = bh_fit / aspect
    return np.stack([cx - bw_fit / 2, cy - bh_fit / 2, cx + bw_fit / 2, cy + bh_fit / 2], axis=1).astype(np.float32)


def _grid(regions: np.ndarray, in_h: int, in_w: int, out_h: int, out_w: int, device) -> torch.Tensor:
    """``grid_sample`` grid ``(N, out_h, out_w, 2)`` reading each region of an ``in_h x in_w``
    input at the output's pixel centres (normalised coordinates, ``align_corners=False``).

    The regions are axis-aligned, so x depends on the column only and y on the row only: the
    grid is two broadcast 1-D ramps (what ``affine_grid`` would compute, without its batched
    matrix product).
    """
    r = torch.as_tensor(np.asarray(regions, np.float64), device=device)
    cols = (torch.arange(out_w, device=device, dtype=torch.float64) + 0.5) / out_w
    rows = (torch.arange(out_h, device=device, dtype=torch.float64) + 0.5) / out_h
    gx = (r[:, 0:1] + cols * (r[:, 2:3] - r[:, 0:1])) * (2.0 / in_w) - 1.0  # (N, out_w)
    gy = (r[:, 1:2] + rows * (r[:, 3:4] - r[:, 1:2])) * (2.0 / in_h) - 1.0  # (N, out_h)
    grid = torch.empty((len(regions), out_h, out_w, 2), dtype=torch.float32, device=device)
    grid[..., 0].copy_(gx[:, None, :])
    grid[..., 1].copy_(gy[:, :, None])
    return grid


def _sample(src: torch.Tensor, regions: np.ndarray, out_hw: tuple[int, int], scale: float | tuple[float, float],
            max_supersample: int = 4) -> torch.Tensor:
    """Crop ``src`` ``(C, H, W)`` at ``regions / scale`` into ``(N, C, h, w)``, zeros outside
    (``scale``: one factor, or ``(y, x)`` factors).

    When a region shrinks by more than 1.5x, it is sampled at k times the output size and
    average-pooled (k <= ``max_supersample``), so thin PAF bands and peaks are not aliased away.
    """
    n = len(regions)
    sy, sx = (scale, scale) if np.isscalar(scale) else scale
    regions = regions / np.array([sx, sy, sx, sy], dtype=np.float64)
    shrink = float(np.max((regions[:, 3] - regions[:, 1]) / out_hw[0]))
    k = int(min(max(np.ceil(shrink - 0.5), 1), max_supersample))
    grid = _grid(regions, src.shape[1], src.shape[2], out_hw[0] * k, out_hw[1] * k, src.device)
    out = F.grid_sample(src[None].expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return F.avg_pool2d(out, k) if k > 1 else out


def crop_people(frame, boxes, maps=None, stride: float | tuple[float, float] = 8.0, spec: CropSpec = CropSpec(),
                clamp_maps: bool = True, preprocessing: PreprocessSpec | None = None,
                frame_channel_order: str = "BGR") -> PersonCrops:
    """Image and pose-map crops of the people in one frame.

    Args:
        frame: ``(H, W, 3)`` uint8 numpy (BGR or RGB, kept) or a ``(3, H, W)`` tensor (on any
            device: the crops stay there).
        boxes: ``(N, 4)`` person boxes in frame pixels (e.g. ``PoseDetections.boxes``, or a
            detector's). ``N = 0`` gives empty crops.
        maps: optional ``(56, h_m, w_m)`` (or ``(1, 56, h_m, w_m)``) pose maps of the whole frame
            at ``stride`` (numpy or torch; a tensor is cropped on its device).
        stride: frame pixels per map pixel, or ``(y, x)`` strides when the frame was resized for
            the network with different factors along the two axes.
        spec: crop geometry, see :class:`CropSpec`.
        clamp_maps: truncate the maps to OpenPose's output ranges first (keypoint maps [0, 1],
            PAFs [-1, 1], :func:`~spot_edge.pose.skeleton.clamp_pose_maps`): raw network maps
            can exceed them, the maps SPOT is trained on do not.
        preprocessing: return the image crops as the embedder's input instead: ``(N, 3,
            height, width)`` float32 (numpy for a numpy frame, else a tensor on the frame's
            device), normalised per the spec and sampled directly at the spec's size: equal to
            ``preprocessing.batch`` of the uint8 crops up to their rounding (< 0.5 grey level),
            without the uint8 round trip.
        frame_channel_order: ``"BGR"`` (OpenCV) or ``"RGB"``, for ``preprocessing``.

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

    if preprocessing is not None:
        images = _network_input_crops(img, regions, spec, preprocessing, frame_channel_order)
        if as_numpy:
            images = images.numpy()
    else:
        if n:
            src = img - spec.pad_value if spec.pad_value else img
            crops = _sample(src, regions, (spec.height, spec.width), 1.0)
            if spec.pad_value:
                crops += spec.pad_value
        else:
            crops = img.new_zeros((0, 3, spec.height, spec.width))
        if as_numpy:
            images = crops.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        else:
            images = crops.to(frame.dtype) if frame.is_floating_point() else crops

    map_crops = None
    if maps is not None:
        m = maps if isinstance(maps, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(maps))
        m = m.float()
        if m.ndim == 4 and m.shape[0] == 1:
            m = m[0]
        if m.ndim != 3 or m.shape[0] != NUM_MAPS:
            raise ValueError(f"maps must be ({NUM_MAPS}, h, w) for one frame, got {tuple(m.shape)}")
        sy, sx = (stride, stride) if np.isscalar(stride) else (float(stride[0]), float(stride[1]))
        if not (sy > 0 and sx > 0):
            raise ValueError(f"stride must be positive, got {stride}")
        covered_h, covered_w = m.shape[1] * sy, m.shape[2] * sx
        if covered_h < img.shape[1] - sy or covered_w < img.shape[2] - sx:
            raise ValueError(
                f"maps {tuple(m.shape[1:])} at stride {stride} cover {covered_h:.0f}x{covered_w:.0f} frame pixels "
                f"but the frame is {img.shape[1]}x{img.shape[2]}: wrong stride or maps of another frame")
        if clamp_maps:
            m = clamp_pose_maps(m)
        map_crops = (_sample(m, regions, spec.map_size, (sy, sx)) if n
                     else m.new_zeros((0, NUM_MAPS, *spec.map_size)))
    return PersonCrops(images=images, maps=map_crops, regions=regions)


def _network_input_crops(img: torch.Tensor, regions: np.ndarray, spec: CropSpec, preprocessing: PreprocessSpec,
                         frame_channel_order: str) -> torch.Tensor:
    """Crops of ``img`` ``(3, H, W)`` (values 0..255) normalised per ``preprocessing``.

    Normalisation is affine per channel, so it commutes with the bilinear sampling: whichever of
    the frame and the crops has fewer pixels is normalised.
    """
    if frame_channel_order not in ("BGR", "RGB"):
        raise ValueError(f"frame_channel_order must be 'BGR' or 'RGB', got {frame_channel_order!r}")
    if not len(regions):
        return img.new_zeros((0, 3, *preprocessing.size))
    # (x / 255 - mean) / std as one multiply-add per channel, channels reordered on the way; the
    # source is sampled with the pad value subtracted, so that the zero padding means "pad value"
    order = [2, 1, 0] if frame_channel_order != preprocessing.channel_order else [0, 1, 2]
    scale = [1.0 / (255.0 * sd) for sd in preprocessing.std]
    pad = [(spec.pad_value / 255.0 - m) / sd for m, sd in zip(preprocessing.mean, preprocessing.std)]
    out_pixels = len(regions) * preprocessing.height * preprocessing.width
    if out_pixels < img.shape[1] * img.shape[2]:  # few people: crop, then normalise the crops
        crops = _sample(img - spec.pad_value if spec.pad_value else img, regions, preprocessing.size, 1.0)
        out = torch.empty_like(crops)
        for c, k in enumerate(order):
            torch.mul(crops[:, k], scale[c], out=out[:, c]).add_(pad[c])
        return out
    src = torch.empty((3, *img.shape[1:]), dtype=torch.float32, device=img.device)
    for c, k in enumerate(order):  # the normalised frame minus the normalised pad value
        torch.mul(img[k], scale[c], out=src[c]).add_(-spec.pad_value * scale[c])
    crops = _sample(src, regions, preprocessing.size, 1.0)
    for c in range(3):
        crops[:, c].add_(pad[c])
    return crops


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
