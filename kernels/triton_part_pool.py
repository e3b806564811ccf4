"""Triton kernel: node-level part pooling (SPOT eq. 9) in one pass over the features.

Design (P = 2..9 parts, C = 2048 channels, HW = 18 x 9 = 162 nodes in SPOT):

- One program owns ``BLOCK_C`` channels of one batch item. It walks the nodes in ``BLOCK_HW``
  chunks; per chunk it loads the ``(P, BLOCK_HW)`` part maps (tiny, cache resident), forms the
  arg-max mask and ``M_bar`` in registers, loads the ``(BLOCK_C, BLOCK_HW)`` feature tile once
  and accumulates ``M_bar @ F^T`` into a ``(BLOCK_P, BLOCK_C)`` fp32 tile. Each feature element
  is read exactly once by exactly one program: the op is bound by that single read.
- ``BLOCK_P`` pads P to 16 (the smallest dot shape); the padded rows are masked to zero.
- The part mass ``sum_hw M_bar`` is accumulated alongside; the epilogue divides
  ``mean_hw(M_bar F) / (mean_hw(M_bar) + eps)`` and stores ``(P, BLOCK_C)`` of the output.
- Ties at a node keep every maximal map, exactly as the reference.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from spot_edge.kernels.backward import part_pool_backward
from spot_edge.kernels.triton_common import interpreter_needs_upcast

#: Largest part count one program holds (``BLOCK_P``); larger P is refused.
MAX_PARTS = 64


@triton.jit
def _part_pool_kernel(
    maps_ptr, feat_ptr, out_ptr,
    P, C, HW, eps,
    stride_mb, stride_mp, stride_mhw,
    stride_fb, stride_fc, stride_fhw,
    stride_ob, stride_op, stride_oc,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
    PRECISION: tl.constexpr, UPCAST_DOT: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_c = tl.program_id(1)

    parts = tl.arange(0, BLOCK_P)
    chans = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    part_ok = parts < P
    chan_ok = chans < C
    maps_base = maps_ptr + pid_b * stride_mb
    feat_base = feat_ptr + pid_b * stride_fb

    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    mass = tl.zeros((BLOCK_P,), dtype=tl.float32)
    for hw0 in range(0, HW, BLOCK_HW):
        nodes = hw0 + tl.arange(0, BLOCK_HW)
        node_ok = nodes < HW
        valid = part_ok[:, None] & node_ok[None, :]
        maps = tl.load(maps_base + parts[:, None] * stride_mp + nodes[None, :] * stride_mhw,
                       mask=valid, other=float("-inf")).to(tl.float32)
        node_max = tl.max(maps, axis=0)                                   # (BLOCK_HW,)
        m_bar = tl.where(valid & (maps == node_max[None, :]), maps, 0.0)  # eq. 9 arg-max division
        mass += tl.sum(m_bar, axis=1)
        feats = tl.load(feat_base + chans[:, None] * stride_fc + nodes[None, :] * stride_fhw,
                        mask=chan_ok[:, None] & node_ok[None, :], other=0.0)
        m_bar = m_bar.to(feats.dtype)               # the reference forms M_bar in the input dtype
        if UPCAST_DOT:  # the CPU interpreter mis-handles bf16 dots; emulate them in fp32
            acc = tl.dot(m_bar.to(tl.float32), tl.trans(feats.to(tl.float32)), acc,
                         input_precision="ieee")
        else:
            acc = tl.dot(m_bar, tl.trans(feats), acc, input_precision=PRECISION)

    denom = mass / HW + eps
    out = (acc / HW) / denom[:, None]
    tl.store(out_ptr + pid_b * stride_ob + parts[:, None] * stride_op + chans[None, :] * stride_oc,
             out.to(out_ptr.dtype.element_ty), mask=part_ok[:, None] & chan_ok[None, :])


def _launch_config(batch: int, parts: int, channels: int, nodes: int) -> dict:
    block_p = max(16, triton.next_power_of_2(parts))
    block_hw = min(64, max(16, triton.next_power_of_2(nodes)))
    # Small batches: narrower channel tiles to give the GPU enough programs.
    block_c = 64 if batch * triton.cdiv(channels, 64) >= 264 else 32
    return dict(BLOCK_P=block_p, BLOCK_C=block_c, BLOCK_HW=block_hw,
                grid=(batch, triton.cdiv(channels, block_c)), num_warps=4)


def part_pool_forward(part_maps: Tensor, features: Tensor, eps: float = 1e-6) -> Tensor:
    """Run the Triton kernel (no autograd): ``(B, P, H, W), (B, C, H, W) -> (B, P, C)``."""
    batch, parts, h, w = part_maps.shape
    channels = features.shape[1]
    if parts > MAX_PARTS:
        raise ValueError(f"Triton part pooling supports P <= {MAX_PARTS} part maps, got {parts}; "
                         f"use backend='reference'")
    maps = part_maps.reshape(batch, parts, h * w)
    feats = features.reshape(batch, channels, h * w)
    out = torch.empty((batch, parts, channels), device=features.device, dtype=features.dtype)
    if out.numel() == 0:
        return out
    cfg = _launch_config(batch, parts, channels, h * w)
    precision = "ieee" if features.dtype == torch.float32 else None   # fp32: no TF32
    _part_pool_kernel[cfg["grid"]](
        maps, feats, out, parts, channels, h * w, float(eps),
        *maps.stride(), *feats.stride(), *out.stride(),
        BLOCK_P=cfg["BLOCK_P"], BLOCK_C=cfg["BLOCK_C"], BLOCK_HW=cfg["BLOCK_HW"],
        PRECISION=precision, UPCAST_DOT=interpreter_needs_upcast(features.dtype), num_warps=cfg["num_warps"],
    )
    return out


class TritonPartPool(torch.autograd.Function):
    """Triton forward; backward by the closed-form gradients of :mod:`.backward`."""

    @staticmethod
    def forward(ctx, part_maps: Tensor, features: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(part_maps, features)
        ctx.eps = eps
        return part_pool_forward(part_maps, features, eps)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        part_maps, features = ctx.saved_tensors
        grad_maps, grad_feats = part_pool_backward(grad_out, part_maps, features, ctx.eps)
        return grad_maps, grad_feats, None


def part_pool_triton(part_maps: Tensor, features: Tensor, eps: float = 1e-6) -> Tensor:
    """Differentiable Triton part pooling (shapes as the reference)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (part_maps, features)):
        return TritonPartPool.apply(part_maps, features, float(eps))
    return part_pool_forward(part_maps, features, float(eps))    # inference: no autograd.Function
