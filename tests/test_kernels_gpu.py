"""CUDA-library and Triton kernels on a real GPU against the reference (skipped without one).

Needs a CUDA GPU; the CUDA-library tests also need ``libspot_edge_kernels.so`` (``spot-edge
kernels build`` or ``cmake -S . -B build && cmake --build build``). With
``SPOT_EDGE_REQUIRE_GPU_KERNELS=1`` (``benchmarks/gpu_checks.sh``) a missing library or Triton
FAILS these tests instead of skipping them, so a GPU session cannot pass without running them.
Shapes: SPOT's (N = 162, Dk = 256, Dv = 2048, P = 7 over 18 x 9) and odd / edge sizes (N = 256,
the CUDA limit; Dv and C not multiples of the tiles; B = 1 with its Dv split), in SPOT's NCHW
views, contiguous (channels-last) rows and a non-unit-stride view.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from spot_edge.kernels import (available_backends, cuda_unavailable_reason, fused_structure_attention,
                               fused_structure_attention_reference, part_pool, part_pool_reference,
                               triton_unavailable_reason)

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}
REQUIRE = os.environ.get("SPOT_EDGE_REQUIRE_GPU_KERNELS") == "1"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _need(backend: str) -> None:
    """Skip (or, in the GPU check, fail) when ``backend`` cannot run here."""
    if backend in available_backends("cuda"):
        return
    reason = (cuda_unavailable_reason() if backend == "cuda" else triton_unavailable_reason()) or "unavailable"
    if REQUIRE:
        pytest.fail(f"SPOT_EDGE_REQUIRE_GPU_KERNELS=1 but backend {backend!r} cannot run: {reason}")
    pytest.skip(f"backend {backend} unavailable here: {reason}")


def _attention_inputs(b, n, dk, dv, dtype, layout):
    gen = torch.Generator(device="cuda").manual_seed(b * n + dv)

    def make(ch):
        x = (torch.randn(b, ch, n, generator=gen, device="cuda") / ch ** 0.25).to(dtype)
        if layout == "nchw":                        # SPOT: conv(x).flatten(2).transpose(1, 2)
            return x.transpose(1, 2)
        if layout == "contiguous":                  # channels-last model: contiguous rows
            return x.transpose(1, 2).contiguous()
        # no unit-stride axis at all (node stride 2): the kernels' element-by-element staging
        return torch.cat([x, x], dim=2).transpose(1, 2)[:, ::2, :]
    return make(dk), make(dk), make(dv)


def _relative_error(out, ref):
    return (out.double() - ref).abs().max().item() / ref.abs().max().item()


# (shape (B, N, Dk, Dv), layout, dtypes): SPOT's shapes in every dtype, edge sizes in fp32 (tight
# tolerance) and fp16. Kept small: every distinct (N, sizes, strides) is one Triton compilation.
SPOT_ALL = [torch.float32, torch.float16, torch.bfloat16]
EDGE = [torch.float32, torch.float16]
ATTENTION_CASES = [(shape, layout, dtype) for shape, layout, dtypes in [
    ((2, 162, 256, 2048), "nchw", SPOT_ALL),
    ((1, 162, 256, 2048), "nchw", SPOT_ALL),         # B = 1: the Dv split
    ((2, 162, 256, 2048), "contiguous", SPOT_ALL),
    ((3, 37, 20, 70), "strided", EDGE),
    ((1, 256, 64, 100), "contiguous", EDGE),         # the CUDA kernel's largest N
    ((2, 9, 16, 33), "nchw", EDGE),
] for dtype in dtypes]
POOL_CASES = [(shape, layout, dtype) for shape, layout, dtypes in [
    ((4, 7, 18, 9, 2048), "nchw", SPOT_ALL),
    ((1, 7, 18, 9, 2048), "nchw", SPOT_ALL),
    ((4, 7, 18, 9, 2048), "channels_last", SPOT_ALL),
    ((2, 2, 18, 9, 100), "nchw", EDGE),
    ((3, 9, 5, 7, 33), "channels_last", EDGE),
    ((2, 16, 18, 9, 70), "nchw", EDGE),              # the CUDA kernel's largest P
] for dtype in dtypes]


@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("shape, layout, dtype", ATTENTION_CASES, ids=str)
def test_attention_on_gpu(backend, dtype, shape, layout):
    _need(backend)
    q, k, v = _attention_inputs(*shape, dtype, layout)
    out = fused_structure_attention(q, k, v, 0.6, backend=backend)
    ref = fused_structure_attention_reference(q.double(), k.double(), v.double(), 0.6)
    assert out.shape == ref.shape and out.dtype == dtype
    err = _relative_error(out, ref)
    assert err < TOL[dtype], f"{backend} {dtype} {shape} {layout}: relative error {err}"


@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_attention_output_takes_the_layout_of_the_values(backend):
    """NCHW views in -> (B, C, N) memory out, so ASR's transpose + reshape is a free NCHW view."""
    _need(backend)
    q, k, v = _attention_inputs(2, 162, 32, 96, torch.float16, "nchw")
    out = fused_structure_attention(q, k, v, backend=backend)
    assert out.transpose(1, 2).is_contiguous()
    q, k, v = _attention_inputs(2, 162, 32, 96, torch.float16, "contiguous")
    assert fused_structure_attention(q, k, v, backend=backend).is_contiguous()


