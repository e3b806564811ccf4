"""Triton interpreter helpers shared by the Triton kernels (no Triton import here)."""

from __future__ import annotations

import os

import torch


def interpreter_active() -> bool:
    """True when Triton runs kernels on the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def interpreter_needs_upcast(dtype: torch.dtype) -> bool:
    """The CPU interpreter (triton 3.8) computes garbage for bf16 ``tl.dot``; the kernels then
    upcast the dot operands to fp32 (same products, since bf16 -> fp32 is exact). On a GPU the
    native bf16 tensor-core dot runs."""
    return dtype == torch.bfloat16 and interpreter_active()
