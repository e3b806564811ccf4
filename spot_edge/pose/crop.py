"""Person crops of a frame and of its pose maps, so one full-frame pose pass serves every person.

For each person box the crop region is the box grown (about its centre) to the crop's aspect
ratio, optionally enlarged by ``expand``; the region is sampled into the image crop (default
288x144, SPOT's input) and into the pose-map crop (default 36x18, the stride-8 resolution of that
crop, i.e. what OpenPose run on the crop itself would give). Parts of the region outside the frame
are padded (image: ``pad_value``; maps: 0 = no keypoint / no limb). Because the scale is the same
along x and y, PAF unit vectors stay unit vectors in the crop.

Sampling is bilinear at the output pixels' centres (``align_corners=False``); a region shrunk by
more than 1.5x is sampled at k times the output size and averaged (k up to 4, per region), so
thin PAF bands and peaks are not aliased away. The crops are made where the frame is:

- a numpy frame, on the host, one thread: the image crops with OpenCV's affine warp (4 channels,
  its fast path; positions quantised to 1/32 pixel, values rounded to grey levels) and, with
  ``preprocessing=``, normalised straight into the ``(N, 3, H, W)`` network input; the map crops
  as two small matrix products per person (separable bilinear weights over the rows and columns
  the region reads, all 56 maps at once): exact;
- a tensor frame (any device, e.g. the GPU the pose network ran on): every box in one
  ``grid_sample`` call per supersampling factor, the crops stay on that device.

The maps are clamped to OpenPose's output ranges before cropping (raw network maps are parsed
unclamped, see ``docs/pose-maps.md``).

Coordinates: boxes are ``(x0, y0, x1, y1)`` in frame pixels, edges (a box covering pixels 0..9 is
``(0, 0, 10, 10)``). Pose maps at ``stride`` s cover frame pixels ``[s j, s (j + 1))`` with map
pixel ``j``, as the pose estimators produce them (s = 8; :mod:`spot_edge.backends.pose_estimators`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spot_edge.pose import crop_device, crop_host
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
        maps: ``(N, 56, h, w)`` float32 (numpy for a numpy frame, else a tensor on the frame's
            device), or ``None`` when no maps were given.
        regions: ``(N, 4)`` float32 crop regions ``(x0, y0, x1, y1)`` in frame pixels (aspect-fitted).
    """

    images: np.ndarray | torch.Tensor
    maps: np.ndarray | torch.Tensor | None
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


def _frame_tensor(frame) -> torch.Tensor | None:
    """A tensor frame as float ``(3, H, W)``, ``None`` for a numpy frame (both checked)."""
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame must be (H, W, 3), got shape {frame.shape}")
        if frame.shape[0] == 0 or frame.shape[1] == 0:
            raise ValueError(f"empty frame: shape {frame.shape}")
        return None
    if not isinstance(frame, torch.Tensor):
        raise TypeError(f"frame must be a numpy array or a torch tensor, got {type(frame).__name__}")
    if frame.ndim != 3 or frame.shape[0] != 3:
        raise ValueError(f"frame tensor must be (3, H, W), got shape {tuple(frame.shape)}")
    if frame.shape[1] == 0 or frame.shape[2] == 0:
        raise ValueError(f"empty frame: shape {tuple(frame.shape)}")
    return frame.float()


def _frame_maps(maps, frame_hw: tuple[int, int], stride, device) -> tuple[np.ndarray | torch.Tensor,
                                                                         tuple[float, float]]:
    """The maps of one frame as ``(56, h, w)`` float32, numpy (``device=None``) or a tensor on
    ``device``, and the ``(y, x)`` strides, checked against the frame size."""
    if isinstance(maps, torch.Tensor):
        m = maps.detach().float().cpu().numpy() if device is None else maps.to(device=device, dtype=torch.float32)
    else:
        m = np.asarray(maps, dtype=np.float32)
        if device is not None:
            m = torch.from_numpy(np.ascontiguousarray(m)).to(device)
    if m.ndim == 4 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 3 or m.shape[0] != NUM_MAPS:
        raise ValueError(f"maps must be ({NUM_MAPS}, h, w) for one frame, got {tuple(m.shape)}")
    sy, sx = (stride, stride) if np.isscalar(stride) else (float(stride[0]), float(stride[1]))
    if not (sy > 0 and sx > 0):
        raise ValueError(f"stride must be positive, got {stride}")
    covered_h, covered_w = m.shape[1] * sy, m.shape[2] * sx
    if covered_h < frame_hw[0] - sy or covered_w < frame_hw[1] - sx:
        raise ValueError(
            f"maps {tuple(m.shape[1:])} at stride {stride} cover {covered_h:.0f}x{covered_w:.0f} frame pixels "
            f"but the frame is {frame_hw[0]}x{frame_hw[1]}: wrong stride or maps of another frame")
    return m, (float(sy), float(sx))


