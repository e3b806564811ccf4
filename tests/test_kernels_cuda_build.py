"""The CUDA library builds with CMake + nvcc for Orin (sm_87) and H100 (sm_90), and its C API
loads through ctypes. Compiles on the CPU machine; nothing runs on a GPU here."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {name: shutil.which(name) for name in ("cmake", "nvcc")}
needs_toolchain = pytest.mark.skipif(
    not all(TOOLS.values()),
    reason=f"needs cmake and nvcc on PATH (missing: {', '.join(k for k, v in TOOLS.items() if not v)})")


def _run(cmd: list[str], timeout: int) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def built_library(tmp_path_factory) -> tuple[Path, str]:
    build = tmp_path_factory.mktemp("cmake-build")
    log = _run(["cmake", "-S", str(ROOT), "-B", str(build), "-DCMAKE_CUDA_ARCHITECTURES=87;90"], timeout=120)
    log += _run(["cmake", "--build", str(build), "-j", "2", "--verbose"], timeout=240)
    return build / "libspot_edge_kernels.so", log


@pytest.mark.slow
@needs_toolchain
def test_cmake_builds_for_sm87_and_sm90(built_library):
    lib_path, log = built_library
    assert lib_path.is_file()
    for arch in ("87", "90"):
        assert f"arch=compute_{arch},code=[compute_{arch},sm_{arch}]" in log, f"sm_{arch} not compiled"
    assert "structure_attention.cu" in log and "part_pool.cu" in log
    assert "TensorRT headers/library not found" in log or "TensorRT found" in log


@pytest.mark.slow
@needs_toolchain
def test_c_api_loads_and_validates_arguments(built_library):
    from spot_edge.kernels import cuda_ops
    lib = cuda_ops.open_library(built_library[0])
    assert lib.spot_kernels_abi_version() == cuda_ops.ABI_VERSION
    assert lib.spot_structure_attention_max_nodes() == 256
    assert lib.spot_part_pool_max_parts() == 16
    assert b"invalid argument" in lib.spot_status_string(1)
    null = ctypes.c_void_p(None)
    dummy = ctypes.c_void_p(0x1000)
    strides = ctypes.POINTER(ctypes.c_int64)()
    # Null pointers and bad sizes are refused before any CUDA call.
    assert lib.spot_part_pool(null, null, null, 1, 7, 8, 162, strides, strides, 1e-6, 1, null) == 1
    assert lib.spot_structure_attention(dummy, dummy, dummy, dummy, 1, 0, 4, 4, strides, strides,
                                        strides, 1.0, 1, null) == 1
    assert lib.spot_structure_attention(dummy, dummy, dummy, dummy, 1, 300, 4, 4, strides, strides,
                                        strides, 1.0, 1, null) == 2          # N beyond the limit
    assert lib.spot_part_pool(dummy, dummy, dummy, 1, 17, 8, 162, strides, strides, 1e-6, 1, null) == 2
    assert lib.spot_part_pool(dummy, dummy, dummy, 1, 7, 8, 162, strides, strides, 1e-6, 9, null) == 1
    if not torch.cuda.is_available():
        # A well-formed call on a machine without a GPU reports a CUDA error instead of crashing.
        assert lib.spot_part_pool(dummy, dummy, dummy, 1, 7, 8, 162, strides, strides, 1e-6, 1, null) == 3


@pytest.mark.slow
@needs_toolchain
def test_architectures_are_overridable(tmp_path):
    _run(["cmake", "-S", str(ROOT), "-B", str(tmp_path), "-DCMAKE_CUDA_ARCHITECTURES=90"], timeout=120)
    cache = (tmp_path / "CMakeCache.txt").read_text()
    lines = [line for line in cache.splitlines() if line.startswith("CMAKE_CUDA_ARCHITECTURES:")]
    assert lines and lines[0].endswith("=90"), lines
