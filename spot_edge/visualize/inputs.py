"""Inputs for the visualisations: person crops and their pose maps, as a SPOT model wants them.

A visualisation takes what a user has, crops (``(H, W, 3)`` uint8 BGR, any size) and their
56 OpenPose maps ``(B, 56, h, w)`` (any resolution), and lets each model apply its own
:class:`spot_edge.preprocessing.PreprocessSpec`. :func:`synthetic_people` makes such inputs
without any dataset (the synthetic person renderer, maps rendered from its keypoints).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from spot_edge.modality import MODALITIES, check_modality, modality_index
from spot_edge.visualize.common import as_bgr_image


def model_inputs(model, crops: Sequence[np.ndarray], pose_maps=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Crops and pose maps -> ``images (B, 3, H, W)``, ``heatmaps (B, 56, h, w)`` or None, on the
    model's device. Pose maps are dropped for configurations that use no structure (the baseline)."""
    if len(crops) == 0:
        raise ValueError("no images to visualise")
    config = model.config
    device = next(model.parameters()).device
    images = torch.from_numpy(config.preprocessing.batch([as_bgr_image(c) for c in crops])).to(device)
    if not config.needs_pose_maps:
        return images, None
    if pose_maps is None:
        raise ValueError("this model reads pose maps: give the 56 OpenPose maps of each crop "
                         "(--keypoints-root, --pose-weights or --synthetic on the command line)")
    heatmaps = torch.as_tensor(np.asarray(pose_maps, np.float32) if not isinstance(pose_maps, torch.Tensor)
                               else pose_maps).float()
    if heatmaps.dim() != 4 or heatmaps.shape[0] != len(crops) or heatmaps.shape[1] != config.num_pose_maps:
        raise ValueError(f"pose maps must have shape ({len(crops)}, {config.num_pose_maps}, h, w); "
                         f"got {tuple(heatmaps.shape)}")
    return images, heatmaps.to(device)


def modality_argument(modality, count: int, device: torch.device | str = "cpu"):
    """What ``SPOT.forward`` takes for ``count`` crops: ``"visible"``/``"infrared"`` for all of
    them, or from a per-crop sequence of names the common name, else a ``(count,)`` long tensor of
    modality indices (0 visible, 1 infrared) on ``device``."""
    if isinstance(modality, str):
        return check_modality(modality)
    names = [check_modality(m) for m in modality]
    if len(names) != count:
        raise ValueError(f"{len(names)} modalities for {count} images")
    if len(set(names)) == 1:
        return names[0]
    return torch.tensor([modality_index(n) for n in names], dtype=torch.long, device=device)


def pose_maps_from_keypoints(keypoints: Sequence[np.ndarray], image_sizes: Sequence[tuple[int, int]],
                             out_size: tuple[int, int]) -> np.ndarray:
    """Render ``(B, 56, h, w)`` maps from per-crop keypoints ``(P, 18, 3)`` in crop pixels."""
    from spot_edge.pose.render import render_pose_maps

    if len(keypoints) != len(image_sizes):
        raise ValueError(f"{len(keypoints)} keypoint sets for {len(image_sizes)} images")
    return np.stack([render_pose_maps(kp, size, out_size) for kp, size in zip(keypoints, image_sizes)])


def synthetic_people(num_ids: int = 4, per_modality: int = 1, height: int = 128, width: int = 64,
                     seed: int = 0, map_size: tuple[int, int] | None = None):
    """Render ``num_ids`` synthetic identities, each ``per_modality`` times in a visible and an
    infrared camera.

    Returns ``(crops, pose_maps, ids, modalities)``: a list of ``(height, width, 3)`` uint8 BGR
    crops, ``(N, 56, h, w)`` float32 maps (``h, w = height // 8, width // 8`` unless given),
    ``(N,)`` int identities and a list of ``"visible"`` / ``"infrared"``.
    """
    from spot_edge.training.synthetic_identity import INFRARED_CAMERAS, VISIBLE_CAMERAS, make_identity
    from spot_edge.training.synthetic_render import render_person

    if num_ids < 1 or per_modality < 1:
        raise ValueError("need at least one identity and one image per modality")
    rng = np.random.default_rng(seed)
    crops, keypoints, ids, modalities = [], [], [], []
    for pid in range(1, num_ids + 1):
        ident = make_identity(pid, seed)
        for modality, cameras in zip(MODALITIES, (VISIBLE_CAMERAS, INFRARED_CAMERAS)):
            for k in range(per_modality):
                camera = cameras[(pid + k) % len(cameras)]
                image, kp = render_person(ident, camera, rng, height=height, width=width)
                crops.append(image)
                keypoints.append(kp)
                ids.append(pid)
                modalities.append(modality)
    map_size = map_size or (max(1, height // 8), max(1, width // 8))
    maps = pose_maps_from_keypoints(keypoints, [(height, width)] * len(crops), map_size)
    return crops, maps, np.asarray(ids, np.int64), modalities
