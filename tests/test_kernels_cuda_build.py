"""The CUDA library builds with CMake + nvcc for Orin (sm_87) and H100 (sm_90) and, with
``-DTENSORRT_ROOT``, the TensorRT plugin library; the C API loads through ctypes and its
host-only functions answer without a GPU. Compiles on the CPU machine (one shared build,
``tests/kernels_build.py``); nothing runs on a GPU here."""

from __future__ import annotations

import ctypes
import json
import subprocess

import pytest
import torch

import kernels_build
from spot_edge.kernels.planning import wave_splits

pytestmark = pytest.mark.skipif(kernels_build.toolchain_missing() is not None,
                                reason=str(kernels_build.toolchain_missing()))


@pytest.fixture(scope="module")
def build():
    return kernels_build.shared_build()


@pytest.fixture(scope="module")
def lib(build):
    from spot_edge.kernels import cuda_ops
    return cuda_ops.open_library(build.library)


def test_library_has_cubins_for_sm87_and_sm90(build):
    tool = kernels_build.cuobjdump()
    if tool is None:
        pytest.skip("needs cuobjdump")
    listing = subprocess.run([str(tool), "-lelf", str(build.library)], capture_output=True, text=True,
                             timeout=60).stdout
    assert "sm_87" in listing and "sm_90" in listing, listing


def test_exact_fp32_path_is_built_without_fast_math(build):
    """--use_fast_math would turn the fp32 path's expf / division into approximations."""
    commands = json.loads((build.directory / "compile_commands.json").read_text())
    cuda = [c["command"] for c in commands if c["file"].endswith(".cu")]
    assert len(cuda) == 2
    for command in cuda:
        assert "use_fast_math" not in command and "-ftz=true" not in command, command


def test_c_api_loads_and_validates_arguments(lib):
    from spot_edge.kernels import cuda_ops
    assert lib.spot_kernels_abi_version() == cuda_ops.ABI_VERSION == 2
    assert lib.spot_structure_attention_max_nodes() == 256
    assert lib.spot_part_pool_max_parts() == 16
    assert b"invalid argument" in lib.spot_status_string(1)
    assert lib.spot_kernels_runtime_version() >= 12000
    null = ctypes.c_void_p(None)
    dummy = ctypes.c_void_p(0x1000)
    strides = ctypes.POINTER(ctypes.c_int64)()
    # Null pointers and bad sizes are refused before any CUDA call.
    assert lib.spot_part_pool(null, null, null, 1, 7, 8, 162, strides, strides, 1e-6, 1, null) == 1
    assert lib.spot_structure_attention(dummy, dummy, dummy, dummy, 1, 0, 4, 4, strides, strides,
                                        strides, strides, 1.0, 1, null) == 1
    assert lib.spot_structure_attention(dummy, dummy, dummy, dummy, 1, 300, 4, 4, strides, strides,
                                        strides, strides, 1.0, 1, null) == 2          # N beyond the limit
    assert lib.spot_part_pool(dummy, dummy, dummy, 1, 17, 8, 162, strides, strides, 1e-6, 1, null) == 2
    assert lib.spot_part_pool(dummy, dummy, dummy, 1, 7, 8, 162, strides, strides, 1e-6, 9, null) == 1
    if not torch.cuda.is_available():
        # A well-formed call on a machine without a GPU reports a CUDA error instead of crashing,
        # and the library reports that no driver is there.
        assert lib.spot_part_pool(dummy, dummy, dummy, 1, 7, 8, 162, strides, strides, 1e-6, 1, null) == 3
        assert lib.spot_kernels_driver_version() == 0


def test_resource_queries_answer_without_a_gpu(lib):
    from spot_edge.kernels import cuda_ops
    for dtype, code in cuda_ops.DTYPE_CODES.items():
        sizes = [lib.spot_structure_attention_smem_bytes(n, code) for n in (16, 162, 256)]
        assert 0 < sizes[0] < sizes[1] < sizes[2], (dtype, sizes)
        assert lib.spot_structure_attention_smem_bytes(257, code) == -1
    assert lib.spot_structure_attention_smem_bytes(162, 7) == -1
    assert lib.spot_part_pool_smem_bytes(7, 162) == 4 * (7 * 162 + 7)


@pytest.mark.parametrize("batch", [1, 2, 8, 32, 64, 256])
@pytest.mark.parametrize("slots", [16, 132, 264])
def test_library_sizes_waves_like_the_python_rule(lib, batch, slots):
    """The C++ launcher and the Triton planner share one Dv-split rule (planning.wave_splits)."""
    from spot_edge.kernels import cuda_ops
    for dtype, rows, chunk in ((torch.float16, 64, 64), (torch.float32, 32, 32)):
        expected = wave_splits(batch * -(-162 // rows), -(-2048 // chunk), slots, 256 / chunk)
        assert lib.spot_structure_attention_splits(batch, 162, 256, 2048, cuda_ops.DTYPE_CODES[dtype], slots) == expected


def test_plugins_build_and_link_with_tensorrt_root(build):
    """-DTENSORRT_ROOT with the real 10.3 headers (and a stub libnvinfer) builds the plugin library,
    which exports the plugin-library entry points and reports its versions."""
    if build.plugins is None:
        pytest.skip("the real TensorRT headers are not available (set SPOT_EDGE_TENSORRT_HEADERS)")
    plugins = ctypes.CDLL(str(build.plugins))
    for symbol in ("getCreators", "setLoggerFinder", "spotEdgeRegisterPlugins"):
        assert hasattr(plugins, symbol), symbol
    plugins.spot_edge_plugin_version.restype = ctypes.c_char_p
    plugins.spot_edge_plugin_tensorrt_version.restype = ctypes.c_char_p
    from spot_edge.kernels.onnx_plugins import PLUGIN_VERSION
    assert plugins.spot_edge_plugin_version().decode() == PLUGIN_VERSION
    assert plugins.spot_edge_plugin_tensorrt_version().decode() == "10.3"


def test_architectures_are_overridable(tmp_path):
    proc = subprocess.run(["cmake", "-S", str(kernels_build.ROOT), "-B", str(tmp_path), "-DCMAKE_CUDA_ARCHITECTURES=90"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cache = (tmp_path / "CMakeCache.txt").read_text()
    lines = [line for line in cache.splitlines() if line.startswith("CMAKE_CUDA_ARCHITECTURES:")]
    assert lines and lines[0].endswith("=90"), lines
