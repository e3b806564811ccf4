"""Custom kernels for SPOT's two hot spots, behind one dispatching API.

``fused_structure_attention`` (ASR, eqs. 4-5) and ``part_pool`` (TPI, eq. 9). Each has a
plain PyTorch reference (``reference.py``, the definition); faster backends are selected by
``backend=``: ``"reference"``, ``"triton"``, ``"cuda"`` or ``"auto"``.

``"auto"`` picks, per call:

- the reference for CPU tensors, while tracing / exporting (``torch.onnx.export``,
  ``torch.jit.trace``, ``torch.export``, ``torch.compile``), and for dtypes the kernels do
  not take;
- on CUDA tensors: the CUDA library (``libspot_edge_kernels.so``), else Triton, else the
  reference, each only where it will run, judged before launching from the device, the
  dtype and the shape (:mod:`spot_edge.kernels.selection`: driver new enough for the
  library's CUDA runtime, sizes within limits, shared memory per block within the device's
  limit). Falling back to the reference on a GPU warns once. fp32 attention skips the CUDA
  library (its fp32 path uses CUDA cores without register tiling).

Every backend gives the reference's values (to rounding) and gradients. Inside
:func:`spot_edge.kernels.onnx_plugins.plugin_export` the ops export as TensorRT plugin nodes.
Heavy imports (Triton, ctypes library) happen on first use.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from types import ModuleType

import torch
from torch import Tensor

from spot_edge.device import cuda_available
from spot_edge.kernels import selection
from spot_edge.kernels.onnx_plugins import (export_onnx_with_plugins, part_pool_plugin, plugin_export,
                                            plugin_export_active, structure_attention_plugin)
from spot_edge.kernels.reference import fused_structure_attention_reference, part_pool_reference

BACKENDS = ("auto", "reference", "triton", "cuda")
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

TRITON_HINT = ("install Triton (`pip install triton`, bundled with CUDA builds of PyTorch on Linux) "
               "and pass CUDA tensors; on a CPU the kernels run only under the Triton interpreter "
               "(set TRITON_INTERPRET=1 before anything imports triton)")


class KernelUnavailableError(RuntimeError):
    """A requested backend cannot run here; the message says how to get it."""


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown kernel backend {backend!r}; choose one of {', '.join(BACKENDS)}")


# --------------------------------------------------------------------------- availability

def _tracing() -> bool:
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, "compiler", None)
    if compiler is not None:
        if getattr(compiler, "is_exporting", lambda: False)():
            return True
        if getattr(compiler, "is_compiling", lambda: False)():
            return True
    return False


@functools.lru_cache(maxsize=1)
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def _triton_interpreter() -> bool:
    from spot_edge.kernels.triton_common import interpreter_active
    return interpreter_active()


def triton_unavailable_reason(device: torch.device | None = None) -> str | None:
    """``None`` when the Triton backend can run on ``device`` (default: CUDA), else why not."""
    if not _triton_installed():
        return f"Triton is not installed; {TRITON_HINT}"
    device = device or torch.device("cuda")
    if device.type == "cuda":
        return None if cuda_available() else f"no CUDA GPU is visible; {TRITON_HINT}"
    if device.type == "cpu" and _triton_interpreter():
        return None
    return f"Triton kernels need CUDA tensors, got {device.type} tensors; {TRITON_HINT}"


def cuda_unavailable_reason(device: torch.device | None = None) -> str | None:
    """``None`` when the CUDA-library backend can run on ``device`` (default: CUDA), else why not."""
    device = device or torch.device("cuda")
    if device.type != "cuda":
        return f"the CUDA backend needs CUDA tensors, got {device.type} tensors"
    from spot_edge.kernels import cuda_ops
    return cuda_ops.unavailable_reason()


def available_backends(device: torch.device | str = "cuda") -> list[str]:
    """Backends that can run on ``device`` here (always includes ``"reference"``)."""
    device = torch.device(device)
    found = ["reference"]
    if triton_unavailable_reason(device) is None:
        found.append("triton")
    if cuda_unavailable_reason(device) is None:
        found.append("cuda")
    return found


def _require(backend: str, device: torch.device) -> None:
    reason = triton_unavailable_reason(device) if backend == "triton" else cuda_unavailable_reason(device)
    if reason is not None:
        raise KernelUnavailableError(f"kernel backend {backend!r} is unavailable: {reason}")


def _triton_module(name: str) -> ModuleType:
    return importlib.import_module(f"spot_edge.kernels.{name}")


# --------------------------------------------------------------------------- validation

def _check_attention(q: Tensor, k: Tensor, v: Tensor) -> None:
    if torch.jit.is_tracing():   # shapes are traced values there; the reference ops check them
        return
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise ValueError("fused_structure_attention expects q, k (B, N, Dk) and v (B, N, Dv); got "
                         f"shapes {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if q.shape != k.shape or v.shape[:2] != q.shape[:2]:
        raise ValueError("fused_structure_attention: q and k must have the same shape (B, N, Dk) and v "
                         f"the same (B, N); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")


def _check_part_pool(part_maps: Tensor, features: Tensor) -> None:
    if torch.jit.is_tracing():
        return
    if part_maps.dim() != 4 or features.dim() != 4:
        raise ValueError("part_pool expects part_maps (B, P, H, W) and features (B, C, H, W); got "
                         f"shapes {tuple(part_maps.shape)}, {tuple(features.shape)}")
    if part_maps.shape[0] != features.shape[0] or part_maps.shape[2:] != features.shape[2:]:
        raise ValueError("part_pool: part_maps and features must share B, H and W; got "
                         f"{tuple(part_maps.shape)} and {tuple(features.shape)}")


def _kernel_inputs(tensors: tuple[Tensor, ...], explicit: bool, op: str) -> tuple[Tensor, ...] | None:
    """Common dtype for the kernels (autocast's dtype inside autocast), or ``None`` = use reference."""
    device = tensors[0].device
    if any(t.device != device for t in tensors):
        raise ValueError(f"{op}: all inputs must be on one device, got "
                         f"{', '.join(str(t.device) for t in tensors)}")
    if device.type == "cuda" and torch.is_autocast_enabled("cuda"):
        dtype = torch.get_autocast_dtype("cuda")
        return tuple(t.to(dtype) for t in tensors)
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) == 1 and tensors[0].dtype in KERNEL_DTYPES:
        return tensors
    if explicit:
        raise ValueError(f"{op}: the kernels take float32/float16/bfloat16 inputs of one dtype, got "
                         f"{', '.join(str(t.dtype) for t in tensors)}")
    return None


