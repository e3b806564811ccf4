"""Dispatch, validation, closed-form gradients and custom-op registration (CPU only)."""

from __future__ import annotations

import pytest
import torch

from spot_edge import kernels
from spot_edge.kernels import (BACKENDS, KernelUnavailableError, fused_structure_attention,
                               fused_structure_attention_reference, part_pool, part_pool_reference)
from spot_edge.kernels.backward import fused_structure_attention_backward, part_pool_backward


def _attention_inputs(b=2, n=13, dk=6, dv=10, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, n, d, generator=gen, dtype=dtype) for d in (dk, dk, dv))


def _pool_inputs(b=2, p=5, h=6, w=3, c=11, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    maps = torch.sigmoid(torch.randn(b, p, h, w, generator=gen, dtype=dtype))
    return maps, torch.randn(b, c, h, w, generator=gen, dtype=dtype)


def test_backends_listed():
    assert BACKENDS == ("auto", "reference", "triton", "cuda")
    assert kernels.available_backends("cpu")[0] == "reference"


@pytest.mark.parametrize("backend", ["auto", "reference"])
def test_cpu_dispatch_is_the_reference(backend):
    q, k, v = _attention_inputs()
    assert torch.equal(fused_structure_attention(q, k, v, 0.3, backend=backend),
                       fused_structure_attention_reference(q, k, v, 0.3))
    maps, feats = _pool_inputs()
    assert torch.equal(part_pool(maps, feats, 1e-6, backend=backend), part_pool_reference(maps, feats, 1e-6))


def test_unknown_backend_is_rejected():
    q, k, v = _attention_inputs()
    with pytest.raises(ValueError, match="unknown kernel backend"):
        fused_structure_attention(q, k, v, backend="cudnn")
    with pytest.raises(ValueError, match="unknown kernel backend"):
        part_pool(*_pool_inputs(), backend="fast")


def test_bad_shapes_give_clear_errors():
    q, k, v = _attention_inputs()
    with pytest.raises(ValueError, match=r"\(B, N, Dk\)"):
        fused_structure_attention(q[0], k, v)
    with pytest.raises(ValueError, match="same shape"):
        fused_structure_attention(q, k[:, :5], v)
    maps, feats = _pool_inputs()
    with pytest.raises(ValueError, match=r"\(B, P, H, W\)"):
        part_pool(maps[0], feats)
    with pytest.raises(ValueError, match="share B, H and W"):
        part_pool(maps, feats[:, :, :4])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error path")
def test_cuda_backend_on_cpu_says_how_to_get_it():
    q, k, v = _attention_inputs()
    with pytest.raises(KernelUnavailableError, match="CUDA tensors"):
        fused_structure_attention(q, k, v, backend="cuda")
    with pytest.raises(KernelUnavailableError, match="CUDA"):
        part_pool(*_pool_inputs(), backend="cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error path")
def test_triton_backend_on_cpu_without_interpreter_says_how_to_get_it(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    q, k, v = _attention_inputs()
    with pytest.raises(KernelUnavailableError, match="TRITON_INTERPRET"):
        fused_structure_attention(q, k, v, backend="triton")


def test_cuda_library_missing_message_says_how_to_build(monkeypatch, tmp_path):
    from spot_edge.kernels import cuda_ops
    monkeypatch.setenv(cuda_ops.LIBRARY_ENV, str(tmp_path / "nowhere.so"))
    monkeypatch.setattr(cuda_ops, "cuda_available", lambda: True)      # as on a GPU machine
    cuda_ops.clear_cache()
    try:
        assert cuda_ops.library_candidates()[0] == tmp_path / "nowhere.so"
        if cuda_ops.library_path() is None:  # no library built in this checkout
            reason = cuda_ops.unavailable_reason()
            assert "cmake" in reason and cuda_ops.LIBRARY_ENV in reason
            with pytest.raises(cuda_ops.KernelLibraryError, match="cmake"):
                cuda_ops.library()
    finally:
        cuda_ops.clear_cache()


def test_library_with_another_c_api_version_is_refused(tmp_path):
    """A library built from an older checkout says to rebuild instead of crashing on a call."""
    from spot_edge.kernels import cuda_ops
    fake = tmp_path / "libspot_edge_kernels.so"
    fake.write_bytes(b"not an ELF file")
    with pytest.raises(cuda_ops.KernelLibraryError, match="rebuild"):
        cuda_ops.open_library(fake)


# ----------------------------------------------------------------- closed-form gradients

@pytest.mark.parametrize("scale", [1.0, 0.21])
def test_attention_backward_formula_matches_autograd(scale):
    q, k, v = (t.double().requires_grad_() for t in _attention_inputs(n=17, dk=5, dv=9, seed=1))
    grad = torch.randn(2, 17, 9, dtype=torch.float64)
    fused_structure_attention_reference(q, k, v, scale).backward(grad)
    dq, dk, dv = fused_structure_attention_backward(grad, q.detach(), k.detach(), v.detach(), scale)
    torch.testing.assert_close(dq, q.grad)
    torch.testing.assert_close(dk, k.grad)
    torch.testing.assert_close(dv, v.grad)


def test_part_pool_backward_formula_matches_autograd():
    maps, feats = _pool_inputs(p=7, h=18, w=9, c=12, seed=2)
    maps[:, 2] = maps[:, 1]                       # ties keep both maps
    maps, feats = maps.double().requires_grad_(), feats.double().requires_grad_()
    grad = torch.randn(2, 7, 12, dtype=torch.float64)
    part_pool_reference(maps, feats, 1e-6).backward(grad)
    dmaps, dfeats = part_pool_backward(grad, maps.detach(), feats.detach(), 1e-6)
    torch.testing.assert_close(dmaps, maps.grad)
    torch.testing.assert_close(dfeats, feats.grad)


# ----------------------------------------------------------------- tracing sees the reference

@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_jit_trace_records_reference_ops():
    q, k, v = _attention_inputs()

    def attend(q, k, v):
        return fused_structure_attention(q, k, v, 0.5, backend="cuda")   # forced off while tracing

    traced = torch.jit.trace(attend, (q, k, v), check_trace=False)
    graph = str(traced.graph)
    assert "aten::softmax" in graph and "spot_edge" not in graph
    q2, k2, v2 = _attention_inputs(seed=5)
    torch.testing.assert_close(traced(q2, k2, v2), fused_structure_attention_reference(q2, k2, v2, 0.5))


# ----------------------------------------------------------------- CUDA custom ops (fake / meta)

def test_custom_ops_have_fake_kernels_and_autograd():
    from torch._subclasses.fake_tensor import FakeTensorMode

    from spot_edge.kernels import cuda_ops  # noqa: F401  (registers the ops)
    with FakeTensorMode():
        q = torch.empty(2, 162, 16, requires_grad=True)
        v = torch.empty(2, 162, 40, requires_grad=True)
        out = torch.ops.spot_edge.structure_attention(q, q, v, 1.0)
        assert out.shape == (2, 162, 40)
        out.sum().backward()
        assert q.grad.shape == q.shape and v.grad.shape == v.shape
        maps = torch.empty(2, 7, 18, 9, requires_grad=True)
        feats = torch.empty(2, 40, 18, 9, requires_grad=True)
        pooled = torch.ops.spot_edge.part_pool(maps, feats, 1e-6)
        assert pooled.shape == (2, 7, 40)
        pooled.sum().backward()
        assert feats.grad.shape == feats.shape and maps.grad.shape == maps.shape
