"""The COCO-18 OpenPose layout: keypoint order, limbs and PAF channels (single source of truth).

The 56 pose maps SPOT reads (``docs/pose-maps.md``) are the 18 keypoint confidence maps followed by the
38 part-affinity-field channels of the OpenPose COCO body model, in the network's output order
(the background heatmap, channel 18 of the network's 19, is dropped)::

    maps[0:18]   keypoint maps, order KEYPOINT_NAMES
    maps[18:56]  PAFs; limb l = LIMBS[l] has its x component in maps[18 + PAF_CHANNELS[l][0]]
                 and its y component in maps[18 + PAF_CHANNELS[l][1]]

``LIMBS`` is OpenPose's COCO_18 body-part pair list (``getPosePartPairs(COCO_18)``) and
``PAF_CHANNELS`` its map index (``getPoseMapIndex(COCO_18)`` = 19..56 in the 57-channel
heatmaps+PAF blob) converted to indices within the 38 PAF channels (minus 19). A PAF at a pixel on
limb (a, b) is the unit vector pointing from keypoint a to keypoint b.
The render -> parse round trip in ``tests/test_pose_render_parse.py`` checks the assignment.
"""

from __future__ import annotations

from typing import Any

import numpy as np

NUM_KEYPOINTS = 18
NUM_LIMBS = 19
NUM_PAF_CHANNELS = 38
NUM_MAPS = 56  # 18 keypoint maps then 38 PAF channels (no background)
PAF_OFFSET = NUM_KEYPOINTS  # index of the first PAF channel within the 56 maps

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)

# OpenPose COCO_18 part pairs (a -> b), in the model's limb order.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11),
    (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)

# (x_channel, y_channel) of each limb within the 38 PAF channels.
PAF_CHANNELS: tuple[tuple[int, int], ...] = (
    (12, 13), (20, 21), (14, 15), (16, 17), (22, 23), (24, 25), (0, 1), (2, 3), (4, 5), (6, 7),
    (8, 9), (10, 11), (28, 29), (30, 31), (34, 35), (32, 33), (36, 37), (18, 19), (26, 27),
)

LIMB_NAMES: tuple[str, ...] = tuple(f"{KEYPOINT_NAMES[a]}-{KEYPOINT_NAMES[b]}" for a, b in LIMBS)


