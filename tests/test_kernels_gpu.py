"""CUDA-library and Triton kernels on a real GPU at SPOT's shapes (skipped without one).

Needs a CUDA GPU; the CUDA-library tests also need ``libspot_edge_kernels.so`` (``spot-edge
kernels build`` or ``cmake -S . -B build && cmake --build build``)."""

from __future__ import annotations

import pytest
import torch

from spot_edge.kernels import (available_backends, fused_structure_attention,
                               fused_structure_attention_reference, part_pool, part_pool_reference)

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


def _backends():
    if not torch.cuda.is_available():
        return []
    return [b for b in available_backends("cuda") if b != "reference"]


def _spot_attention_inputs(b, n, dk, dv, dtype, layout):
    gen = torch.Generator(device="cuda").manual_seed(b * n + dv)
    def make(ch):
        x = torch.randn(b, ch, n, generator=gen, device="cuda") / ch ** 0.25
        x = x.to(dtype)
        return x.transpose(1, 2) if layout == "spot" else x.transpose(1, 2).contiguous()
    return make(dk), make(dk), make(dv)


@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 162, 256, 2048), (3, 37, 20, 70), (1, 256, 64, 100)])
@pytest.mark.parametrize("layout", ["spot", "contiguous"])
def test_attention_on_gpu(backend, dtype, shape, layout):
    if backend not in _backends():
        pytest.skip(f"backend {backend} unavailable here")
    q, k, v = _spot_attention_inputs(*shape, dtype, layout)
    out = fused_structure_attention(q, k, v, 0.6, backend=backend)
    ref = fused_structure_attention_reference(q.double(), k.double(), v.double(), 0.6)
    err = (out.double() - ref).abs().max().item() / ref.abs().max().item()
    assert err < TOL[dtype], f"{backend} {dtype} {shape} {layout}: relative error {err}"


@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(4, 7, 18, 9, 2048), (2, 2, 18, 9, 100), (3, 9, 5, 7, 33)])
def test_part_pool_on_gpu(backend, dtype, shape):
    if backend not in _backends():
        pytest.skip(f"backend {backend} unavailable here")
    b, p, h, w, c = shape
    gen = torch.Generator(device="cuda").manual_seed(c)
    maps = torch.sigmoid(torch.randn(b, p, h, w, generator=gen, device="cuda")).to(dtype)
    feats = torch.randn(b, c, h, w, generator=gen, device="cuda").to(dtype)
    out = part_pool(maps, feats, 1e-6, backend=backend)
    ref = part_pool_reference(maps.double(), feats.double(), 1e-6)
    err = (out.double() - ref).abs().max().item() / ref.abs().max().item()
    assert err < TOL[dtype], f"{backend} {dtype} {shape}: relative error {err}"


@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_gradients_on_gpu(backend):
    if backend not in _backends():
        pytest.skip(f"backend {backend} unavailable here")
    q, k, v = (t.float().requires_grad_() for t in _spot_attention_inputs(2, 162, 32, 64, torch.float32, "contiguous"))
    rq, rk, rv = (t.detach().clone().requires_grad_() for t in (q, k, v))
    grad = torch.randn(2, 162, 64, device="cuda")
    fused_structure_attention(q, k, v, 0.3, backend=backend).backward(grad)
    fused_structure_attention_reference(rq, rk, rv, 0.3).backward(grad)
    for a, r in ((q, rq), (k, rk), (v, rv)):
        torch.testing.assert_close(a.grad, r.grad, rtol=1e-3, atol=1e-4)


def test_auto_uses_a_kernel_on_gpu():
    q, k, v = _spot_attention_inputs(2, 162, 64, 128, torch.float16, "spot")
    out = fused_structure_attention(q, k, v)
    torch.testing.assert_close(out, fused_structure_attention_reference(q, k, v), rtol=2e-2, atol=2e-2)
