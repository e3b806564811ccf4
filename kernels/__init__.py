"""Custom kernels for SPOT's two hot spots, behind one dispatching API.

``fused_structure_attention`` (ASR, eqs. 4-5) and ``part_pool`` (TPI, eq. 9). Each has a
plain PyTorch reference (``reference.py``, the definition); faster backends are selected by
``backend=``: ``"reference"``, ``"triton"``, ``"cuda"`` or ``"auto"``.
"""

from __future__ import annotations

from torch import Tensor

from spot_edge.kernels.reference import fused_structure_attention_reference, part_pool_reference

BACKENDS = ("auto", "reference", "triton", "cuda")


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown kernel backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def fused_structure_attention(q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0, backend: str = "auto") -> Tensor:
    """``(B, N, Dk), (B, N, Dk), (B, N, Dv) -> (B, N, Dv)``: softmax(scale q k^T) v (eqs. 4-5)."""
    _check_backend(backend)
    return fused_structure_attention_reference(q, k, v, scale)


def part_pool(part_maps: Tensor, features: Tensor, eps: float = 1e-6, backend: str = "auto") -> Tensor:
    """``(B, P, H, W), (B, C, H, W) -> (B, P, C)``: node-level part pooling (eq. 9)."""
    _check_backend(backend)
    return part_pool_reference(part_maps, features, eps)


__all__ = ["BACKENDS", "fused_structure_attention", "part_pool",
           "fused_structure_attention_reference", "part_pool_reference"]
