"""``backend="auto"``: which implementation runs a call, from facts known before any launch.

Decided per (device, dtype, shape and strides), cached, in this order on CUDA tensors:

1. the CUDA library, if it loads with this package's C API version, the installed driver is
   new enough for the CUDA runtime linked into it (:func:`cuda_ops.unavailable_reason`; CUDA 13
   needs R580+), the sizes are within its limits (N <= 256, P <= 16) and its shared memory per
   block (:func:`cuda_ops.attention_shared_bytes`, computed by the library's host code) fits
   the device. fp32 attention skips it: its fp32 path runs on CUDA cores (exact, not fast);
2. Triton, if installed, the sizes are within its limits and the launch plan, compiled for the
   device (Triton's JIT without launching; for simulated devices ahead of time for their
   architecture, :mod:`spot_edge.kernels.triton_aot`), needs no more shared memory per block
   than the device allows (fp32 attention at N = 162 fits an H100's 227 KB
   but not necessarily an Orin's 163 KB; N in 513..1024 needs more than either in fp32);
3. the reference, with a one-time warning naming what ruled the kernels out.

A backend asked for explicitly is checked the same way and raises instead of falling back.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from spot_edge.device import cuda_available
from spot_edge.kernels.device_info import DeviceLimits, device_limits
from spot_edge.kernels.planning import output_strides


@dataclass(frozen=True)
class Request:
    """What a kernel call needs, without the tensors' data.

    ``sizes``: attention ``(B, N, Dk, Dv)``, part pooling ``(B, P, C, HW)``. ``strides``: element
    strides of the 3-D views the kernels read: attention q, k, v; part pooling the maps
    ``(B, P, HW)`` and the features ``(B, C, HW)``.
    """

    op: str
    device: torch.device
    dtype: torch.dtype
    sizes: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]

    def cache_key(self) -> tuple:
        """The batch size changes only the grid, never whether a kernel fits."""
        return (self.op, self.device.type, self.device.index, self.dtype, self.sizes[1:], self.strides)


def attention_request(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Request:
    batch, nodes, key_dim = q.shape
    return Request("attention", q.device, q.dtype, (batch, nodes, key_dim, v.shape[-1]),
                   (tuple(q.stride()), tuple(k.stride()), tuple(v.stride())))


def part_pool_request(maps: torch.Tensor, features: torch.Tensor) -> Request:
    """``maps`` ``(B, P, HW)`` and ``features`` ``(B, C, HW)`` (flattened views)."""
    batch, parts, nodes = maps.shape
    return Request("part_pool", features.device, features.dtype, (batch, parts, features.shape[1], nodes),
                   (tuple(maps.stride()), tuple(features.stride())))


# --------------------------------------------------------------------------- the two kernels

def cuda_problem(request: Request, limits: DeviceLimits) -> str | None:
    """Why the CUDA library cannot run ``request`` on a device with ``limits`` (``None``: it can).
    Assumes the library is available (:func:`cuda_ops.unavailable_reason` is ``None``)."""
    from spot_edge.kernels import cuda_ops
    if request.op == "attention":
        nodes = request.sizes[1]
        if nodes > cuda_ops.max_nodes():
            return f"the CUDA attention takes N <= {cuda_ops.max_nodes()} nodes, got {nodes}"
        needed = cuda_ops.attention_shared_bytes(nodes, request.dtype)
    else:
        parts, nodes = request.sizes[1], request.sizes[3]
        if parts > cuda_ops.max_parts():
            return f"the CUDA part pooling takes P <= {cuda_ops.max_parts()} parts, got {parts}"
        needed = cuda_ops.part_pool_shared_bytes(parts, nodes)
    if needed > limits.shared_per_block_optin:
        return (f"the CUDA {request.op} kernel needs {needed} bytes of shared memory per block at these sizes, "
                f"{limits.name} allows {limits.shared_per_block_optin}")
    return None


def triton_plan(request: Request, limits: DeviceLimits):
    """The Triton launch plan for ``request`` on a device with ``limits``."""
    if request.op == "attention":
        from spot_edge.kernels.triton_attention import attention_plan
        batch, nodes, key_dim, value_dim = request.sizes
        out = output_strides(batch, nodes, value_dim, request.strides[2])
        return attention_plan(batch, nodes, key_dim, value_dim, request.dtype, (*request.strides, out),
                              limits.multiprocessors)
    from spot_edge.kernels.triton_part_pool import part_pool_plan
    batch, parts, channels, nodes = request.sizes
    out = (parts * channels, channels, 1)
    return part_pool_plan(batch, parts, channels, nodes, request.dtype, (*request.strides, out),
                          limits.multiprocessors)


def triton_shared_bytes(request: Request, limits: DeviceLimits) -> int:
    """Shared memory per block of the Triton kernel for ``request``: from Triton's JIT for the GPU
    the call runs on (the same compilation the launch then reuses), or compiled ahead of time for
    ``limits``' architecture when ``limits`` describe another device (simulated devices, checks)."""
    plan = triton_plan(request, limits)
    module_name = "triton_attention" if request.op == "attention" else "triton_part_pool"
    if request.device.type == "cuda" and cuda_available() and limits == device_limits(request.device):
        import importlib
        module = importlib.import_module(f"spot_edge.kernels.{module_name}")
        return module.compiled_shared_bytes(plan, request.dtype)
    from spot_edge.kernels import triton_aot
    return triton_aot.kernel_resources(request.op, request.dtype, plan, limits.arch).total_shared_bytes


