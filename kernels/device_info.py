"""Per-device facts the kernels plan with, queried once per device and cached.

The launchers need the SM count (to size grids to whole waves) and the shared-memory limit
per block (to refuse a configuration before launching it); querying them on every call is
measurable at B = 1, so :func:`device_limits` caches them per device index.

:data:`ARCH_LIMITS` holds the same limits for the architectures the project ships kernels for,
so the ahead-of-time resource checks (``kernels/triton_aot.py``, the tests) run without a GPU.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceLimits:
    """What a kernel plan needs to know about one GPU."""

    name: str
    capability: tuple[int, int]
    multiprocessors: int
    shared_per_block_optin: int          # bytes one block may use (cudaDevAttrMaxSharedMemoryPerBlockOptin)
    l2_bytes: int

    @property
    def arch(self) -> int:
        """``sm_XY`` as the integer ``XY`` (87 for Orin, 90 for H100 / H200)."""
        return self.capability[0] * 10 + self.capability[1]


#: Limits per architecture (from NVIDIA's CUDA C++ Programming Guide, compute capabilities table).
ARCH_LIMITS: dict[int, DeviceLimits] = {
    80: DeviceLimits("sm_80 (A100)", (8, 0), 108, 163 * 1024, 40 * 1024 * 1024),
    87: DeviceLimits("sm_87 (Jetson AGX Orin)", (8, 7), 16, 163 * 1024, 4 * 1024 * 1024),
    89: DeviceLimits("sm_89 (L4 / L40S)", (8, 9), 58, 99 * 1024, 48 * 1024 * 1024),
    90: DeviceLimits("sm_90 (H100 SXM / H200)", (9, 0), 132, 227 * 1024, 50 * 1024 * 1024),
}


def device_index(device: torch.device | str | int | None = None) -> int:
    """The CUDA device index of ``device`` (``None`` or ``"cuda"``: the current device)."""
    if isinstance(device, int):
        return device
    device = torch.device("cuda") if device is None else torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"device limits exist only for CUDA devices, got {device}")
    return device.index if device.index is not None else torch.cuda.current_device()


@functools.lru_cache(maxsize=None)
def _limits_of(index: int) -> DeviceLimits:
    props = torch.cuda.get_device_properties(index)
    return DeviceLimits(name=props.name, capability=(props.major, props.minor),
                        multiprocessors=props.multi_processor_count,
                        shared_per_block_optin=props.shared_memory_per_block_optin,
                        l2_bytes=props.L2_cache_size)


def device_limits(device: torch.device | str | int | None = None) -> DeviceLimits:
    """Limits of a CUDA device, queried once per device index."""
    return _limits_of(device_index(device))


def multiprocessors(device: torch.device) -> int:
    """SM count of a CUDA device; for CPU tensors (the Triton interpreter) an H100's 132, so
    launch plans stay deterministic there."""
    return device_limits(device).multiprocessors if device.type == "cuda" else ARCH_LIMITS[90].multiprocessors


def clear_cache() -> None:
    """Forget the cached limits (tests; a process never needs it)."""
    _limits_of.cache_clear()