def _choose(backend: str, request: selection.Request) -> str:
    """The backend that runs ``request`` (explicit requests are checked, auto falls back)."""
    if backend != "auto":
        if request.device.type == "cuda":
            problem = selection.explicit_problem(backend, request)
            if problem is not None:
                other = "'triton' or 'reference'" if backend == "cuda" else "'reference'"
                raise ValueError(f"{problem}; use backend={other}")
        return backend
    return selection.auto_backend(request, cuda_unavailable_reason(request.device),
                                  triton_unavailable_reason(request.device))


def auto_backends_for_spot(device: "str | torch.device" = "auto",
                           dtype: torch.dtype = torch.float16) -> dict[str, str]:
    """What ``backend="auto"`` runs for SPOT's two kernel calls at the paper's shapes (288x144
    input: N = 162 nodes, Dk = 256, Dv = 2048 read from the transposed conv output, P = 7 parts)
    on ``device``: ``{"attention": backend, "part_pool": backend}``. ``spot-edge doctor`` reports
    this, so it shows the rule the model applies rather than a copy of it."""
    from spot_edge.device import resolve_device

    device = resolve_device(device)
    if device.type != "cuda":
        return {"attention": "reference", "part_pool": "reference"}
    nodes, key_dim, value_dim, parts = 162, 256, 2048, 7
    rows = (nodes * key_dim, key_dim, 1)
    attention = selection.Request("attention", device, dtype, (1, nodes, key_dim, value_dim),
                                  (rows, rows, (value_dim * nodes, 1, nodes)))
    pooling = selection.Request("part_pool", device, dtype, (1, parts, value_dim, nodes),
                                ((parts * nodes, nodes, 1), (value_dim * nodes, nodes, 1)))
    return {"attention": _choose("auto", attention), "part_pool": _choose("auto", pooling)}