def triton_problem(request: Request, limits: DeviceLimits) -> str | None:
    """Why the Triton kernel cannot run ``request`` on a device with ``limits`` (``None``: it can):
    sizes beyond its limits, or more shared memory per block than the device allows."""
    if request.op == "attention":
        from spot_edge.kernels.triton_attention import MAX_NODES
        if request.sizes[1] > MAX_NODES:
            return f"the Triton attention takes N <= {MAX_NODES} nodes, got {request.sizes[1]}"
    else:
        from spot_edge.kernels.triton_part_pool import MAX_PARTS
        if request.sizes[1] > MAX_PARTS:
            return f"the Triton part pooling takes P <= {MAX_PARTS} parts, got {request.sizes[1]}"
    try:
        needed = triton_shared_bytes(request, limits)
    except Exception as exc:  # noqa: BLE001 - any compiler failure rules the kernel out, with its message
        return f"the Triton {request.op} kernel did not compile for sm_{limits.arch}: {exc}"
    if needed > limits.shared_per_block_optin:
        return (f"the Triton {request.op} kernel needs {needed} bytes of shared memory per block at these "
                f"sizes, {limits.name} allows {limits.shared_per_block_optin}")
    return None


# --------------------------------------------------------------------------- auto

_decisions: dict[tuple, str] = {}
_warned: set[tuple] = set()


def clear_cache() -> None:
    """Forget cached decisions and warnings (tests; after building the library)."""
    _decisions.clear()
    _warned.clear()
    _explicit.clear()


def auto_backend(request: Request, cuda_unavailable: str | None, triton_unavailable: str | None,
                 limits: DeviceLimits | None = None) -> str:
    """The backend ``"auto"`` runs for ``request`` on a CUDA device.

    Args:
        cuda_unavailable / triton_unavailable: why each backend cannot run here at all
            (``None``: installed and usable), from :func:`spot_edge.kernels.cuda_unavailable_reason`
            and :func:`spot_edge.kernels.triton_unavailable_reason`.
        limits: the device's limits (default: queried once per device).
    """
    key = request.cache_key() + (cuda_unavailable, triton_unavailable, limits)
    chosen = _decisions.get(key)
    if chosen is not None:
        return chosen
    limits = limits or device_limits(request.device)
    reasons = []
    chosen = "reference"
    if request.op == "attention" and request.dtype == torch.float32:
        cuda_unavailable = cuda_unavailable or "fp32 attention skips the CUDA library (CUDA-core path)"
    reason = cuda_unavailable or cuda_problem(request, limits)
    if reason is None:
        chosen = "cuda"
    else:
        reasons.append(f"cuda: {reason}")
        reason = triton_unavailable or triton_problem(request, limits)
        if reason is None:
            chosen = "triton"
        else:
            reasons.append(f"triton: {reason}")
    _decisions[key] = chosen
    if chosen == "reference" and key not in _warned:
        _warned.add(key)
        warnings.warn(f"spot_edge.kernels: {request.op} in {str(request.dtype).replace('torch.', '')} at sizes "
                      f"{request.sizes} runs the PyTorch reference on {limits.name}: " + "; ".join(reasons),
                      RuntimeWarning, stacklevel=4)
    return chosen


_explicit: dict[tuple, str | None] = {}


def explicit_problem(backend: str, request: Request, limits: DeviceLimits | None = None) -> str | None:
    """Why an explicitly requested, available backend cannot run ``request`` (``None``: it can).
    Cached like the auto decisions."""
    key = (backend,) + request.cache_key() + (limits,)
    if key not in _explicit:
        limits = limits or device_limits(request.device)
        _explicit[key] = cuda_problem(request, limits) if backend == "cuda" else triton_problem(request, limits)
    return _explicit[key]