def crop_people(frame, boxes, maps=None, stride: float | tuple[float, float] = 8.0, spec: CropSpec = CropSpec(),
                clamp_maps: bool = True, preprocessing: PreprocessSpec | None = None,
                frame_channel_order: str = "BGR") -> PersonCrops:
    """Image and pose-map crops of the people in one frame, made where the frame is.

    Args:
        frame: ``(H, W, 3)`` uint8 numpy (BGR or RGB, kept; cropped on the host with OpenCV) or
            a ``(3, H, W)`` tensor of 0..255 values (on any device: the crops stay there).
        boxes: ``(N, 4)`` person boxes in frame pixels (e.g. ``PoseDetections.boxes``, or a
            detector's). ``N = 0`` gives empty crops.
        maps: optional ``(56, h_m, w_m)`` (or ``(1, 56, h_m, w_m)``) pose maps of the whole frame
            at ``stride`` (numpy or torch; moved to where the frame is).
        stride: frame pixels per map pixel, or ``(y, x)`` strides when the frame was resized for
            the network with different factors along the two axes.
        spec: crop geometry, see :class:`CropSpec`.
        clamp_maps: truncate the maps to OpenPose's output ranges first (keypoint maps [0, 1],
            PAFs [-1, 1], :func:`~spot_edge.pose.skeleton.clamp_pose_maps`): raw network maps
            can exceed them, the maps SPOT is trained on do not.
        preprocessing: return the image crops as the embedder's input instead: ``(N, 3,
            height, width)`` float32, normalised per the spec and sampled at the spec's size.
            For a numpy frame it equals ``preprocessing.batch`` of the uint8 crops; for a tensor
            frame it is computed without the uint8 rounding (< 0.5 grey level apart).
        frame_channel_order: ``"BGR"`` (OpenCV) or ``"RGB"``, for ``preprocessing``.

    Returns:
        :class:`PersonCrops`: numpy arrays for a numpy frame, tensors on the frame's device for a
        tensor frame.
    """
    img = _frame_tensor(frame)
    regions = fit_boxes_to_aspect(boxes, spec.height / spec.width, spec.expand)
    n = len(regions)
    on_host = img is None
    frame_hw = tuple(frame.shape[:2]) if on_host else tuple(img.shape[1:])
    if on_host:
        size = preprocessing.size if preprocessing is not None else (spec.height, spec.width)
        images = crop_host.image_crops(frame, regions, size, spec.pad_value, preprocessing, frame_channel_order)
    elif preprocessing is not None:
        images = crop_device.network_input_crops(img, regions, spec.pad_value, preprocessing, frame_channel_order)
    elif n:
        src = img - spec.pad_value if spec.pad_value else img
        images = crop_device.sample_regions(src, regions, (spec.height, spec.width))
        if spec.pad_value:
            images += spec.pad_value
        images = images.to(frame.dtype) if frame.is_floating_point() else images
    else:
        images = img.new_zeros((0, 3, spec.height, spec.width))

    map_crops = None
    if maps is not None:
        m, strides = _frame_maps(maps, frame_hw, stride, None if on_host else img.device)
        if on_host:
            map_crops = crop_host.map_crops(m, regions, strides, spec.map_size, clamp=clamp_maps)
        else:
            m = clamp_pose_maps(m) if clamp_maps else m
            map_crops = (crop_device.sample_regions(m, regions, spec.map_size, strides) if n
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