# --------------------------------------------------------------------------- public ops

def fused_structure_attention(q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0, backend: str = "auto") -> Tensor:
    """``(B, N, Dk), (B, N, Dk), (B, N, Dv) -> (B, N, Dv)``: softmax(scale q k^T) v (eqs. 4-5).

    Args:
        q: row embeddings (K(F_S_bar) at node t in eq. 4), ``(B, N, Dk)``.
        k: column embeddings (Q(F_S_bar) at node j), ``(B, N, Dk)``.
        v: values V(F_I), ``(B, N, Dv)``. Strided views are fine.
        scale: multiplies the logits.
        backend: ``"auto"``, ``"reference"``, ``"triton"`` or ``"cuda"``.

    Returns:
        ``(B, N, Dv)``; the CUDA and Triton kernels write it in the memory layout of ``v``
        (``(B, Dv, N)`` memory for SPOT's transposed conv views), the reference contiguous.

    Raises:
        ValueError: bad shapes / dtypes, or sizes beyond an explicitly requested kernel's limits.
        KernelUnavailableError: an explicitly requested backend cannot run here.
    """
    _check_backend(backend)
    _check_attention(q, k, v)
    if plugin_export_active():
        return structure_attention_plugin(q, k, v, scale)
    if backend == "reference" or (backend == "auto" and q.device.type != "cuda") or _tracing():
        return fused_structure_attention_reference(q, k, v, scale)
    explicit = backend != "auto"
    if explicit:
        _require(backend, q.device)
    inputs = _kernel_inputs((q, k, v), explicit, "fused_structure_attention")
    if inputs is None:
        return fused_structure_attention_reference(q, k, v, scale)
    q, k, v = inputs
    chosen = _choose(backend, selection.attention_request(q, k, v))
    if chosen == "cuda":
        from spot_edge.kernels import cuda_ops
        return cuda_ops.fused_structure_attention_cuda(q, k, v, scale)
    if chosen == "triton":
        return _triton_module("triton_attention").fused_structure_attention_triton(q, k, v, scale)
    return fused_structure_attention_reference(q, k, v, scale)


def part_pool(part_maps: Tensor, features: Tensor, eps: float = 1e-6, backend: str = "auto") -> Tensor:
    """``(B, P, H, W), (B, C, H, W) -> (B, P, C)``: node-level part pooling (eq. 9).

    Args:
        part_maps: part maps after the sigmoid (eq. 8), ``(B, P, H, W)``.
        features: appearance features F_I, ``(B, C, H, W)``.
        eps: guards the division for a part that owns no node.
        backend: ``"auto"``, ``"reference"``, ``"triton"`` or ``"cuda"``.

    Raises:
        ValueError: bad shapes / dtypes, or sizes beyond an explicitly requested kernel's limits.
        KernelUnavailableError: an explicitly requested backend cannot run here.
    """
    _check_backend(backend)
    _check_part_pool(part_maps, features)
    if plugin_export_active():
        return part_pool_plugin(part_maps, features, eps)
    if backend == "reference" or (backend == "auto" and features.device.type != "cuda") or _tracing():
        return part_pool_reference(part_maps, features, eps)
    explicit = backend != "auto"
    if explicit:
        _require(backend, features.device)
    inputs = _kernel_inputs((part_maps, features), explicit, "part_pool")
    if inputs is None:
        return part_pool_reference(part_maps, features, eps)
    part_maps, features = inputs
    chosen = _choose(backend, selection.part_pool_request(part_maps.flatten(2), features.flatten(2)))
    if chosen == "cuda":
        from spot_edge.kernels import cuda_ops
        return cuda_ops.part_pool_cuda(part_maps, features, eps)
    if chosen == "triton":
        return _triton_module("triton_part_pool").part_pool_triton(part_maps, features, eps)
    return part_pool_reference(part_maps, features, eps)


__all__ = ["BACKENDS", "KernelUnavailableError", "auto_backends_for_spot", "available_backends",
           "cuda_unavailable_reason",
           "export_onnx_with_plugins",
           "fused_structure_attention", "fused_structure_attention_reference", "part_pool",
           "part_pool_reference", "plugin_export", "triton_unavailable_reason"]
