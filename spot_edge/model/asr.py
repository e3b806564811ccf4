"""Attended structure representation, ASR (paper Sec. III-A, eqs. 3-6).

Structure-guided attention: node-to-node attention computed from the structure feature
(fused with appearance) re-weights the appearance feature, with a BN residual.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spot_edge.kernels import fused_structure_attention


class AttendedStructureRepresentation(nn.Module):
    """ASR: ``F_I (B, C_I, H, W), F_S (B, C_S, H, W) -> F_IS (B, C_I, H, W)``.

    - eq. 3: ``F_S_bar = W_phi2(ReLU(BN(W_phi1([F_I, F_S]))))``, 1x1 convs
      ``(C_I + C_S) -> (C_I + C_S) -> C_I``.
    - eq. 4: ``m[t, j] = softmax_j(K(F_S_bar)_t . Q(F_S_bar)_j)``, K and Q 1x1 convs to ``key_dim``.
    - eq. 5: ``F_I_bar[t] = sum_j m[t, j] V(F_I)_j``, V a 1x1 conv ``C_I -> C_I``.
    - eq. 6: ``F_IS = F_I_bar + BN(F_I)``.

    The attention over the n = H*W nodes (one head, value width C_I) runs through
    :func:`spot_edge.kernels.fused_structure_attention`; ``kernel_backend`` picks its
    implementation.

    Memory layout: no copy between the attention and eq. 6 in either memory format. The
    kernels write their output in the layout of the values: ``(B, C_I, n)`` memory for an NCHW
    model, so ``transpose(1, 2).reshape(B, C_I, H, W)`` is a view of an NCHW tensor; ``(B, n, C_I)``
    for a channels-last model (``model.to(memory_format=torch.channels_last)``: the 1x1 convs then
    hand the kernels contiguous, 16-byte aligned rows), a view of a channels-last tensor. The sum
    of eq. 6 takes the memory format of ``BN(F_I)``, so what follows sees the model's format even
    when the reference (contiguous ``(B, n, C_I)`` output) ran.
    """

    def __init__(self, appearance_channels: int, structure_channels: int, key_dim: int,
                 attention_scale: float = 1.0) -> None:
        super().__init__()
        fused = appearance_channels + structure_channels
        self.embed = nn.Sequential(                       # phi(.) of eq. 3
            nn.Conv2d(fused, fused, 1, bias=False),
            nn.BatchNorm2d(fused),
            nn.ReLU(inplace=True),
            nn.Conv2d(fused, appearance_channels, 1),
        )
        self.key = nn.Conv2d(appearance_channels, key_dim, 1)     # K(.) of eq. 4
        self.query = nn.Conv2d(appearance_channels, key_dim, 1)   # Q(.) of eq. 4
        self.value = nn.Conv2d(appearance_channels, appearance_channels, 1)  # V(.) of eq. 5
        self.residual_bn = nn.BatchNorm2d(appearance_channels)   # BN of eq. 6
        self.attention_scale = float(attention_scale)
        self.kernel_backend = "auto"

    def forward(self, appearance: Tensor, structure: Tensor) -> Tensor:
        b, c, h, w = appearance.shape
        fused = self.embed(torch.cat([appearance, structure], dim=1))          # eq. 3, (B, C_I, H, W)
        rows = self.key(fused).flatten(2).transpose(1, 2)                      # (B, n, Dk): K at node t
        cols = self.query(fused).flatten(2).transpose(1, 2)                    # (B, n, Dk): Q at node j
        values = self.value(appearance).flatten(2).transpose(1, 2)             # (B, n, C_I)
        attended = fused_structure_attention(rows, cols, values, scale=self.attention_scale,
                                             backend=self.kernel_backend)      # eqs. 4-5, (B, n, C_I)
        attended = attended.transpose(1, 2).reshape(b, c, h, w)               # a view, see above
        return self.residual_bn(appearance) + attended                        # eq. 6, F_I's format

    def attention_map(self, appearance: Tensor, structure: Tensor) -> Tensor:
        """The node-to-node matrix m of eq. 4, ``(B, n, n)`` (for visualisation)."""
        fused = self.embed(torch.cat([appearance, structure], dim=1))
        rows = self.key(fused).flatten(2).transpose(1, 2) * self.attention_scale
        cols = self.query(fused).flatten(2).transpose(1, 2)
        return torch.softmax(rows @ cols.transpose(1, 2), dim=-1)
