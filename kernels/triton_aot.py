"""Ahead-of-time compilation of the Triton kernels for a named GPU architecture (no GPU needed).

Triton's compiler takes an explicit target (``GPUTarget("cuda", 90, 32)``), so the exact
kernels a GPU would run can be compiled on any machine: the resources they need are then
facts known before any launch.

- :func:`kernel_resources` compiles one launch plan for one architecture and reads its
  shared memory (Triton's metadata) and its registers and stack frame (``cuobjdump
  -res-usage`` on the cubin; Triton kernels have no local arrays, so any stack is spilled
  registers). Results are cached per process; Triton also caches the compiled kernels on disk.
- :func:`production_cases` lists SPOT's shapes and dtypes; ``tests/test_kernels_aot.py``
  checks every case for sm_87 (Jetson Orin) and sm_90 (H100 / H200): shared memory within the
  architecture's per-block limit and no spills.
- ``backend="auto"`` (:mod:`spot_edge.kernels.selection`) compares the same shared-memory
  figure with the device's limit before launching; its tests simulate devices with
  :func:`kernel_resources`.

Not available under the Triton interpreter (``TRITON_INTERPRET=1`` replaces ``triton.jit``).
"""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from spot_edge.kernels.device_info import DeviceLimits
from spot_edge.kernels.triton_common import interpreter_active

_POINTER_TYPES = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16"}

NODES, KEY_DIM, VALUE_DIM = 162, 256, 2048           # n = 18 x 9, asr_key_dim, C_I (paper setting)
PARTS, CHANNELS = 7, 2048


@dataclass(frozen=True)
class KernelResources:
    """What one compiled kernel needs per block on one architecture."""

    kernel: str
    arch: int
    shared_bytes: int           # dynamic shared memory Triton requests at launch
    static_shared_bytes: int    # shared memory the cubin declares itself (barriers)
    registers: int
    stack_bytes: int            # spilled registers (Triton kernels have no local arrays)
    num_warps: int

    @property
    def total_shared_bytes(self) -> int:
        return self.shared_bytes + self.static_shared_bytes

    def shared_problem(self, limits: DeviceLimits) -> str | None:
        """Why this kernel cannot launch on a device with ``limits`` (``None``: it can)."""
        if self.total_shared_bytes > limits.shared_per_block_optin:
            return (f"{self.kernel} needs {self.total_shared_bytes} bytes of shared memory per block, "
                    f"{limits.name} allows {limits.shared_per_block_optin}")
        return None

    def problems(self, limits: DeviceLimits) -> list[str]:
        """Why this kernel cannot run, or cannot run well, on a device with ``limits`` (empty:
        neither): over the shared-memory limit, or spilling registers."""
        found = [problem for problem in (self.shared_problem(limits),) if problem]
        if self.stack_bytes:
            found.append(f"{self.kernel} spills registers ({self.stack_bytes}-byte stack frame, "
                         f"{self.registers} registers) on sm_{self.arch}")
        return found


@dataclass(frozen=True)
class Case:
    """One (op, shape, dtype, layout) the project runs, for the ahead-of-time checks."""

    op: str                    # "attention" | "part_pool"
    dtype: torch.dtype
    batch: int
    layout: str                # "nchw" (SPOT's transposed conv views) | "channels_last"
    nodes: int = NODES

    def __str__(self) -> str:
        return f"{self.op}-{str(self.dtype).replace('torch.', '')}-N{self.nodes}-B{self.batch}-{self.layout}"


def production_cases() -> list[Case]:
    """SPOT's shapes (288 x 144 input: 18 x 9 nodes, Dk = 256, C = 2048, P = 7) at B = 32 (the
    batch changes the Dv split, not the compiled kernel): fp16 (the deployment dtype) for NCHW
    and channels-last models, bf16 and fp32 (training, and fp32 attention which ``auto`` sends
    to Triton) for NCHW models."""
    cases = []
    for op in ("attention", "part_pool"):
        cases += [Case(op, torch.float16, 32, "nchw"), Case(op, torch.float16, 32, "channels_last"),
                  Case(op, torch.bfloat16, 32, "nchw"), Case(op, torch.float32, 32, "nchw")]
    return cases


def _attention_strides(layout: str, nodes: int, width: int) -> tuple[int, int, int]:
    if layout == "nchw":                         # (B, C, n) memory seen as (B, n, C)
        return (nodes * width, 1, nodes)
    return (nodes * width, width, 1)             # (B, n, C) contiguous


