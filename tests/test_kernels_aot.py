"""Resources of the compiled kernels for Jetson Orin (sm_87) and H100 / H200 (sm_90), checked
without a GPU: shared memory per block within the architecture's limit and no register spills.

- Triton: each production launch plan compiled ahead of time with Triton's compiler for an
  explicit target (``spot_edge.kernels.triton_aot``).
- CUDA library: the cubins of the shared CMake build (``tests/kernels_build.py``) read with
  ``cuobjdump -res-usage`` (registers, stack = spills and local arrays, static shared memory,
  exactly what ``ptxas -v`` reports when it compiles them), plus the dynamic shared memory the
  library's host code computes for the sizes.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import torch

import kernels_build
from spot_edge.kernels.device_info import ARCH_LIMITS

ARCHS = (87, 90)

triton = pytest.importorskip("triton", reason="Triton is not installed")
pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                                reason="ahead-of-time compilation needs the real Triton compiler")


# ----------------------------------------------------------------- Triton

def _cases():
    from spot_edge.kernels.triton_aot import production_cases
    return production_cases()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", _cases(), ids=str)
def test_triton_kernel_fits_and_does_not_spill(case, arch):
    from spot_edge.kernels.triton_aot import case_resources
    resources = case_resources(case, arch)
    assert resources.problems(ARCH_LIMITS[arch]) == [], resources
    assert resources.shared_bytes > 0 and resources.registers > 0     # it really was compiled


def test_triton_check_reports_a_real_over_limit_kernel():
    """The same check flags a real plan that does not fit: fp16 attention at N = 1024 compiled
    for sm_89 (L4 / L40S, 99 KB per block) needs more shared memory than the device has."""
    from spot_edge.kernels.triton_aot import Case, case_resources
    resources = case_resources(Case("attention", torch.float16, 32, "channels_last", nodes=1024), 89)
    problems = resources.problems(ARCH_LIMITS[89])
    assert any("shared memory" in p for p in problems), (resources, problems)
    assert resources.shared_problem(ARCH_LIMITS[89]) is not None
    assert resources.shared_problem(ARCH_LIMITS[90]) is None            # fits an H100


def test_res_usage_parser_reads_spills():
    from spot_edge.kernels.triton_aot import parse_res_usage
    assert parse_res_usage(" Function k:\n  REG:255 STACK:976 SHARED:1024 LOCAL:0 CONSTANT[0]:584") == (255, 976, 1024)
    with pytest.raises(RuntimeError):
        parse_res_usage("nothing here")


# ----------------------------------------------------------------- CUDA library

needs_build = pytest.mark.skipif(kernels_build.toolchain_missing() is not None,
                                 reason=str(kernels_build.toolchain_missing()))

_FUNCTION = re.compile(r"Function (\S+):\s*\n\s*REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")


@pytest.fixture(scope="module")
def library_usage():
    """``{(arch, kernel name): (registers, stack, static shared, local)}`` of the built library."""
    tool = kernels_build.cuobjdump()
    if tool is None:
        pytest.skip("needs cuobjdump (CUDA toolkit or Triton's bundled copy)")
    build = kernels_build.shared_build()
    text = subprocess.run([str(tool), "-res-usage", str(build.library)], capture_output=True, text=True,
                          timeout=120).stdout
    usage, arch = {}, None
    for block in re.split(r"(?=arch = sm_\d+)", text):
        found = re.match(r"arch = sm_(\d+)", block)
        if found:
            arch = int(found.group(1))
        for name, reg, stack, shared, local in _FUNCTION.findall(block):
            usage[(arch, name)] = (int(reg), int(stack), int(shared), int(local))
    return build, usage


@needs_build
@pytest.mark.parametrize("arch", ARCHS)
def test_cuda_kernels_compiled_for_arch_without_spills(library_usage, arch):
    _, usage = library_usage
    kernels = {name: values for (a, name), values in usage.items() if a == arch}
    attention = [n for n in kernels if "structure_attention_kernel" in n]
    pooling = [n for n in kernels if "part_pool_kernel" in n]
    assert len(attention) == 3 and len(pooling) == 12, sorted(kernels)   # 3 dtypes; x 4 part buckets
    for name, (registers, stack, _, local) in kernels.items():
        assert stack == 0 and local == 0, f"{name} on sm_{arch}: {stack}-byte stack, {local} bytes local"
        assert registers <= 255


@needs_build
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_cuda_attention_shared_memory_fits(library_usage, arch, dtype):
    """Production N = 162 and the kernel's largest N = 256, dynamic plus static shared memory."""
    from spot_edge.kernels import cuda_ops
    build, usage = library_usage
    lib = cuda_ops.open_library(build.library)
    static = max(v[2] for (a, n), v in usage.items() if a == arch and "structure_attention_kernel" in n)
    for nodes in (162, int(lib.spot_structure_attention_max_nodes())):
        dynamic = int(lib.spot_structure_attention_smem_bytes(nodes, cuda_ops.DTYPE_CODES[dtype]))
        assert 0 < dynamic + static <= ARCH_LIMITS[arch].shared_per_block_optin, (nodes, dynamic, static)
    # fp16 at N = 162 leaves room for two blocks per SM on an H100 (228 KB per SM).
    if arch == 90 and dtype == torch.float16:
        assert 2 * (int(lib.spot_structure_attention_smem_bytes(162, 1)) + static + 1024) <= 228 * 1024


@needs_build
def test_cuda_part_pool_shared_memory_fits(library_usage):
    from spot_edge.kernels import cuda_ops
    lib = cuda_ops.open_library(library_usage[0].library)
    largest = int(lib.spot_part_pool_smem_bytes(int(lib.spot_part_pool_max_parts()), 162))
    assert 0 < largest <= min(limits.shared_per_block_optin for limits in ARCH_LIMITS.values())
    assert lib.spot_part_pool_smem_bytes(17, 162) == -1
