"""Person crops of tensor frames and maps, on their device (the GPU the pose network ran on).

Every region of a frame is sampled in one ``grid_sample`` call (bilinear, ``align_corners=False``,
zeros outside) per supersampling factor: a region shrunk by more than 1.5x along an axis is sampled
at k times the output size there and average-pooled (the same rule as
:mod:`spot_edge.pose.crop_host`, whose results these equal up to OpenCV's rounding).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from spot_edge.pose.crop_host import supersample_factor
from spot_edge.preprocessing import PreprocessSpec


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


def sample_regions(src: torch.Tensor, regions: np.ndarray, out_hw: tuple[int, int],
                   scale: float | tuple[float, float] = 1.0) -> torch.Tensor:
    """Crop ``src`` ``(C, H, W)`` at ``regions / scale`` into ``(N, C, h, w)``, zeros outside
    (``scale``: one factor, or ``(y, x)`` factors)."""
    n = len(regions)
    sy, sx = (scale, scale) if np.isscalar(scale) else scale
    regions = np.asarray(regions, np.float64) / np.array([sx, sy, sx, sy], dtype=np.float64)
    out = torch.empty((n, src.shape[0], *out_hw), dtype=src.dtype, device=src.device)
    factors = [(supersample_factor((y1 - y0) / out_hw[0]), supersample_factor((x1 - x0) / out_hw[1]))
               for x0, y0, x1, y1 in regions]
    for k in sorted(set(factors)):
        idx = [i for i, f in enumerate(factors) if f == k]
        grid = _grid(regions[idx], src.shape[1], src.shape[2], out_hw[0] * k[0], out_hw[1] * k[1], src.device)
        part = F.grid_sample(src[None].expand(len(idx), -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                             align_corners=False)
        part = F.avg_pool2d(part, k) if k != (1, 1) else part
        if len(idx) == n:
            return part
        out[torch.as_tensor(idx, device=src.device)] = part
    return out


def network_input_crops(img: torch.Tensor, regions: np.ndarray, pad_value: float, preprocessing: PreprocessSpec,
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
    pad = [(pad_value / 255.0 - m) / sd for m, sd in zip(preprocessing.mean, preprocessing.std)]
    out_pixels = len(regions) * preprocessing.height * preprocessing.width
    if out_pixels < img.shape[1] * img.shape[2]:  # few people: crop, then normalise the crops
        crops = sample_regions(img - pad_value if pad_value else img, regions, preprocessing.size)
        out = torch.empty_like(crops)
        for c, k in enumerate(order):
            torch.mul(crops[:, k], scale[c], out=out[:, c]).add_(pad[c])
        return out
    src = torch.empty((3, *img.shape[1:]), dtype=torch.float32, device=img.device)
    for c, k in enumerate(order):  # the normalised frame minus the normalised pad value
        torch.mul(img[k], scale[c], out=src[c]).add_(-pad_value * scale[c])
    crops = sample_regions(src, regions, preprocessing.size)
    for c in range(3):
        crops[:, c].add_(pad[c])
    return crops


__all__ = ["sample_regions", "network_input_crops"]
