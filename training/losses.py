"""Losses of eq. 13: L_total = L_B + lambda1 L_IS + lambda2 L_IP + L_IF.

- L_B = L_id + L_tri on the baseline feature: cross-entropy of the classifier behind its BN
  neck, plus a batch-hard triplet loss on the (pre-BN) baseline feature;
- L_IS, L_IP, L_IF: cross-entropy of each branch's own BN-neck classifier (eq. 14).

The branch weights come from ``SpotConfig.loss_weights``; the model's training-mode output
already holds each branch's logits.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["batch_hard_triplet", "SpotLoss"]


def batch_hard_triplet(features: Tensor, labels: Tensor, margin: float = 0.3) -> tuple[Tensor, Tensor]:
    """Batch-hard triplet loss (Hermans et al. 2017) over all samples of the batch.

    For each anchor: the farthest positive and the closest negative (Euclidean distance),
    ``mean(relu(d_ap - d_an + margin))``. Both modalities are in the batch, so hard pairs are
    mostly cross-modality ones.

    Args:
        features: ``(B, D)``.
        labels: ``(B,)`` identity labels; every anchor needs a positive and a negative.

    Returns:
        ``(loss, fraction of anchors with d_an > d_ap)``.
    """
    dist = torch.cdist(features, features).clamp_min(1e-12)
    same = labels[:, None] == labels[None, :]
    d_ap = (dist - (~same).float() * 1e9).amax(dim=1)
    d_an = (dist + same.float() * 1e9).amin(dim=1)
    loss = F.relu(d_ap - d_an + margin).mean()
    return loss, (d_an > d_ap).float().mean()


class SpotLoss(nn.Module):
    """Eq. 13 over the model's training output.

    Args:
        weights: ``{branch: weight}`` of the identity losses (``SpotConfig.loss_weights``).
        triplet_margin, triplet_weight: of the triplet term on ``features["base"]``.
        label_smoothing: of every cross-entropy.
    """

    def __init__(self, weights: Mapping[str, float], triplet_margin: float = 0.3, triplet_weight: float = 1.0,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        if "base" not in weights:
            raise ValueError("loss weights need the 'base' branch (L_B)")
        self.weights = dict(weights)
        self.margin, self.triplet_weight, self.smoothing = triplet_margin, triplet_weight, label_smoothing

    def forward(self, output: Mapping[str, Mapping[str, Tensor]], labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Returns ``(total loss, parts)``; ``parts`` has ``id_<branch>``, ``triplet``,
        ``acc_<branch>`` (training accuracy) and ``total`` as floats."""
        total = labels.new_zeros((), dtype=torch.float32)
        parts: dict[str, float] = {}
        for branch, weight in self.weights.items():
            logits = output["logits"][branch]
            ce = F.cross_entropy(logits.float(), labels, label_smoothing=self.smoothing)
            total = total + weight * ce
            parts[f"id_{branch}"] = float(ce.detach())
            parts[f"acc_{branch}"] = float((logits.detach().argmax(1) == labels).float().mean())
        tri, correct = batch_hard_triplet(output["features"]["base"].float(), labels, self.margin)
        total = total + self.triplet_weight * tri
        parts["triplet"] = float(tri.detach())
        parts["triplet_correct"] = float(correct)
        parts["total"] = float(total.detach())
        return total, parts
