"""Class-activation overlays, like the paper's Fig. 8 (baseline vs SPOT on the same people).

The map comes from the final feature map ``F_I (B, C, h, w)`` (:meth:`SPOT.feature_maps`,
18 x 9 at 288 x 144 with last stride 1):

- ``"mean"``: channel-mean activation ``mean_c F_I[c]`` (the maps are after a ReLU);
- ``"gradcam"``: Grad-CAM (Selvaraju et al. 2017) on an identity logit:
  ``ReLU(sum_c alpha_c F_I[c])`` with ``alpha_c`` the spatial mean of ``d logit / d F_I[c]``.
  The logit is that of the given identity, or of the predicted one.

Each map is min-max scaled per image, upsampled to the crop and overlaid with an OpenCV
colour map.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from spot_edge.visualize.common import (add_caption, as_bgr_image, grid, normalize_map, overlay_map,
                                        resize_tile, write_png)
from spot_edge.visualize.inputs import modality_argument, model_inputs

CAM_METHODS = ("mean", "gradcam")


@contextlib.contextmanager
def _capture_feature_map(model) -> Iterator[dict]:
    """Record the ``F_I`` that :meth:`SPOT.feature_maps` returns during a forward pass (with its
    gradient retained), without changing what the model computes."""
    captured: dict = {}
    original = model.feature_maps

    def recording(*args, **kwargs):
        feature_map, structure = original(*args, **kwargs)
        if feature_map.requires_grad:
            feature_map.retain_grad()
        captured["feature_map"] = feature_map
        return feature_map, structure

    model.feature_maps = recording
    try:
        yield captured
    finally:
        del model.feature_maps          # back to the class's method


def _logit_branch(model, branch: str | None) -> str:
    branches = model.config.branches
    if branch is None:
        branch = model.config.resolved_embedding
        if branch == "concat":
            branch = "base"
    if branch not in branches:
        raise ValueError(f"branch {branch!r} has no classifier in this model; choose one of {branches}")
    return branch


def activation_maps(model, images: Tensor, heatmaps: Tensor | None, modality, method: str = "mean",
                    targets: Sequence[int] | None = None, branch: str | None = None) -> Tensor:
    """Class-activation maps ``(B, H, W)`` in [0, 1] at the input resolution.

    Args:
        model: a :class:`spot_edge.model.SPOT` (its train/eval mode is kept; BN uses running
            statistics in eval mode, which is what a trained model should be in).
        images, heatmaps, modality: as for ``SPOT.forward``.
        method: ``"mean"`` or ``"gradcam"``.
        targets: identity class per image for Grad-CAM (default: the predicted identity).
        branch: classifier whose logit Grad-CAM explains (default: the embedding's branch,
            ``"base"`` when the embedding is the ASR/TPI concatenation).
    """
    if method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {CAM_METHODS}")
    size = tuple(images.shape[-2:])
    if method == "mean":
        with torch.no_grad():
            feature_map, _ = model.feature_maps(images, heatmaps, modality)
            cam = feature_map.float().relu().mean(dim=1)
    else:
        branch = _logit_branch(model, branch)
        # gradients must flow even under an outer no_grad/inference_mode or with frozen weights
        with torch.inference_mode(False), torch.enable_grad(), _capture_feature_map(model) as captured:
            images = images.detach().clone().requires_grad_(True)
            features = model.extract_features(images, heatmaps, modality, training=True)
            _, logits = model.heads[branch](features[branch])
            if targets is None:
                chosen = logits.argmax(dim=1)
            else:
                chosen = torch.as_tensor(list(targets), device=logits.device, dtype=torch.long)
                if chosen.shape != (logits.shape[0],) or chosen.min() < 0 or chosen.max() >= logits.shape[1]:
                    raise ValueError(f"targets must be {logits.shape[0]} identity classes in "
                                     f"0..{logits.shape[1] - 1}; got {list(targets)}")
            score = logits.gather(1, chosen[:, None]).sum()
            feature_map = captured["feature_map"]
            (grad,) = torch.autograd.grad(score, feature_map)
        weights = grad.mean(dim=(2, 3), keepdim=True)
        cam = (weights * feature_map.detach()).sum(dim=1).relu().float()
    cam = F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    lo = cam.flatten(1).min(dim=1).values[:, None, None]
    hi = cam.flatten(1).max(dim=1).values[:, None, None]
    return ((cam - lo) / (hi - lo).clamp_min(1e-12)).detach().cpu()


def cam_panel(models: Mapping[str, "torch.nn.Module"], crops: Sequence[np.ndarray], pose_maps=None,
              modality: str | Sequence[str] = "infrared", method: str = "mean",
              targets: Sequence[int] | None = None, tile: tuple[int, int] = (128, 64),
              alpha: float = 0.5, captions: Sequence[str] | None = None) -> np.ndarray:
    """One picture: a row per person, columns ``[crop, overlay of model 1, overlay of model 2, ...]``
    (e.g. ``{"baseline": b, "SPOT": s}`` as in Fig. 8).

    ``crops``: ``(H, W, 3)`` uint8 BGR images (or paths); ``pose_maps``: ``(B, 56, h, w)``;
    ``modality``: one for all crops or one per crop. Each model applies its own preprocessing.
    Returns the ``(H, W, 3)`` uint8 BGR picture.
    """
    if not models:
        raise ValueError("give at least one model to visualise")
    crops = [as_bgr_image(c) for c in crops]
    columns: list[list[np.ndarray]] = []
    header_height = max(12, tile[0] // 9)
    originals = [resize_tile(c, tile) for c in crops]
    columns.append([add_caption(t, "input", header_height) for t in originals])
    for label, model in models.items():
        images, heatmaps = model_inputs(model, crops, pose_maps)
        modality_arg = modality_argument(modality, len(crops), images.device)
        cams = activation_maps(model, images, heatmaps, modality_arg, method, targets).numpy()
        columns.append([add_caption(overlay_map(o, normalize_map(c), alpha), str(label), header_height)
                        for o, c in zip(originals, cams)])
    if captions is not None:
        columns[0] = [add_caption(resize_tile(c, tile), str(t), header_height) for c, t in zip(crops, captions)]
    rows = [[col[i] for col in columns] for i in range(len(crops))]
    return grid(rows)


def save_cam_panel(path: str | os.PathLike, models: Mapping[str, "torch.nn.Module"], crops, pose_maps=None,
                   modality="infrared", method: str = "mean", **kwargs) -> Path:
    """:func:`cam_panel` written as a PNG; returns the path."""
    return write_png(path, cam_panel(models, crops, pose_maps, modality, method, **kwargs))
