"""Dual-path ResNet backbone ("B", paper Sec. III-C and IV-A).

The stem (conv1, bn1, relu, maxpool), layer1 and layer2 are *modality-specific*: one copy
per modality, weights not shared (N_specific of eq. 2). layer3 and layer4 are
*modality-shared* (N_shared). layer4's stride is set to 1 ("last stride 1"), so a 288x144
input gives an 18x9 final map (n = 162 nodes).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision import models

MODALITIES = ("visible", "infrared")


def _build_resnet(name: str, last_stride: int) -> models.ResNet:
    net: models.ResNet = getattr(models, name)(weights=None)
    if last_stride == 1:
        block = net.layer4[0]
        strided = block.conv2 if isinstance(block, models.resnet.Bottleneck) else block.conv1
        strided.stride = (1, 1)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
    return net


class ModalitySpecificPath(nn.Sequential):
    """Stem + layer1 + layer2 of one modality: ``(B, 3, H, W) -> (B, C2, H/8, W/8)``.

    Kept as named children (``stem``, ``layer1``, ``layer2``) so that structure can be
    injected after layer1 (B+S_1) by running the parts separately.
    """

    def __init__(self, resnet: models.ResNet) -> None:
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2


class DualPathResNet(nn.Module):
    """Two modality-specific paths and one modality-shared trunk.

    Attributes:
        specific: ``nn.ModuleDict`` with ``"visible"`` and ``"infrared"`` :class:`ModalitySpecificPath`.
        layer3, layer4: the shared trunk, ``(B, C2, H/8, W/8) -> (B, C4, H/16, W/16)`` (last stride 1).
    """

    def __init__(self, name: str = "resnet50", last_stride: int = 1) -> None:
        super().__init__()
        paths = {m: _build_resnet(name, last_stride) for m in MODALITIES}
        self.specific = nn.ModuleDict({m: ModalitySpecificPath(paths[m]) for m in MODALITIES})
        shared = paths["visible"]
        self.layer3 = shared.layer3
        self.layer4 = shared.layer4
        self.name = name

    def load_imagenet(self, path: str | Path) -> None:
        """Copy a torchvision ImageNet checkpoint into both paths and the shared trunk.

        ``path`` is a local file as torchvision distributes it (e.g. ``resnet50-0676ba61.pth``,
        a plain state dict). Nothing is downloaded.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"ImageNet weights not found: {path}. spot-edge never downloads; pass a local torchvision "
                f"checkpoint such as resnet50-0676ba61.pth (torchvision.models.ResNet50_Weights.IMAGENET1K_V1)."
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt or not a torch file
            raise ValueError(f"{path} is not a readable torch checkpoint: {exc}") from exc
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise ValueError(f"{path} does not hold a state dict")
        reference = _build_resnet(self.name, 1).state_dict()
        state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
        missing = sorted(set(reference) - set(k for k in state) - {k for k in reference if k.startswith("fc.")})
        unexpected = sorted(k for k in state if k not in reference)
        wrong_shape = sorted(k for k in state if k in reference and state[k].shape != reference[k].shape)
        if missing or unexpected or wrong_shape:
            raise ValueError(
                f"{path} is not a torchvision {self.name} checkpoint: {len(missing)} missing keys "
                f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
                f"{len(wrong_shape)} with other shapes (e.g. {wrong_shape[:3]})"
            )
        stem_map = {"conv1": "stem.0", "bn1": "stem.1"}
        with torch.no_grad():
            for key, value in state.items():
                if key not in reference:
                    continue
                top, rest = key.split(".", 1)
                if top in ("layer3", "layer4"):
                    getattr(self, top).state_dict()[rest].copy_(value)
                else:
                    local = f"{stem_map.get(top, top)}.{rest}"
                    for m in MODALITIES:
                        self.specific[m].state_dict()[local].copy_(value)

    def forward_specific(self, x: Tensor, modality: str, until: str = "layer2") -> Tensor:
        """Run one modality path up to ``until`` (``"layer1"`` or ``"layer2"``)."""
        path = self.specific[modality]
        x = path.layer1(path.stem(x))
        return x if until == "layer1" else path.layer2(x)
