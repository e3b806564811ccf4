"""Closed-form gradients of the two ops, shared by the Triton and CUDA backends.

The fused kernels are forward-only; training backpropagates through these formulas, written
with plain PyTorch ops (cuBLAS matmuls on the GPU). They give the same gradients as autograd
through :mod:`spot_edge.kernels.reference` (tested on CPU in float64), so switching backend
never changes training, only the forward's speed.

Attention (eqs. 4-5), with ``S = scale q k^T``, ``A = softmax(S)``, ``O = A v``::

    dv = A^T dO,  dA = dO v^T,  dS = A * (dA - rowsum(dA * A)),
    dq = scale dS k,  dk = scale dS^T q

Part pooling (eq. 9), with ``Mbar = M * is_max`` (the arg-max mask is piecewise constant,
so it carries no gradient, exactly as in the reference), ``a = Mbar F^T / HW`` and
``s = mean_hw(Mbar) + eps``, ``out = a / s``::

    da = dout / s,  ds = -rowsum(dout * out) / s,
    dF = da^T Mbar / HW,  dMbar = (da F + ds) / HW,  dM = dMbar * is_max
"""

from __future__ import annotations

import torch
from torch import Tensor


def attention_probabilities(q: Tensor, k: Tensor, scale: float) -> Tensor:
    """``(B, N, Dk), (B, N, Dk) -> (B, N, N)`` softmax(scale q k^T) in float32 or higher."""
    compute = torch.promote_types(q.dtype, torch.float32)
    logits = torch.matmul(q.to(compute) * scale, k.to(compute).transpose(-1, -2))
    return torch.softmax(logits, dim=-1)


def fused_structure_attention_backward(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor,
                                       scale: float) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients ``(dq, dk, dv)`` of softmax(scale q k^T) v for ``grad_out`` ``(B, N, Dv)``.

    Recomputes the ``(B, N, N)`` probabilities (cheap at N = 162) instead of saving them.
    """
    compute = torch.promote_types(q.dtype, torch.float32)
    attn = attention_probabilities(q, k, scale)                          # (B, N, N)
    g = grad_out.to(compute)
    grad_v = torch.matmul(attn.transpose(-1, -2), g)                     # (B, N, Dv)
    grad_attn = torch.matmul(g, v.to(compute).transpose(-1, -2))         # (B, N, N)
    grad_logits = attn * (grad_attn - (grad_attn * attn).sum(dim=-1, keepdim=True))
    grad_q = torch.matmul(grad_logits, k.to(compute)) * scale            # (B, N, Dk)
    grad_k = torch.matmul(grad_logits.transpose(-1, -2), q.to(compute)) * scale
    return grad_q.to(q.dtype), grad_k.to(k.dtype), grad_v.to(v.dtype)


def part_pool_backward(grad_out: Tensor, part_maps: Tensor, features: Tensor,
                       eps: float) -> tuple[Tensor, Tensor]:
    """Gradients ``(d part_maps, d features)`` of part pooling for ``grad_out`` ``(B, P, C)``."""
    compute = torch.promote_types(part_maps.dtype, torch.float32)
    b, p, h, w = part_maps.shape
    c = features.shape[1]
    hw = h * w
    maps = part_maps.to(compute).reshape(b, p, hw)
    feats = features.to(compute).reshape(b, c, hw)
    is_max = (maps == maps.amax(dim=1, keepdim=True)).to(compute)
    m_bar = maps * is_max                                                 # (B, P, HW)
    pooled = torch.matmul(m_bar, feats.transpose(1, 2)) / hw              # (B, P, C)
    norm = m_bar.mean(dim=-1, keepdim=True) + eps                         # (B, P, 1)
    out = pooled / norm
    g = grad_out.to(compute)
    grad_pooled = g / norm
    grad_norm = -(g * out).sum(dim=-1, keepdim=True) / norm               # (B, P, 1)
    grad_feats = torch.matmul(grad_pooled.transpose(1, 2), m_bar) / hw    # (B, C, HW)
    grad_m_bar = (torch.matmul(grad_pooled, feats) + grad_norm) / hw      # (B, P, HW)
    grad_maps = grad_m_bar * is_max
    return (grad_maps.reshape(b, p, h, w).to(part_maps.dtype),
            grad_feats.reshape(b, c, h, w).to(features.dtype))
