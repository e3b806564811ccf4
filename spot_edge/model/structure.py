"""Structure representation (eq. 1) and its injection into the backbone ("B+S_i", Table II).

The relation network N_r reads the K_S = 56 OpenPose maps (18 keypoint confidence maps and
38 part-affinity-field channels) and reasons over their relations with four convolutional
layers and two pooling layers. Its layer o runs at the resolution of ResNet layer o, so its
intermediate output F_S^o can be added to the appearance feature after layer o, and its last
output F_S (C_S x H/16 x W/16, 18x9 at 288x144) feeds ASR and TPI.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class RelationNetwork(nn.Module):
    """N_r of eq. 1: ``(B, K_S, Hs, Ws) -> [F_S^1, ..., F_S^depth]``.

    The heatmaps are first resized (bilinear) to the layer1 resolution ``(H/4, W/4)`` of an
    ``H x W`` image, whatever resolution they arrive at (OpenPose gives stride 8). Then:

    ====  =========================  ===================  ==================
    o     operation                  F_S^o shape          matches
    ====  =========================  ===================  ==================
    1     conv3x3-BN-ReLU            (B, c1, H/4,  W/4)   layer1 output
    2     maxpool 2, conv3x3-BN-ReLU (B, c2, H/8,  W/8)   layer2 output
    3     maxpool 2, conv3x3-BN-ReLU (B, c3, H/16, W/16)  layer3 output
    4     conv3x3-BN-ReLU            (B, c4, H/16, W/16)  layer4 output = F_S
    ====  =========================  ===================  ==================
    """

    def __init__(self, in_maps: int, channels: tuple[int, int, int, int], depth: int = 4) -> None:
        super().__init__()
        if not 1 <= depth <= 4:
            raise ValueError(f"depth must be 1..4, got {depth}")
        widths = (in_maps, *channels)
        # Only the layers a configuration reads are built ("B+S_2" alone needs F_S^1, F_S^2).
        self.convs = nn.ModuleList(conv_bn_relu(widths[o], widths[o + 1]) for o in range(depth))
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)

    def forward(self, heatmaps: Tensor, layer1_size: tuple[int, int]) -> list[Tensor]:
        x = resize_to(heatmaps, layer1_size)
        outputs = []
        for o, conv in enumerate(self.convs, start=1):
            if o in (2, 3):           # the two pooling layers, before conv2 and conv3
                x = self.pool(x)
            x = conv(x)
            outputs.append(x)
        return outputs


def resize_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of ``(B, C, h, w)`` to ``size`` (no-op when already there)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class StructureInjection(nn.Module):
    """Combine an appearance feature with a structure feature at one backbone layer.

    ``mode="add"``: ``A + BN(W_1x1 S)`` (projection + addition).
    ``mode="concat"``: ``ReLU(BN(W_1x1 [A, S]))`` (concatenation + 1x1).
    ``appearance`` is ``(B, C_a, h, w)``; ``structure`` is ``(B, C_s, h', w')`` and is resized to
    ``(h, w)`` when needed (raw heatmaps for "B+K_i"). Shared by both modalities.

    ``bn_init="zero"`` (``"add"`` mode only) starts the projection's BN scale at 0, so the module
    is the identity on ``A`` at the first step; the scale then learns how much structure to add
    (``SpotConfig.injection_bn_init``).
    """

    def __init__(self, appearance_channels: int, structure_channels: int, mode: str = "add",
                 bn_init: str = "one") -> None:
        super().__init__()
        self.mode = mode
        if bn_init not in ("one", "zero"):
            raise ValueError(f"unknown BN initialisation {bn_init!r}; use 'one' or 'zero'")
        if bn_init == "zero" and mode != "add":
            raise ValueError("bn_init='zero' is for mode='add' only")
        if mode == "add":
            self.project = nn.Sequential(
                nn.Conv2d(structure_channels, appearance_channels, 1, bias=False),
                nn.BatchNorm2d(appearance_channels),
            )
            if bn_init == "zero":
                nn.init.zeros_(self.project[1].weight)
        elif mode == "concat":
            self.project = nn.Sequential(
                nn.Conv2d(appearance_channels + structure_channels, appearance_channels, 1, bias=False),
                nn.BatchNorm2d(appearance_channels),
                nn.ReLU(inplace=True),
            )
        else:
            raise ValueError(f"unknown injection mode {mode!r}")

    def forward(self, appearance: Tensor, structure: Tensor) -> Tensor:
        structure = resize_to(structure, tuple(appearance.shape[-2:]))
        if self.mode == "add":
            return appearance + self.project(structure)
        return self.project(torch.cat([appearance, structure], dim=1))
