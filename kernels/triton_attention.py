"""Triton kernel: fused structure attention, softmax(scale q k^T) v (SPOT eqs. 4-5).

Design (one head, N = 162 nodes, Dk = 256, Dv = 2048 in SPOT):

- One program owns ``BLOCK_M`` = 64 query rows of one batch item (the ``wgmma`` tile height
  on sm_90; 3 query tiles for N = 162, so each value tile is read from L2 three times) and
  *all* N keys, so the softmax is exact in one pass (no online rescaling) and the
  probabilities never touch global memory.
- The keys are held as two power-of-two blocks (``BLOCK_N1 + BLOCK_N2`` = 128 + 64 for
  N = 162) rather than one block padded to 256, which would waste 58% of the MMA work.
- N, Dk, Dv and every stride are ``tl.constexpr``: masks and address arithmetic fold at
  compile time, loads along the unit-stride axis vectorise, and the value loop is
  software-pipelined (``num_stages`` buffers of ``cp.async`` copies in flight).
- The logits accumulate over Dk in ``BLOCK_DK`` chunks; the value width is walked in
  ``BLOCK_DV`` chunks, each ``P1 @ V1 + P2 @ V2`` written straight out, in the layout of
  ``v`` (SPOT's ``(B, C, n)`` memory for NCHW models, so ASR needs no transposing copy).
- A third grid axis splits Dv between programs only as far as whole waves allow
  (:func:`spot_edge.kernels.planning.wave_splits`), each split recomputing the logits.
- fp16 / bf16 dots accumulate in fp32 on tensor cores; fp32 inputs use IEEE fp32 dots so the
  result matches the PyTorch reference (which does not use TF32 by default).

Triton is imported by this module; import it lazily (``spot_edge.kernels`` does).
:func:`attention_plan` needs no Triton and no GPU (the ahead-of-time checks use it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import triton
import triton.language as tl
from torch import Tensor

from spot_edge.kernels.backward import fused_structure_attention_backward
from spot_edge.kernels.device_info import multiprocessors
from spot_edge.kernels.planning import key_blocks, next_power_of_2, output_like_values, wave_splits
from spot_edge.kernels.triton_common import interpreter_needs_upcast

#: Largest key count one program holds (all keys of a row live in registers); larger N is refused.
MAX_NODES = 1024


@triton.jit
def structure_attention_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr, scale, dv_per_program,
    N: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr,
    SQB: tl.constexpr, SQN: tl.constexpr, SQD: tl.constexpr,
    SKB: tl.constexpr, SKN: tl.constexpr, SKD: tl.constexpr,
    SVB: tl.constexpr, SVN: tl.constexpr, SVD: tl.constexpr,
    SOB: tl.constexpr, SON: tl.constexpr, SOD: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N1: tl.constexpr, BLOCK_N2: tl.constexpr, BLOCK_DK: tl.constexpr,
    BLOCK_DV: tl.constexpr, EVEN_DV: tl.constexpr, PRECISION: tl.constexpr, UPCAST_DOT: tl.constexpr,
):
    pid_b = tl.program_id(0).to(tl.int64)
    pid_m = tl.program_id(1)
    pid_split = tl.program_id(2)

    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < N
    keys1 = tl.arange(0, BLOCK_N1)
    keys2 = BLOCK_N1 + tl.arange(0, BLOCK_N2 if BLOCK_N2 > 0 else 16)
    q_base = q_ptr + pid_b * SQB
    k_base = k_ptr + pid_b * SKB
    v_base = v_ptr + pid_b * SVB
    o_base = o_ptr + pid_b * SOB

    # Logits of BLOCK_M rows against both key blocks, accumulated over the embedding width.
    logits1 = tl.zeros((BLOCK_M, BLOCK_N1), dtype=tl.float32)
    logits2 = tl.zeros((BLOCK_M, BLOCK_N2 if BLOCK_N2 > 0 else 16), dtype=tl.float32)
    for d0 in range(0, DK, BLOCK_DK):
        dims = d0 + tl.arange(0, BLOCK_DK)
        dim_ok = dims < DK
        q_tile = tl.load(q_base + rows[:, None] * SQN + dims[None, :] * SQD,
                         mask=row_ok[:, None] & dim_ok[None, :], other=0.0)
        k1 = tl.load(k_base + keys1[:, None] * SKN + dims[None, :] * SKD,
                     mask=(keys1 < N)[:, None] & dim_ok[None, :], other=0.0)
        if UPCAST_DOT:  # the CPU interpreter mis-handles bf16 dots; emulate them in fp32
            q_tile = q_tile.to(tl.float32)
            k1 = k1.to(tl.float32)
        logits1 = tl.dot(q_tile, tl.trans(k1), logits1, input_precision=PRECISION)
        if BLOCK_N2 > 0:
            k2 = tl.load(k_base + keys2[:, None] * SKN + dims[None, :] * SKD,
                         mask=(keys2 < N)[:, None] & dim_ok[None, :], other=0.0)
            if UPCAST_DOT:
                k2 = k2.to(tl.float32)
            logits2 = tl.dot(q_tile, tl.trans(k2), logits2, input_precision=PRECISION)

    # Exact softmax over all N keys (both blocks are in registers).
    logits1 = tl.where((keys1 < N)[None, :], logits1 * scale, float("-inf"))
    row_max = tl.max(logits1, axis=1)
    if BLOCK_N2 > 0:
        logits2 = tl.where((keys2 < N)[None, :], logits2 * scale, float("-inf"))
        row_max = tl.maximum(row_max, tl.max(logits2, axis=1))
    probs1 = tl.exp(logits1 - row_max[:, None])
    total = tl.sum(probs1, axis=1)
    if BLOCK_N2 > 0:
        probs2 = tl.exp(logits2 - row_max[:, None])
        total += tl.sum(probs2, axis=1)
    inv_total = 1.0 / total
    if UPCAST_DOT:
        probs1 = (probs1 * inv_total[:, None]).to(v_ptr.dtype.element_ty).to(tl.float32)
    else:
        probs1 = (probs1 * inv_total[:, None]).to(v_ptr.dtype.element_ty)
    if BLOCK_N2 > 0:
        if UPCAST_DOT:
            probs2 = (probs2 * inv_total[:, None]).to(v_ptr.dtype.element_ty).to(tl.float32)
        else:
            probs2 = (probs2 * inv_total[:, None]).to(v_ptr.dtype.element_ty)

    # Walk this program's share of the value width.
    dv_start = pid_split * dv_per_program
    for j in range(0, dv_per_program, BLOCK_DV):
        cols = dv_start + j + tl.arange(0, BLOCK_DV)
        col_ok = cols < DV
        if EVEN_DV:
            v1 = tl.load(v_base + keys1[:, None] * SVN + cols[None, :] * SVD,
                         mask=(keys1 < N)[:, None], other=0.0)
        else:
            v1 = tl.load(v_base + keys1[:, None] * SVN + cols[None, :] * SVD,
                         mask=(keys1 < N)[:, None] & col_ok[None, :], other=0.0)
        if UPCAST_DOT:
            v1 = v1.to(tl.float32)
        out = tl.dot(probs1, v1, input_precision=PRECISION)
        if BLOCK_N2 > 0:
            if EVEN_DV:
                v2 = tl.load(v_base + keys2[:, None] * SVN + cols[None, :] * SVD,
                             mask=(keys2 < N)[:, None], other=0.0)
            else:
                v2 = tl.load(v_base + keys2[:, None] * SVN + cols[None, :] * SVD,
                             mask=(keys2 < N)[:, None] & col_ok[None, :], other=0.0)
            if UPCAST_DOT:
                v2 = v2.to(tl.float32)
            out = tl.dot(probs2, v2, out, input_precision=PRECISION)
        out_ptrs = o_base + rows[:, None] * SON + cols[None, :] * SOD
        if EVEN_DV:
            tl.store(out_ptrs, out.to(o_ptr.dtype.element_ty), mask=row_ok[:, None])
        else:
            tl.store(out_ptrs, out.to(o_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


@dataclass(frozen=True)
class AttentionPlan:
    """Compile-time configuration of one kernel variant (no batch size in it) and its launch."""

    constexprs: dict = field(hash=False)
    num_warps: int
    num_stages: int
    dv_per_program: int
    grid: tuple[int, int, int]

    def key(self) -> tuple:
        """Identifies the compiled variant (what Triton's cache keys on, less the pointers)."""
        return (tuple(sorted(self.constexprs.items())), self.num_warps, self.num_stages)


def _tiles(dtype: torch.dtype, nodes: int) -> dict:
    """Tile sizes per dtype and key count (see the module docstring; checked ahead of time for
    sm_87 and sm_90 by ``tests/test_kernels_aot.py``: shared memory within the limit, no spills)."""
    first, second = key_blocks(nodes)
    keys = first + second
    if dtype == torch.float32:      # IEEE fp32 dots on CUDA cores: smaller tiles, no tensor cores
        block_m = 32 if keys <= 256 else 16
        return dict(BLOCK_M=block_m, BLOCK_DK=32, BLOCK_DV=32, num_warps=4 if keys <= 256 else 8, num_stages=2)
    block_m = 64 if keys <= 256 else (32 if keys <= 512 else 16)
    return dict(BLOCK_M=block_m, BLOCK_DK=64, BLOCK_DV=64 if keys <= 512 else 32,
                num_warps=8 if keys <= 256 else 4, num_stages=3 if keys <= 256 else 2)


def attention_plan(batch: int, nodes: int, key_dim: int, value_dim: int, dtype: torch.dtype,
                   strides: tuple[tuple[int, int, int], ...], slots: int,
                   upcast_dot: bool = False) -> AttentionPlan:
    """Tile sizes, constexprs and grid for one call.

    Args:
        strides: element strides ``(batch, node, channel)`` of q, k, v and the output.
        slots: programs that run at once (SMs x programs per SM); sizes the Dv split.
    """
    first, second = key_blocks(nodes)
    tiles = _tiles(dtype, nodes)
    block_m, block_dk, block_dv = tiles["BLOCK_M"], tiles["BLOCK_DK"], tiles["BLOCK_DV"]
    block_dk = min(block_dk, max(16, next_power_of_2(key_dim)))
    m_tiles = -(-nodes // block_m)
    dv_tiles = -(-value_dim // block_dv)
    splits = wave_splits(batch * m_tiles, dv_tiles, slots, fixed_cost=key_dim / block_dv)
    dv_per_program = -(-dv_tiles // splits) * block_dv
    splits = -(-value_dim // dv_per_program)
    (sqb, sqn, sqd), (skb, skn, skd), (svb, svn, svd), (sob, son, sod) = strides
    constexprs = dict(N=nodes, DK=key_dim, DV=value_dim,
                      SQB=sqb, SQN=sqn, SQD=sqd, SKB=skb, SKN=skn, SKD=skd,
                      SVB=svb, SVN=svn, SVD=svd, SOB=sob, SON=son, SOD=sod,
                      BLOCK_M=block_m, BLOCK_N1=first, BLOCK_N2=second, BLOCK_DK=block_dk,
                      BLOCK_DV=block_dv, EVEN_DV=value_dim % dv_per_program == 0,
                      PRECISION="ieee" if dtype == torch.float32 else None,
                      UPCAST_DOT=upcast_dot)
    return AttentionPlan(constexprs, tiles["num_warps"], tiles["num_stages"], dv_per_program,
                         (batch, m_tiles, splits))


def compiled_shared_bytes(plan: AttentionPlan, dtype: torch.dtype) -> int:
    """Shared memory per block of ``plan``'s kernel for the current GPU, from Triton's JIT (compiles
    without launching; the launch then reuses the compiled kernel). Needs a GPU."""
    compiled = structure_attention_kernel.warmup(
        dtype, dtype, dtype, dtype, 1.0, plan.dv_per_program, grid=plan.grid, **plan.constexprs,
        num_warps=plan.num_warps, num_stages=plan.num_stages)
    return int(compiled.metadata.shared)


def plan_for(q: Tensor, k: Tensor, v: Tensor, out: Tensor) -> AttentionPlan:
    """The plan :func:`structure_attention_forward` launches for these tensors."""
    batch, nodes, key_dim = q.shape
    return attention_plan(batch, nodes, key_dim, v.shape[-1], q.dtype,
                          (q.stride(), k.stride(), v.stride(), out.stride()), multiprocessors(q.device),
                          upcast_dot=interpreter_needs_upcast(v.dtype))


def structure_attention_forward(q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0) -> Tensor:
    """Run the Triton kernel (no autograd): ``(B, N, Dk), (B, N, Dk), (B, N, Dv) -> (B, N, Dv)``.

    Inputs may be strided views (e.g. ``conv(x).flatten(2).transpose(1, 2)``); the output has
    the memory layout of ``v`` (:func:`spot_edge.kernels.planning.output_like_values`), in the inputs' dtype.
    """
    batch, nodes, _ = q.shape
    if nodes > MAX_NODES:
        raise ValueError(f"Triton structure attention holds all keys of a row in one tile and "
                         f"supports N <= {MAX_NODES} nodes, got N = {nodes}; use backend='reference'")
    out = output_like_values(v, nodes)
    if out.numel() == 0:
        return out
    plan = plan_for(q, k, v, out)
    structure_attention_kernel[plan.grid](
        q, k, v, out, float(scale), plan.dv_per_program, **plan.constexprs,
        num_warps=plan.num_warps, num_stages=plan.num_stages,
    )
    return out


class TritonStructureAttention(torch.autograd.Function):
    """Triton forward; backward by the closed-form gradients of :mod:`.backward`."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
        ctx.save_for_backward(q, k, v)
        ctx.scale = scale
        return structure_attention_forward(q, k, v, scale)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        q, k, v = ctx.saved_tensors
        grad_q, grad_k, grad_v = fused_structure_attention_backward(grad_out, q, k, v, ctx.scale)
        return grad_q, grad_k, grad_v, None


def fused_structure_attention_triton(q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0) -> Tensor:
    """Differentiable Triton fused structure attention (shapes as the reference)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        return TritonStructureAttention.apply(q, k, v, float(scale))
    return structure_attention_forward(q, k, v, float(scale))    # inference: no autograd.Function
