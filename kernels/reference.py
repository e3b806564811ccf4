"""Plain PyTorch definitions of the two SPOT hot spots.

These functions are the *definition* every other backend (Triton, CUDA, TensorRT plugin)
is tested against. They are written for clarity and for export (ONNX / TensorRT parse them
into standard operators), not for speed.
"""

from __future__ import annotations

import torch
from torch import Tensor


def fused_structure_attention_reference(q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0) -> Tensor:
    """softmax(scale * q k^T, over the last axis) v.

    Args:
        q: ``(B, N, Dk)`` row embeddings (SPOT eq. 4: K(F_S_bar) at node t).
        k: ``(B, N, Dk)`` column embeddings (SPOT eq. 4: Q(F_S_bar) at node j).
        v: ``(B, N, Dv)`` values (SPOT eq. 5: V(F_I)).
        scale: multiplies the logits; applied to ``q`` before the first matmul so that
            TensorRT recognises the MatMul-Softmax-MatMul attention pattern.

    Returns:
        ``(B, N, Dv)``.
    """
    if scale != 1.0:
        q = q * scale
    attn = torch.softmax(torch.matmul(q, k.transpose(-1, -2)), dim=-1)
    return torch.matmul(attn, v)


def part_pool_reference(part_maps: Tensor, features: Tensor, eps: float = 1e-6) -> Tensor:
    """Node-level part division and pooling (SPOT eq. 9).

    At each node (h, w) a part map keeps its value only where it is the maximum over the
    ``P`` maps (ties keep every maximal map), giving ``M_bar``. Then
    ``f_i = mean_hw(M_bar_i * F) / (mean_hw(M_bar_i) + eps)``.

    Eq. 9 writes ``(1 / K^i) * sum_hw(M_bar_i * F)`` with ``K^i = mean_hw(M_bar_i)``; that is
    this value times the constant ``H * W``. We use the scale-invariant mean form.

    Args:
        part_maps: ``(B, P, H, W)`` part maps after the sigmoid (eq. 8).
        features: ``(B, C, H, W)`` appearance features F_I.
        eps: guards the division for a part that owns no node.

    Returns:
        ``(B, P, C)`` part features F_P.
    """
    is_max = part_maps == part_maps.amax(dim=1, keepdim=True)
    m_bar = part_maps * is_max.to(part_maps.dtype)                       # (B, P, H, W)
    hw = features.shape[-2] * features.shape[-1]
    pooled = torch.einsum("bphw,bchw->bpc", m_bar, features) / hw       # (B, P, C)
    norm = m_bar.mean(dim=(-2, -1)).unsqueeze(-1) + eps                   # (B, P, 1)
    return pooled / norm