def case_plan(case: Case, slots: int = 132):
    """The launch plan the runtime would use for ``case`` (strides as SPOT produces them)."""
    if case.op == "attention":
        from spot_edge.kernels.triton_attention import attention_plan
        qk = _attention_strides(case.layout, case.nodes, KEY_DIM)
        vo = _attention_strides(case.layout, case.nodes, VALUE_DIM)
        return attention_plan(case.batch, case.nodes, KEY_DIM, VALUE_DIM, case.dtype, (qk, qk, vo, vo), slots)
    from spot_edge.kernels.triton_part_pool import part_pool_plan
    maps = (PARTS * case.nodes, case.nodes, 1)
    feats = (CHANNELS * case.nodes, case.nodes, 1) if case.layout == "nchw" else (CHANNELS * case.nodes, 1, CHANNELS)
    return part_pool_plan(case.batch, PARTS, CHANNELS, case.nodes, case.dtype,
                          (maps, feats, (PARTS * CHANNELS, CHANNELS, 1)), slots)


def _signature(op: str, dtype: torch.dtype) -> tuple[dict[str, str], list[int]]:
    """Runtime argument types and which of them Triton specialises as 16-divisible (aligned
    pointers, the Dv share), exactly as its JIT would for contiguous PyTorch allocations."""
    pointer = _POINTER_TYPES[dtype]
    if op == "attention":
        return ({"q_ptr": pointer, "k_ptr": pointer, "v_ptr": pointer, "o_ptr": pointer,
                 "scale": "fp32", "dv_per_program": "i32"}, [0, 1, 2, 3, 5])
    return {"maps_ptr": pointer, "feat_ptr": pointer, "out_ptr": pointer, "eps": "fp32"}, [0, 1, 2]


def _kernel_function(op: str):
    if op == "attention":
        from spot_edge.kernels.triton_attention import structure_attention_kernel
        return structure_attention_kernel
    from spot_edge.kernels.triton_part_pool import part_pool_kernel
    return part_pool_kernel


_RES_USAGE = re.compile(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)")


def parse_res_usage(text: str) -> tuple[int, int, int]:
    """``(registers, stack bytes, static shared bytes)`` from ``cuobjdump -res-usage`` output."""
    match = _RES_USAGE.search(text)
    if match is None:
        raise RuntimeError(f"unexpected cuobjdump output:\n{text[-2000:]}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


@functools.lru_cache(maxsize=None)
def _compile(op: str, dtype: torch.dtype, plan_key: tuple, arch: int) -> KernelResources:
    import triton
    from triton import knobs
    from triton.compiler.compiler import ASTSource, GPUTarget

    constexprs, num_warps, num_stages = dict(plan_key[0]), plan_key[1], plan_key[2]
    runtime, divisible = _signature(op, dtype)
    signature = dict(runtime)
    signature.update({name: "constexpr" for name in constexprs})
    attrs = {(index,): [["tt.divisibility", 16]] for index in divisible}
    fn = _kernel_function(op)
    source = ASTSource(fn, signature, constexprs=constexprs, attrs=attrs)
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32),
                              options={"num_warps": num_warps, "num_stages": num_stages})
    with tempfile.TemporaryDirectory() as tmp:
        cubin = Path(tmp) / "kernel.cubin"
        cubin.write_bytes(compiled.asm["cubin"])
        proc = subprocess.run([knobs.nvidia.cuobjdump.path, "-res-usage", str(cubin)],
                              capture_output=True, text=True, timeout=60)
    registers, stack, static_shared = parse_res_usage(proc.stdout + proc.stderr)
    return KernelResources(kernel=fn.__name__, arch=arch, shared_bytes=int(compiled.metadata.shared),
                           static_shared_bytes=static_shared, registers=registers, stack_bytes=stack,
                           num_warps=num_warps)


def kernel_resources(op: str, dtype: torch.dtype, plan, arch: int) -> KernelResources:
    """Compile ``plan`` (an attention or part-pool plan) for ``sm_<arch>`` and report its resources.

    Raises:
        RuntimeError: under the Triton interpreter (there is nothing to compile).
    """
    if interpreter_active():
        raise RuntimeError("ahead-of-time compilation is unavailable under TRITON_INTERPRET=1")
    if dtype not in _POINTER_TYPES:
        raise ValueError(f"the kernels take float32/float16/bfloat16, got {dtype}")
    return _compile(op, dtype, plan.key(), int(arch))


def case_resources(case: Case, arch: int) -> KernelResources:
    """:func:`kernel_resources` of a production :class:`Case`."""
    return kernel_resources(case.op, case.dtype, case_plan(case), arch)