def _mirror_keypoint(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[len("left_"):]
    if name.startswith("right_"):
        return "left_" + name[len("right_"):]
    return name


# KEYPOINT_FLIP[k]: the keypoint that k becomes under a horizontal mirror (left <-> right).
KEYPOINT_FLIP: tuple[int, ...] = tuple(KEYPOINT_NAMES.index(_mirror_keypoint(n)) for n in KEYPOINT_NAMES)

# LIMB_FLIP[l]: the limb that l becomes under a mirror; direction a -> b is preserved.
LIMB_FLIP: tuple[int, ...] = tuple(LIMBS.index((KEYPOINT_FLIP[a], KEYPOINT_FLIP[b])) for a, b in LIMBS)


def _check_layout() -> None:
    assert len(KEYPOINT_NAMES) == NUM_KEYPOINTS
    assert len(LIMBS) == len(PAF_CHANNELS) == NUM_LIMBS
    flat = sorted(c for pair in PAF_CHANNELS for c in pair)
    assert flat == list(range(NUM_PAF_CHANNELS)), "every PAF channel belongs to exactly one limb"
    assert all(KEYPOINT_FLIP[KEYPOINT_FLIP[k]] == k for k in range(NUM_KEYPOINTS))


_check_layout()


def flip_permutation() -> tuple[list[int], list[int]]:
    """Channel permutation and sign changes of a horizontal flip, over all 56 maps.

    Returns ``(perm, negate)``: after mirroring every map horizontally,
    ``flipped_maps[c] = maps[perm[c]]`` and the channels listed in ``negate`` (the 19 PAF x
    components, in the flipped layout) change sign. ``perm`` is an involution.
    """
    perm = list(KEYPOINT_FLIP)
    paf_perm = [0] * NUM_PAF_CHANNELS
    for limb, (cx, cy) in enumerate(PAF_CHANNELS):
        src_x, src_y = PAF_CHANNELS[LIMB_FLIP[limb]]
        paf_perm[cx] = src_x
        paf_perm[cy] = src_y
    perm += [PAF_OFFSET + c for c in paf_perm]
    negate = sorted(PAF_OFFSET + cx for cx, _ in PAF_CHANNELS)
    return perm, negate


def flip_pose_maps(maps: Any) -> Any:
    """Mirror pose maps horizontally (``docs/pose-maps.md``).

    ``maps``: numpy array or torch tensor ``(..., 56, H, W)``. Returns the same type and shape:
    each map mirrored left-right, left/right keypoint channels swapped, the PAF channel pairs of
    mirrored limbs swapped and every PAF x component negated. ``flip(flip(m)) == m``.

    The result equals the maps of the mirrored image when the maps cover the image exactly
    (rendered maps, person-crop maps such as 36x18 for 288x144). Network maps of a frame padded on
    the right to a multiple of 8 must be cropped to the frame first.
    """
    if maps.ndim < 3 or maps.shape[-3] != NUM_MAPS:
        raise ValueError(
            f"flip_pose_maps expects (..., {NUM_MAPS}, H, W) pose maps, got shape {tuple(maps.shape)}")
    perm, negate = flip_permutation()
    sign = np.ones(NUM_MAPS, dtype=np.float32)
    sign[negate] = -1.0
    if isinstance(maps, np.ndarray):
        if not np.issubdtype(maps.dtype, np.floating):
            raise TypeError(f"flip_pose_maps needs float maps (PAF signs flip), got dtype {maps.dtype}")
        out = maps[..., perm, :, ::-1] * sign.astype(maps.dtype)[:, None, None]
        return np.ascontiguousarray(out)
    import torch

    if isinstance(maps, torch.Tensor):
        if not maps.is_floating_point():
            raise TypeError(f"flip_pose_maps needs float maps (PAF signs flip), got dtype {maps.dtype}")
        index = torch.as_tensor(perm, device=maps.device)
        sign_t = torch.as_tensor(sign, device=maps.device, dtype=maps.dtype)
        return maps.index_select(-3, index).flip(-1) * sign_t[:, None, None]
    raise TypeError(f"flip_pose_maps expects a numpy array or a torch tensor, got {type(maps).__name__}")


def clamp_pose_maps(maps: Any) -> Any:
    """OpenPose's output ranges: keypoint maps to [0, 1], PAFs to [-1, 1].

    ``maps``: numpy array or torch tensor ``(..., 56, H, W)``; returns a new one of the same type.
    Parsing reads raw maps (see ``docs/pose-maps.md``); SPOT's inputs are clamped.
    """
    if maps.ndim < 3 or maps.shape[-3] != NUM_MAPS:
        raise ValueError(f"clamp_pose_maps expects (..., {NUM_MAPS}, H, W) pose maps, got shape {tuple(maps.shape)}")
    if isinstance(maps, np.ndarray):
        out = np.array(maps, dtype=np.result_type(maps.dtype, np.float32), copy=True)
        np.clip(out[..., :NUM_KEYPOINTS, :, :], 0.0, 1.0, out=out[..., :NUM_KEYPOINTS, :, :])
        np.clip(out[..., NUM_KEYPOINTS:, :, :], -1.0, 1.0, out=out[..., NUM_KEYPOINTS:, :, :])
        return out
    import torch

    if isinstance(maps, torch.Tensor):
        return torch.cat([maps[..., :NUM_KEYPOINTS, :, :].clamp(0.0, 1.0),
                          maps[..., NUM_KEYPOINTS:, :, :].clamp(-1.0, 1.0)], dim=-3)
    raise TypeError(f"clamp_pose_maps expects a numpy array or a torch tensor, got {type(maps).__name__}")


def flip_keypoints(keypoints: np.ndarray, image_width: int) -> np.ndarray:
    """Mirror keypoints ``(P, 18, 3)`` (x, y, visibility) of an image ``image_width`` pixels wide.

    x becomes ``image_width - 1 - x`` (pixel-centre convention, matching ``flip_pose_maps``) and
    left/right keypoints swap places.
    """
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim != 3 or kp.shape[1:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints must be (P, {NUM_KEYPOINTS}, 3), got {kp.shape}")
    out = kp[:, list(KEYPOINT_FLIP)].copy()
    out[..., 0] = image_width - 1 - out[..., 0]
    return out


__all__ = [
    "NUM_KEYPOINTS", "NUM_LIMBS", "NUM_PAF_CHANNELS", "NUM_MAPS", "PAF_OFFSET", "KEYPOINT_NAMES",
    "LIMBS", "PAF_CHANNELS", "LIMB_NAMES", "KEYPOINT_FLIP", "LIMB_FLIP", "flip_permutation",
    "flip_pose_maps", "clamp_pose_maps", "flip_keypoints",
]
