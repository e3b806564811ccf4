"""Transformer-based part interaction, TPI (paper Sec. III-B, eqs. 7-10).

Part maps learned from the structure feature divide the nodes into p parts (eqs. 8-9);
each part's pooled appearance feature plus a sinusoidal position code (eq. 7) goes through
a transformer encoder (eq. 10); a max over parts gives F_IP.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from spot_edge.kernels import part_pool


def sinusoidal_encoding(length: int, dim: int, base: float = 10000.0) -> Tensor:
    """Eq. 7: ``PE[pos, 2k] = sin(pos / base^(2k/dim))``, ``PE[pos, 2k+1] = cos(...)``; ``(length, dim)``."""
    pos = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    two_k = torch.arange(0, dim, 2, dtype=torch.float64)
    angle = pos / base ** (two_k / dim)
    pe = torch.zeros(length, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return pe.float()


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over a short sequence, ``(B, L, D) -> (B, L, D)``.

    Written with explicit matmuls and the ``1/sqrt(d_head)`` scale applied to Q before the
    first matmul, so that exported graphs show the MatMul-Softmax-MatMul pattern TensorRT fuses.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"{heads} heads do not divide width {dim}")
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                                    # (B, h, L, d_head)
        q = q * (1.0 / math.sqrt(self.head_dim))
        attn = self.dropout(torch.softmax(q @ k.transpose(-1, -2), dim=-1))  # (B, h, L, L)
        out = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(out)


class TransformerEncoderLayer(nn.Module):
    """One encoder layer: MHSA and a feed-forward network, each with a residual connection and a
    LayerNorm. ``(B, L, D)``.

    ``norm="post"`` (Vaswani et al., the paper's Fig. 4): ``x = LN(x + f(x))`` per sub-layer.
    ``norm="pre"``: ``x = x + f(LN(x))`` per sub-layer (the stack then needs a final LayerNorm,
    which :class:`TransformerPartInteraction` adds).
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float = 0.1, norm: str = "post") -> None:
        super().__init__()
        if norm not in ("post", "pre"):
            raise ValueError(f"unknown norm placement {norm!r}; use 'post' or 'pre'")
        self.norm_placement = norm
        self.attn = MultiHeadSelfAttention(dim, heads, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(ffn_dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.norm_placement == "pre":
            x = x + self.dropout(self.attn(self.norm1(x)))
            return x + self.dropout(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.dropout(self.attn(x)))
        return self.norm2(x + self.dropout(self.ffn(x)))


class TransformerPartInteraction(nn.Module):
    """TPI: ``F_I (B, C, H, W), F_S (B, C_S, H, W) -> F_IP (B, C)``.

    - eq. 8: ``M = sigmoid(W_theta F_S)``, ``(B, p, H, W)``.
    - eq. 9: node-level part pooling (:func:`spot_edge.kernels.part_pool`), ``(B, p, C)``.
    - eq. 7, 10: ``F_P_bar = Transformer(F_P + PE)`` (``norm``: post- or pre-norm layers; a
      pre-norm stack ends with a LayerNorm, ``encoder[-1]``).
    - max over the p parts -> ``F_IP``.
    """

    def __init__(self, feature_channels: int, structure_channels: int, num_parts: int, heads: int = 8,
                 layers: int = 1, ffn_dim: int = 2048, dropout: float = 0.1, pe_base: float = 10000.0,
                 eps: float = 1e-6, norm: str = "post") -> None:
        super().__init__()
        self.part_maps = nn.Conv2d(structure_channels, num_parts, 1)        # theta(.) of eq. 8
        self.register_buffer("position", sinusoidal_encoding(num_parts, feature_channels, pe_base),
                             persistent=False)
        blocks: list[nn.Module] = [TransformerEncoderLayer(feature_channels, heads, ffn_dim, dropout, norm)
                                   for _ in range(layers)]
        if norm == "pre":
            blocks.append(nn.LayerNorm(feature_channels))
        self.encoder = nn.Sequential(*blocks)
        self.eps = eps
        self.kernel_backend = "auto"

    def part_probabilities(self, structure: Tensor) -> Tensor:
        """M of eq. 8, ``(B, p, H, W)`` in (0, 1)."""
        return torch.sigmoid(self.part_maps(structure))

    def forward(self, appearance: Tensor, structure: Tensor) -> Tensor:
        maps = self.part_probabilities(structure)
        parts = part_pool(maps, appearance, eps=self.eps, backend=self.kernel_backend)  # (B, p, C)
        enhanced = self.encoder(parts + self.position.to(parts.dtype))                # eq. 10
        return enhanced.amax(dim=1)                                                    # F_IP, (B, C)

