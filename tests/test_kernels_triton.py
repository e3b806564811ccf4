"""Triton kernels against the reference, on the CPU under the Triton interpreter.

``TRITON_INTERPRET=1`` must be set before triton is imported, and other test files share this
pytest process, so the driver test below re-runs this file in a subprocess with the variable
set; there the real tests run (on a CUDA machine they also run in-process on the GPU).
Shapes stay small (the interpreter is slow) but include SPOT's N = 162 / HW = 18 x 9, odd and
non-power-of-two sizes, and strided (transposed) inputs as SPOT produces them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

INTERPRETER = os.environ.get("TRITON_INTERPRET") == "1"
ON_GPU = torch.cuda.is_available()
needs_triton_device = pytest.mark.skipif(
    not (INTERPRETER or ON_GPU),
    reason="runs in the TRITON_INTERPRET=1 subprocess started by test_triton_under_interpreter (or on a GPU)")

DEVICE = "cuda" if (ON_GPU and not INTERPRETER) else "cpu"
TOL = {torch.float32: (2e-5, 2e-5), torch.float16: (2e-3, 2e-3), torch.bfloat16: (2e-2, 2e-2)}


@pytest.mark.skipif(INTERPRETER, reason="this is the driver; the interpreter run is in progress")
def test_triton_under_interpreter():
    pytest.importorskip("triton", reason="Triton is not installed")
    env = dict(os.environ, TRITON_INTERPRET="1")
    env.pop("PYTEST_XDIST_WORKER", None)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
           str(Path(__file__).resolve())]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"interpreter run failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    summary = [line for line in proc.stdout.splitlines() if line.strip()][-1]
    passed = re.search(r"(\d+) passed", summary)
    skipped = re.search(r"(\d+) skipped", summary)
    assert passed and int(passed.group(1)) >= 20, summary
    assert not skipped or int(skipped.group(1)) == 1, f"only the driver may skip: {summary}"


# ----------------------------------------------------------------- independent float64 definitions

def attention_numpy(q, k, v, scale):
    q, k, v = (t.double().cpu().numpy() for t in (q, k, v))
    logits = scale * np.einsum("bnd,bmd->bnm", q, k)
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.einsum("bnm,bmc->bnc", weights, v)


def part_pool_numpy(maps, feats, eps):
    maps, feats = maps.double().cpu().numpy(), feats.double().cpu().numpy()
    b, p, h, w = maps.shape
    out = np.zeros((b, p, feats.shape[1]))
    for bi in range(b):
        m = maps[bi].reshape(p, h * w)
        f = feats[bi].reshape(-1, h * w)
        winner = m.max(axis=0)
        m_bar = np.where(m == winner, m, 0.0)
        out[bi] = (m_bar @ f.T / (h * w)) / (m_bar.mean(axis=1, keepdims=True) + eps)
    return out


def _close(actual, expected, dtype):
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(actual.double().cpu().numpy(), expected, rtol=rtol, atol=atol)


# ----------------------------------------------------------------- attention

ATTENTION_SHAPES = [  # (B, N, Dk, Dv)
    (2, 162, 24, 40),     # SPOT's N: key blocks 128 + 64; Dk, Dv not powers of two
    (1, 162, 16, 130),    # Dv split over programs (B = 1) with a ragged last split
    (3, 7, 5, 3),         # everything tiny and odd: one key block of 16
    (1, 33, 70, 65),      # Dk spans two BLOCK_DK chunks; key blocks 32 + 16
    (1, 256, 8, 20),      # one full key block of 256, no second block
]


@needs_triton_device
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", ATTENTION_SHAPES)
def test_attention_matches_reference(shape, dtype):
    from spot_edge.kernels import fused_structure_attention, fused_structure_attention_reference
    b, n, dk, dv = shape
    gen = torch.Generator().manual_seed(n * 1000 + dk)
    q = torch.randn(b, n, dk, generator=gen).to(DEVICE, dtype)
    k = torch.randn(b, n, dk, generator=gen).to(DEVICE, dtype)
    v = torch.randn(b, n, dv, generator=gen).to(DEVICE, dtype)
    scale = 0.37
    out = fused_structure_attention(q, k, v, scale, backend="triton")
    assert out.shape == (b, n, dv) and out.dtype == dtype
    _close(out, attention_numpy(q, k, v, scale), dtype)
    ref = fused_structure_attention_reference(q.float(), k.float(), v.float(), scale)
    _close(out, ref.double().cpu().numpy(), dtype)


@needs_triton_device
def test_attention_strided_views_like_spot():
    """SPOT passes ``conv(x).flatten(2).transpose(1, 2)`` views (unit stride along N)."""
    from spot_edge.kernels import fused_structure_attention
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(2, 20, 162, generator=gen).to(DEVICE).transpose(1, 2)
    k = torch.randn(2, 20, 162, generator=gen).to(DEVICE).transpose(1, 2)
    v = torch.randn(2, 48, 162, generator=gen).to(DEVICE).transpose(1, 2)
    out = fused_structure_attention(q, k, v, 0.2, backend="triton")
    _close(out, attention_numpy(q, k, v, 0.2), torch.float32)


@needs_triton_device
@pytest.mark.parametrize("layout", ["nchw", "contiguous"])
def test_attention_output_takes_the_layout_of_the_values(layout):
    """Node-contiguous values (NCHW conv views) give (B, Dv, N) memory, so ASR's transpose +
    reshape back to (B, C, H, W) is a view; contiguous values give a contiguous output."""
    from spot_edge.kernels import fused_structure_attention
    gen = torch.Generator().manual_seed(5)
    views = [torch.randn(2, c, 40, generator=gen).to(DEVICE).transpose(1, 2) for c in (8, 8, 24)]
    if layout == "contiguous":
        views = [t.contiguous() for t in views]
    out = fused_structure_attention(*views, 0.4, backend="triton")
    _close(out, attention_numpy(*views, 0.4), torch.float32)
    assert out.transpose(1, 2).is_contiguous() if layout == "nchw" else out.is_contiguous()


@needs_triton_device
def test_attention_gradients_match_reference():
    from spot_edge.kernels import fused_structure_attention, fused_structure_attention_reference
    gen = torch.Generator().manual_seed(2)
    inputs = [torch.randn(2, 19, s, generator=gen).to(DEVICE) for s in (9, 9, 21)]
    a = [t.clone().requires_grad_() for t in inputs]
    r = [t.clone().requires_grad_() for t in inputs]
    grad = torch.randn(2, 19, 21, generator=gen).to(DEVICE)
    fused_structure_attention(*a, 0.5, backend="triton").backward(grad)
    fused_structure_attention_reference(*r, 0.5).backward(grad)
    for x, y in zip(a, r):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------- part pooling

POOL_SHAPES = [  # (B, P, H, W, C)
    (2, 7, 18, 9, 40),    # SPOT's p = 7 over 18 x 9 nodes
    (1, 2, 18, 9, 70),    # p = 2 (Fig. 6), C over several channel tiles
    (2, 9, 5, 3, 33),     # p = 9, tiny odd map
    (1, 3, 1, 1, 17),     # a single node
]


@needs_triton_device
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", POOL_SHAPES)
def test_part_pool_matches_reference(shape, dtype):
    from spot_edge.kernels import part_pool, part_pool_reference
    b, p, h, w, c = shape
    gen = torch.Generator().manual_seed(p * 100 + c)
    maps = torch.sigmoid(torch.randn(b, p, h, w, generator=gen)).to(DEVICE, dtype)
    feats = torch.randn(b, c, h, w, generator=gen).to(DEVICE, dtype)
    out = part_pool(maps, feats, 1e-6, backend="triton")
    assert out.shape == (b, p, c) and out.dtype == dtype
    _close(out, part_pool_numpy(maps, feats, 1e-6), dtype)
    ref = part_pool_reference(maps.float(), feats.float(), 1e-6)
    _close(out, ref.double().cpu().numpy(), dtype)


@needs_triton_device
def test_part_pool_channels_last_features():
    """Channels-last features (unit stride along channels) are read in place."""
    from spot_edge.kernels import part_pool
    gen = torch.Generator().manual_seed(6)
    maps = torch.sigmoid(torch.randn(2, 7, 18, 9, generator=gen)).to(DEVICE)
    feats = torch.randn(2, 40, 18, 9, generator=gen).to(DEVICE).contiguous(memory_format=torch.channels_last)
    out = part_pool(maps, feats, 1e-6, backend="triton")
    _close(out, part_pool_numpy(maps, feats, 1e-6), torch.float32)


@needs_triton_device
def test_part_pool_ties_and_empty_parts():
    """Ties keep every maximal map; a part that wins no node gives 0 (eps guard), not NaN."""
    from spot_edge.kernels import part_pool
    gen = torch.Generator().manual_seed(3)
    maps = torch.rand(1, 4, 6, 5, generator=gen) * 0.5
    maps[:, 1] = maps[:, 0]          # maps 0 and 1 tie everywhere
    maps[:, 3] = 0.01                # map 3 never wins
    feats = torch.randn(1, 11, 6, 5, generator=gen)
    out = part_pool(maps.to(DEVICE), feats.to(DEVICE), 1e-6, backend="triton")
    expected = part_pool_numpy(maps, feats, 1e-6)
    _close(out, expected, torch.float32)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0, 0], out[0, 1])


@needs_triton_device
def test_part_pool_gradients_match_reference():
    from spot_edge.kernels import part_pool, part_pool_reference
    gen = torch.Generator().manual_seed(4)
    maps = torch.sigmoid(torch.randn(2, 5, 6, 3, generator=gen)).to(DEVICE)
    feats = torch.randn(2, 13, 6, 3, generator=gen).to(DEVICE)
    grad = torch.randn(2, 5, 13, generator=gen).to(DEVICE)
    a = [maps.clone().requires_grad_(), feats.clone().requires_grad_()]
    r = [maps.clone().requires_grad_(), feats.clone().requires_grad_()]
    part_pool(*a, 1e-6, backend="triton").backward(grad)
    part_pool_reference(*r, 1e-6).backward(grad)
    for x, y in zip(a, r):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-4, atol=1e-5)
