"""Part maps per person: TPI's p maps (eq. 8) and the node partition they induce, plus ASR's
structure attention (eq. 4).

For each person the picture shows the crop, the argmax partition (each node of the
``h x w`` feature grid coloured by the part whose map is highest there, eq. 9's "node-level"
division) and the p maps ``M_k = sigmoid(W_theta F_S)_k`` overlaid one by one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from spot_edge.visualize.common import (add_caption, as_bgr_image, category_colours, grid, normalize_map,
                                        overlay_labels, overlay_map, resize_tile, write_png)
from spot_edge.visualize.inputs import modality_argument, model_inputs


def part_maps(model, crops: Sequence[np.ndarray], pose_maps, modality="infrared") -> np.ndarray:
    """TPI part maps ``(B, p, h, w)`` in (0, 1) for crops and their pose maps."""
    if not model.config.use_tpi:
        raise ValueError("this model has no TPI (use_tpi=False), so it has no part maps; "
                         "use a 'tpi', 'asr-tpi' or 'spot' configuration")
    crops = [as_bgr_image(c) for c in crops]
    images, heatmaps = model_inputs(model, crops, pose_maps)
    with torch.no_grad():
        maps = model.part_maps(images, heatmaps, modality_argument(modality, len(crops), images.device))
    return maps.float().cpu().numpy()


def asr_attention_received(model, crops: Sequence[np.ndarray], pose_maps, modality="infrared") -> np.ndarray:
    """ASR's node-to-node attention m (eq. 4), as the attention each node receives averaged
    over the attending nodes: ``(B, h, w)`` (each map sums to 1 over the nodes)."""
    if model.asr is None:
        raise ValueError("this model has no ASR (use_asr=False), so it has no structure attention to show")
    crops = [as_bgr_image(c) for c in crops]
    images, heatmaps = model_inputs(model, crops, pose_maps)
    with torch.no_grad():
        feature_map, structure = model.feature_maps(
            images, heatmaps, modality_argument(modality, len(crops), images.device))
        attention = model.asr.attention_map(feature_map, structure)          # (B, n, n), rows sum to 1
    h, w = feature_map.shape[-2:]
    return attention.mean(dim=1).reshape(-1, h, w).float().cpu().numpy()


def node_partition(maps: np.ndarray) -> np.ndarray:
    """Argmax over parts: ``(B, p, h, w) -> (B, h, w)`` int part index per node."""
    maps = np.asarray(maps)
    if maps.ndim != 4:
        raise ValueError(f"part maps must be (B, p, h, w); got {maps.shape}")
    return maps.argmax(axis=1)


def parts_panel(model, crops: Sequence[np.ndarray], pose_maps, modality="infrared",
                tile: tuple[int, int] = (128, 64), alpha: float = 0.55,
                captions: Sequence[str] | None = None) -> np.ndarray:
    """One picture, a row per person: ``[crop, partition, part 1, ..., part p]``, then, when the
    model has ASR, the structure attention each node receives (min-max scaled).

    The part maps are shown on an absolute scale (0..1, sigmoid outputs), not rescaled, so a
    weak part stays dark. Returns ``(H, W, 3)`` uint8 BGR.
    """
    crops = [as_bgr_image(c) for c in crops]
    maps = part_maps(model, crops, pose_maps, modality)
    attention = asr_attention_received(model, crops, pose_maps, modality) if model.asr is not None else None
    partition = node_partition(maps)
    colours = category_colours(maps.shape[1])
    header = max(12, tile[0] // 9)
    rows = []
    for i, crop in enumerate(crops):
        base = resize_tile(crop, tile)
        row = [add_caption(base, str(captions[i]) if captions is not None else "input", header),
               add_caption(overlay_labels(base, partition[i], colours, alpha), "partition", header)]
        for k in range(maps.shape[1]):
            row.append(add_caption(overlay_map(base, maps[i, k], alpha), f"part {k + 1}", header))
        if attention is not None:
            row.append(add_caption(overlay_map(base, normalize_map(attention[i]), alpha), "ASR attn", header))
        rows.append(row)
    return grid(rows)


def save_parts_panel(path: str | os.PathLike, model, crops, pose_maps, modality="infrared", **kwargs) -> Path:
    """:func:`parts_panel` written as a PNG; returns the path."""
    return write_png(path, parts_panel(model, crops, pose_maps, modality, **kwargs))
