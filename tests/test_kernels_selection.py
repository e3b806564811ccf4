"""``backend="auto"`` never picks a kernel that would fail: simulated devices and drivers, on a CPU.

The device limits are faked (:class:`DeviceLimits`); the Triton resources are real (each plan
compiled ahead of time for the fake device's architecture); the CUDA library's resources come
from its host code (the shared test build) and its driver check from a faked driver version.
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch

import kernels_build
from spot_edge.kernels import cuda_ops, selection
from spot_edge.kernels.device_info import ARCH_LIMITS, DeviceLimits

pytest.importorskip("triton", reason="Triton is not installed")
pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                                reason="ahead-of-time compilation needs the real Triton compiler")
needs_library = pytest.mark.skipif(kernels_build.toolchain_missing() is not None,
                                   reason=str(kernels_build.toolchain_missing()))

GPU = torch.device("cuda", 0)          # a device name only: nothing is allocated on it
NO_LIBRARY = "libspot_edge_kernels.so not found"


def _attention(dtype=torch.float16, nodes=162, batch=32):
    """SPOT's q, k, v views of NCHW conv outputs: (B, n, C) with unit stride along n."""
    qk = (nodes * 256, 1, nodes)
    return selection.Request("attention", GPU, dtype, (batch, nodes, 256, 2048), (qk, qk, (nodes * 2048, 1, nodes)))


def _part_pool(parts=7, dtype=torch.float16):
    return selection.Request("part_pool", GPU, dtype, (32, parts, 2048, 162),
                             ((parts * 162, 162, 1), (2048 * 162, 162, 1)))


def _device(arch: int, shared_kb: int) -> DeviceLimits:
    base = ARCH_LIMITS[arch]
    return DeviceLimits(f"fake sm_{arch} with {shared_kb} KB", base.capability, base.multiprocessors,
                        shared_kb * 1024, base.l2_bytes)


@pytest.fixture(autouse=True)
def _fresh_decisions():
    selection.clear_cache()
    yield
    selection.clear_cache()


@pytest.fixture
def library(monkeypatch):
    """The shared build's library, loaded as on a GPU machine with a CUDA 13 driver."""
    build = kernels_build.shared_build()
    monkeypatch.setenv(cuda_ops.LIBRARY_ENV, str(build.library))
    monkeypatch.setattr(cuda_ops, "cuda_available", lambda: True)
    monkeypatch.setattr(cuda_ops, "versions", lambda: (13000, 13000))
    cuda_ops.clear_cache()
    yield build
    cuda_ops.clear_cache()


def test_triton_too_big_for_the_device_falls_back_with_one_warning():
    request = _attention()
    small = _device(90, 64)                  # the fp16 plan needs ~105 KB on sm_90
    with pytest.warns(RuntimeWarning, match=r"reference on fake sm_90 with 64 KB.*shared memory"):
        assert selection.auto_backend(request, NO_LIBRARY, None, small) == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # the decision is cached: no second warning
        assert selection.auto_backend(request, NO_LIBRARY, None, small) == "reference"
    assert selection.auto_backend(request, NO_LIBRARY, None, ARCH_LIMITS[90]) == "triton"


def test_nothing_installed_warns_and_runs_the_reference():
    with pytest.warns(RuntimeWarning, match="triton: Triton is not installed"):
        assert selection.auto_backend(_part_pool(), NO_LIBRARY, "Triton is not installed",
                                      ARCH_LIMITS[87]) == "reference"


def test_sizes_beyond_triton_limits_need_no_compilation(monkeypatch):
    from spot_edge.kernels import triton_aot
    monkeypatch.setattr(triton_aot, "kernel_resources", lambda *a, **k: pytest.fail("compiled needlessly"))
    assert "N <= 1024" in selection.triton_problem(_attention(nodes=1500), ARCH_LIMITS[90])
    assert "P <= 64" in selection.triton_problem(_part_pool(parts=65), ARCH_LIMITS[90])


def test_driver_problem_names_the_driver_the_runtime_needs():
    assert cuda_ops.driver_problem(13000, 13000) is None
    assert cuda_ops.driver_problem(13020, 13010) is None        # minor-version compatibility
    message = cuda_ops.driver_problem(12040, 13000)
    assert "R580" in message and "12.4" in message
    assert "no NVIDIA driver" in cuda_ops.driver_problem(0, 13000)


@needs_library
def test_old_driver_rules_out_the_library(library, monkeypatch):
    monkeypatch.setattr(cuda_ops, "versions", lambda: (12080, 13000))
    cuda_ops.clear_cache()
    reason = cuda_ops.unavailable_reason()
    assert reason is not None and "R580" in reason
    assert selection.auto_backend(_part_pool(), reason, None, ARCH_LIMITS[90]) == "triton"


@needs_library
def test_library_preferred_where_it_fits(library):
    assert cuda_ops.unavailable_reason() is None
    assert selection.auto_backend(_attention(), None, None, ARCH_LIMITS[90]) == "cuda"
    assert selection.auto_backend(_part_pool(), None, None, ARCH_LIMITS[87]) == "cuda"
    # fp32 attention skips the library's CUDA-core path
    assert selection.auto_backend(_attention(torch.float32), None, None, ARCH_LIMITS[90]) == "triton"


@needs_library
def test_library_too_big_for_the_device_goes_to_triton(library):
    """The CUDA attention needs ~90 KB at N = 162 in fp16; Triton's sm_87 plan ~57 KB."""
    device = _device(87, 80)
    problem = selection.cuda_problem(_attention(), device)
    assert problem is not None and "shared memory" in problem
    assert selection.auto_backend(_attention(), None, None, device) == "triton"


@needs_library
@pytest.mark.parametrize("request_, backend, expected", [
    (_attention(nodes=300), "cuda", "N <= 256"),
    (_part_pool(parts=17), "cuda", "P <= 16"),
    (_attention(nodes=1500), "triton", "N <= 1024"),
], ids=["cuda-nodes", "cuda-parts", "triton-nodes"])
def test_explicit_backends_say_why_they_cannot_run(library, request_, backend, expected):
    assert expected in selection.explicit_problem(backend, request_, ARCH_LIMITS[90])
