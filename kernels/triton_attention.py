"""Triton kernel: fused structure attention, softmax(scale q k^T) v (SPOT eqs. 4-5).

Design (one head, N = 162 nodes, Dk = 256, Dv = 2048 in SPOT):

- One program owns a tile of ``BLOCK_M`` query rows of one batch item and *all* N keys: the
  ``(BLOCK_M, BLOCK_N)`` score tile (``BLOCK_N`` = N rounded up to a power of two, 256 for
  N = 162) stays in registers, so the softmax is exact in one pass (no online rescaling) and
  the probabilities never touch global memory.
- Scores accumulate over Dk in ``BLOCK_DK`` chunks; the value width is walked in ``BLOCK_DV``
  chunks, each a ``(BLOCK_M, BLOCK_N) @ (BLOCK_N, BLOCK_DV)`` dot written straight out.
- A third grid axis splits Dv between programs when the batch is small (B = 1 gives only
  ceil(162 / 32) = 6 query tiles): each split recomputes the cheap score tile, which buys
  enough programs to fill the GPU. At large B every program walks the whole Dv.
- Masks handle every non-power-of-two size (rows, keys, Dk, Dv); padded keys get -inf logits.
- fp16 / bf16 dots accumulate in fp32 on tensor cores; fp32 inputs use IEEE fp32 dots so the
  result matches the PyTorch reference (which does not use TF32 by default).

Triton is imported by this module; import it lazily (``spot_edge.kernels`` does).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from spot_edge.kernels.backward import fused_structure_attention_backward
from spot_edge.kernels.triton_common import interpreter_needs_upcast

#: Largest key count one program holds in registers (``BLOCK_N``); larger N is refused.
MAX_NODES = 1024


@triton.jit
def _structure_attention_kernel(
    q_ptr, k_ptr, v_ptr, o_ptr,
    N, DK, DV, scale, dv_per_program,
    stride_qb, stride_qn, stride_qd,
    stride_kb, stride_kn, stride_kd,
    stride_vb, stride_vn, stride_vd,
    stride_ob, stride_on, stride_od,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_DK: tl.constexpr,
    BLOCK_DV: tl.constexpr, PRECISION: tl.constexpr, UPCAST_DOT: tl.constexpr,
):
    pid_b = tl.program_id(0)
    pid_m = tl.program_id(1)
    pid_split = tl.program_id(2)

    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    keys = tl.arange(0, BLOCK_N)
    row_ok = rows < N
    key_ok = keys < N
    q_base = q_ptr + pid_b * stride_qb
    k_base = k_ptr + pid_b * stride_kb
    v_base = v_ptr + pid_b * stride_vb
    o_base = o_ptr + pid_b * stride_ob

    # Logits for BLOCK_M rows against all keys, accumulated over the embedding width.
    logits = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for d0 in range(0, DK, BLOCK_DK):
        dims = d0 + tl.arange(0, BLOCK_DK)
        dim_ok = dims < DK
        q_tile = tl.load(q_base + rows[:, None] * stride_qn + dims[None, :] * stride_qd,
                         mask=row_ok[:, None] & dim_ok[None, :], other=0.0)
        k_tile = tl.load(k_base + keys[:, None] * stride_kn + dims[None, :] * stride_kd,
                         mask=key_ok[:, None] & dim_ok[None, :], other=0.0)
        if UPCAST_DOT:  # the CPU interpreter mis-handles bf16 dots; emulate them in fp32
            q_tile = q_tile.to(tl.float32)
            k_tile = k_tile.to(tl.float32)
        logits = tl.dot(q_tile, tl.trans(k_tile), logits, input_precision=PRECISION)

    # Exact softmax over the keys (all of them are in this tile).
    logits = tl.where(key_ok[None, :], logits * scale, float("-inf"))
    row_max = tl.max(logits, axis=1)
    probs = tl.exp(logits - row_max[:, None])
    probs = probs / tl.sum(probs, axis=1)[:, None]
    probs = probs.to(v_ptr.dtype.element_ty)

    # Walk this program's share of the value width.
    dv_start = pid_split * dv_per_program
    for j in range(0, dv_per_program, BLOCK_DV):
        cols = dv_start + j + tl.arange(0, BLOCK_DV)
        col_ok = cols < DV
        v_tile = tl.load(v_base + keys[:, None] * stride_vn + cols[None, :] * stride_vd,
                         mask=key_ok[:, None] & col_ok[None, :], other=0.0)
        if UPCAST_DOT:
            out = tl.dot(probs.to(tl.float32), v_tile.to(tl.float32), input_precision="ieee")
        else:
            out = tl.dot(probs, v_tile, input_precision=PRECISION)
        tl.store(o_base + rows[:, None] * stride_on + cols[None, :] * stride_od,
                 out.to(o_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


def _launch_config(batch: int, nodes: int, dv: int, dk: int) -> dict:
    """Tile sizes and Dv split (heuristic, reasoned for H100 / Orin; see module docstring)."""
    block_n = max(16, triton.next_power_of_2(nodes))
    block_m = 32 if block_n <= 256 else 16
    block_dk = min(64, max(16, triton.next_power_of_2(dk)))
    block_dv = 64 if block_n <= 256 else 32
    m_tiles = triton.cdiv(nodes, block_m)
    dv_tiles = triton.cdiv(dv, block_dv)
    target_programs = 256                      # ~2 waves on 132 SMs; Orin has 16 SMs
    splits = max(1, min(dv_tiles, triton.cdiv(target_programs, batch * m_tiles)))
    dv_per_program = triton.cdiv(dv_tiles, splits) * block_dv
    splits = triton.cdiv(dv, dv_per_program)
    num_warps = 4 if block_n <= 256 else 8
    return dict(BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_DK=block_dk, BLOCK_DV=block_dv,
                grid=(batch, m_tiles, splits), dv_per_program=dv_per_program,
                num_warps=num_warps)


def structure_attention_forward(q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0) -> Tensor:
    """Run the Triton kernel (no autograd): ``(B, N, Dk), (B, N, Dk), (B, N, Dv) -> (B, N, Dv)``.

    Inputs may be strided views (e.g. ``conv(x).flatten(2).transpose(1, 2)``); the output is
    contiguous, in the inputs' dtype.
    """
    batch, nodes, dk = q.shape
    dv = v.shape[-1]
    if nodes > MAX_NODES:
        raise ValueError(f"Triton structure attention holds all keys of a row in one tile and "
                         f"supports N <= {MAX_NODES} nodes, got N = {nodes}; use backend='reference'")
    out = torch.empty((batch, nodes, dv), device=v.device, dtype=v.dtype)
    if out.numel() == 0:
        return out
    cfg = _launch_config(batch, nodes, dv, dk)
    precision = "ieee" if q.dtype == torch.float32 else None   # fp32: no TF32, like the reference
    _structure_attention_kernel[cfg["grid"]](
        q, k, v, out,
        nodes, dk, dv, float(scale), cfg["dv_per_program"],
        *q.stride(), *k.stride(), *v.stride(), *out.stride(),
        BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], BLOCK_DK=cfg["BLOCK_DK"],
        BLOCK_DV=cfg["BLOCK_DV"], PRECISION=precision,
        UPCAST_DOT=interpreter_needs_upcast(v.dtype), num_warps=cfg["num_warps"],
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
