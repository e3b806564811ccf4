"""Triton kernel: node-level part pooling (SPOT eq. 9) in one pass over the features.

Design (P = 2..9 parts, C = 2048 channels, HW = 18 x 9 = 162 nodes in SPOT):

- One program owns ``BLOCK_C`` channels of one batch item. It walks the nodes in ``BLOCK_HW``
  chunks; per chunk it loads the ``(P, BLOCK_HW)`` part maps (tiny, cache resident), forms the
  arg-max mask and ``M_bar`` in registers, loads the ``(BLOCK_C, BLOCK_HW)`` feature tile once
  and accumulates ``M_bar @ F^T`` into a ``(BLOCK_P, BLOCK_C)`` fp32 tile. Each feature element
  is read exactly once by exactly one program: the op is bound by that single read.
- P, C, HW and every stride are ``tl.constexpr``: the node loop has a static trip count and is
  software-pipelined with ``num_stages`` = the number of node chunks (3 for HW = 162), so all
  of a program's feature loads are in flight at once (``cp.async``), vectorised along whichever
  axis is unit-stride (nodes for NCHW features, channels for channels-last ones).
- ``BLOCK_P`` is P rounded up to a power of two, and at least 16 (the smallest ``tl.dot``
  shape); the padded rows are masked to zero.
- The part mass ``sum_hw M_bar`` is accumulated alongside; the epilogue divides
  ``mean_hw(M_bar F) / (mean_hw(M_bar) + eps)`` and stores ``(P, BLOCK_C)`` of the output.
- Ties at a node keep every maximal map, exactly as the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import triton
import triton.language as tl
from torch import Tensor

from spot_edge.kernels.backward import part_pool_backward
from spot_edge.kernels.device_info import multiprocessors
from spot_edge.kernels.planning import next_power_of_2
from spot_edge.kernels.triton_common import interpreter_needs_upcast

#: Largest part count one program holds (``BLOCK_P``); larger P is refused.
MAX_PARTS = 64


@triton.jit
def part_pool_kernel(
    maps_ptr, feat_ptr, out_ptr, eps,
    P: tl.constexpr, C: tl.constexpr, HW: tl.constexpr,
    SMB: tl.constexpr, SMP: tl.constexpr, SMHW: tl.constexpr,
    SFB: tl.constexpr, SFC: tl.constexpr, SFHW: tl.constexpr,
    SOB: tl.constexpr, SOP: tl.constexpr, SOC: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr,
    PRECISION: tl.constexpr, UPCAST_DOT: tl.constexpr,
):
    pid_b = tl.program_id(0).to(tl.int64)
    pid_c = tl.program_id(1)

    parts = tl.arange(0, BLOCK_P)
    chans = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    part_ok = parts < P
    chan_ok = chans < C
    maps_base = maps_ptr + pid_b * SMB
    feat_base = feat_ptr + pid_b * SFB

    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    mass = tl.zeros((BLOCK_P,), dtype=tl.float32)
    for hw0 in range(0, HW, BLOCK_HW):
        nodes = hw0 + tl.arange(0, BLOCK_HW)
        node_ok = nodes < HW
        valid = part_ok[:, None] & node_ok[None, :]
        maps = tl.load(maps_base + parts[:, None] * SMP + nodes[None, :] * SMHW,
                       mask=valid, other=float("-inf")).to(tl.float32)
        node_max = tl.max(maps, axis=0)                                   # (BLOCK_HW,)
        m_bar = tl.where(valid & (maps == node_max[None, :]), maps, 0.0)  # eq. 9 arg-max division
        mass += tl.sum(m_bar, axis=1)
        feats = tl.load(feat_base + chans[:, None] * SFC + nodes[None, :] * SFHW,
                        mask=chan_ok[:, None] & node_ok[None, :], other=0.0)
        m_bar = m_bar.to(feats.dtype)               # the reference forms M_bar in the input dtype
        if UPCAST_DOT:  # the CPU interpreter mis-handles bf16 dots; emulate them in fp32
            acc = tl.dot(m_bar.to(tl.float32), tl.trans(feats.to(tl.float32)), acc,
                         input_precision="ieee")
        else:
            acc = tl.dot(m_bar, tl.trans(feats), acc, input_precision=PRECISION)

    denom = mass / HW + eps
    out = (acc / HW) / denom[:, None]
    tl.store(out_ptr + pid_b * SOB + parts[:, None] * SOP + chans[None, :] * SOC,
             out.to(out_ptr.dtype.element_ty), mask=part_ok[:, None] & chan_ok[None, :])


@dataclass(frozen=True)
class PartPoolPlan:
    """Compile-time configuration of one kernel variant and its launch grid."""

    constexprs: dict = field(hash=False)
    num_warps: int
    num_stages: int
    grid: tuple[int, int]

    def key(self) -> tuple:
        return (tuple(sorted(self.constexprs.items())), self.num_warps, self.num_stages)


def part_pool_plan(batch: int, parts: int, channels: int, nodes: int, dtype: torch.dtype,
                   strides: tuple[tuple[int, int, int], ...], slots: int,
                   upcast_dot: bool = False) -> PartPoolPlan:
    """Tile sizes, constexprs and grid for one call.

    Args:
        strides: element strides of the maps ``(batch, part, node)``, the features
            ``(batch, channel, node)`` and the output ``(batch, part, channel)``.
        slots: SMs on the device; small batches get narrower channel tiles to fill them.
    """
    block_p = max(16, next_power_of_2(parts))
    block_hw = min(64, max(16, next_power_of_2(nodes)))
    block_c = 64 if batch * -(-channels // 64) >= 2 * slots else 32
    chunks = -(-nodes // block_hw)
    (smb, smp, smhw), (sfb, sfc, sfhw), (sob, sop, soc) = strides
    constexprs = dict(P=parts, C=channels, HW=nodes, SMB=smb, SMP=smp, SMHW=smhw,
                      SFB=sfb, SFC=sfc, SFHW=sfhw, SOB=sob, SOP=sop, SOC=soc,
                      BLOCK_P=block_p, BLOCK_C=block_c, BLOCK_HW=block_hw,
                      PRECISION="ieee" if dtype == torch.float32 else None, UPCAST_DOT=upcast_dot)
    return PartPoolPlan(constexprs, num_warps=4, num_stages=max(2, min(4, chunks)),
                        grid=(batch, -(-channels // block_c)))


def compiled_shared_bytes(plan: PartPoolPlan, dtype: torch.dtype) -> int:
    """Shared memory per block of ``plan``'s kernel for the current GPU, from Triton's JIT (compiles
    without launching; the launch then reuses the compiled kernel). Needs a GPU."""
    compiled = part_pool_kernel.warmup(dtype, dtype, dtype, 1e-6, grid=plan.grid, **plan.constexprs,
                                        num_warps=plan.num_warps, num_stages=plan.num_stages)
    return int(compiled.metadata.shared)


def plan_for(maps: Tensor, feats: Tensor, out: Tensor) -> PartPoolPlan:
    """The plan :func:`part_pool_forward` launches for ``(B, P, HW)`` maps and ``(B, C, HW)`` features."""
    batch, parts, nodes = maps.shape
    return part_pool_plan(batch, parts, feats.shape[1], nodes, feats.dtype,
                          (maps.stride(), feats.stride(), out.stride()), multiprocessors(feats.device),
                          upcast_dot=interpreter_needs_upcast(feats.dtype))


def part_pool_forward(part_maps: Tensor, features: Tensor, eps: float = 1e-6) -> Tensor:
    """Run the Triton kernel (no autograd): ``(B, P, H, W), (B, C, H, W) -> (B, P, C)``."""
    batch, parts, h, w = part_maps.shape
    channels = features.shape[1]
    if parts > MAX_PARTS:
        raise ValueError(f"Triton part pooling supports P <= {MAX_PARTS} part maps, got {parts}; "
                         f"use backend='reference'")
    maps = part_maps.flatten(2)                   # views for NCHW and channels-last inputs alike
    feats = features.flatten(2)
    out = torch.empty((batch, parts, channels), device=features.device, dtype=features.dtype)
    if out.numel() == 0:
        return out
    plan = plan_for(maps, feats, out)
    part_pool_kernel[plan.grid](maps, feats, out, float(eps), **plan.constexprs,
                                 num_warps=plan.num_warps, num_stages=plan.num_stages)
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