@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("shape, layout, dtype", POOL_CASES, ids=str)
def test_part_pool_on_gpu(backend, dtype, shape, layout):
    _need(backend)
    b, p, h, w, c = shape
    gen = torch.Generator(device="cuda").manual_seed(c + p)
    maps = torch.sigmoid(torch.randn(b, p, h, w, generator=gen, device="cuda")).to(dtype)
    feats = torch.randn(b, c, h, w, generator=gen, device="cuda").to(dtype)
    if layout == "channels_last":
        maps, feats = (t.contiguous(memory_format=torch.channels_last) for t in (maps, feats))
    out = part_pool(maps, feats, 1e-6, backend=backend)
    ref = part_pool_reference(maps.double(), feats.double(), 1e-6)
    err = _relative_error(out, ref)
    assert err < TOL[dtype], f"{backend} {dtype} {shape} {layout}: relative error {err}"


@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_part_pool_ties_and_empty_parts_on_gpu(backend):
    _need(backend)
    maps = torch.rand(2, 4, 6, 5, device="cuda") * 0.5
    maps[:, 1] = maps[:, 0]          # maps 0 and 1 tie everywhere
    maps[:, 3] = 0.01                # map 3 never wins
    feats = torch.randn(2, 11, 6, 5, device="cuda")
    out = part_pool(maps, feats, 1e-6, backend=backend)
    torch.testing.assert_close(out, part_pool_reference(maps, feats, 1e-6), rtol=1e-4, atol=1e-5)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_gradients_on_gpu(backend):
    _need(backend)
    q, k, v = (t.float().requires_grad_() for t in _attention_inputs(2, 162, 32, 64, torch.float32, "contiguous"))
    rq, rk, rv = (t.detach().clone().requires_grad_() for t in (q, k, v))
    grad = torch.randn(2, 162, 64, device="cuda")
    fused_structure_attention(q, k, v, 0.3, backend=backend).backward(grad)
    fused_structure_attention_reference(rq, rk, rv, 0.3).backward(grad)
    for a, r in ((q, rq), (k, rk), (v, rv)):
        torch.testing.assert_close(a.grad, r.grad, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_auto_runs_a_kernel_without_falling_back(dtype):
    """On an H100 / H200 every production case fits a kernel: no fallback warning."""
    _need("triton")
    q, k, v = _attention_inputs(4, 162, 256, 2048, dtype, "nchw")
    maps = torch.sigmoid(torch.randn(4, 7, 18, 9, device="cuda")).to(dtype)
    feats = v.transpose(1, 2).reshape(4, 2048, 18, 9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        out = fused_structure_attention(q, k, v)
        pooled = part_pool(maps, feats)
    assert _relative_error(out, fused_structure_attention_reference(q.double(), k.double(), v.double())) < TOL[dtype]
    assert _relative_error(pooled, part_pool_reference(maps.double(), feats.double())) < TOL[dtype]


def test_spot_model_with_kernels_matches_the_reference_in_fp16():
    """ASR + TPI inside the paper's model (N = 162), NCHW and channels-last, kernels (auto)
    against the reference backend."""
    from spot_edge.model import SPOT, preset
    torch.manual_seed(0)
    model = SPOT(preset("spot")).cuda().eval().half()
    (h, w), (hs, ws) = model.config.preprocessing.size, model.config.preprocessing.heatmap_size
    images = torch.randn(4, 3, h, w, device="cuda").half()
    maps = torch.rand(4, model.config.num_pose_maps, hs, ws, device="cuda").half()

    def run(backend: str, channels_last: bool) -> torch.Tensor:
        model.set_kernel_backend(backend)
        model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        x = images.contiguous(memory_format=torch.channels_last) if channels_last else images
        with torch.no_grad():
            return model(x, maps, "infrared").float()
    for channels_last in (False, True):
        expected, got = run("reference", channels_last), run("auto", channels_last)
        cosine = torch.nn.functional.cosine_similarity(got, expected).min().item()
        assert cosine > 0.999, (channels_last, cosine)
