"""Global pooling, the fusion block (eq. 12) and the BN-neck identity heads (eqs. 11, 13, 14)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class GlobalPool(nn.Module):
    """``(B, C, H, W) -> (B, C)``: generalised-mean (``mean(x^p)^(1/p)``, AGW) or average pooling.

    GeM is computed relative to each channel's maximum so that it is safe in fp16.
    """

    def __init__(self, kind: str = "gem", p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.kind, self.p, self.eps = kind, float(p), eps

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "avg":
            return x.mean(dim=(-2, -1))
        # mean(x^p)^(1/p) = m * mean((x/m)^p)^(1/p) with m the per-channel maximum: the same value,
        # but x^p cannot overflow in fp16 (TensorRT FP16 engines, autocast) for activations above ~40.
        x = x.clamp(min=self.eps)
        peak = x.amax(dim=(-2, -1), keepdim=True)
        return (x / peak).pow(self.p).mean(dim=(-2, -1)).pow(1.0 / self.p) * peak.flatten(-2).squeeze(-1)


class FusionBlock(nn.Module):
    """Combine F_IS and F_IP, each ``(B, C)``, into F_IF ``(B, C)``.

    ``concat`` is eq. 12, ``F_IF = W_gamma [F_IS, F_IP]`` with ``W_gamma`` in R^{C x 2C}; ``max``,
    ``mean`` and ``weighted`` (two learned weights, softmax-normalised) are Table III's variants.
    """

    def __init__(self, dim: int, mode: str = "concat") -> None:
        super().__init__()
        self.mode = mode
        if mode == "concat":
            self.gamma = nn.Linear(2 * dim, dim, bias=False)
        elif mode == "weighted":
            self.weights = nn.Parameter(torch.zeros(2))
        elif mode not in ("max", "mean"):
            raise ValueError(f"unknown fusion {mode!r}")

    def forward(self, f_is: Tensor, f_ip: Tensor) -> Tensor:
        if self.mode == "concat":
            return self.gamma(torch.cat([f_is, f_ip], dim=1))
        if self.mode == "max":
            return torch.maximum(f_is, f_ip)
        if self.mode == "mean":
            return 0.5 * (f_is + f_ip)
        w = torch.softmax(self.weights, dim=0)
        return w[0] * f_is + w[1] * f_ip


class BNNeckClassifier(nn.Module):
    """BN neck then a bias-free linear identity classifier (cross-entropy "after a BN layer").

    ``forward(f (B, C)) -> (bn_feature (B, C), logits (B, num_classes))``. The BN's shift is
    frozen at zero, as in the BNNeck of the ReID strong baseline and AGW.
    """

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        self.bn.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, feature: Tensor) -> tuple[Tensor, Tensor]:
        bn_feature = self.bn(feature)
        return bn_feature, self.classifier(bn_feature)


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    return F.normalize(x, p=2.0, dim=1, eps=eps)
