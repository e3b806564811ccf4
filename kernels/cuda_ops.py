"""PyTorch custom operators over the CUDA C++ library (``libspot_edge_kernels.so``).

The library (``kernels/cuda/``, built by the top-level ``CMakeLists.txt``) has no libtorch
dependency: it exports a C API (``kernels/cuda/spot_kernels.h``) taking raw device pointers,
sizes, strides, a dtype code and a ``cudaStream_t``. This module loads it with :mod:`ctypes`
and registers two operators with :func:`torch.library.custom_op`:

- ``spot_edge::structure_attention(q, k, v, scale) -> out``   (eqs. 4-5)
- ``spot_edge::part_pool(part_maps, features, eps) -> out``   (eq. 9)

Each has a fake (meta) implementation, so ``torch.compile`` / ``torch.export`` can trace
it, and an autograd formula (:mod:`spot_edge.kernels.backward`, plain PyTorch ops), so
training through the CUDA forward gives the reference's gradients.

Library lookup order: ``$SPOT_EDGE_KERNELS_LIB`` (a file), then ``build/`` and
``build-*/`` at the repository root, then ``kernels/lib/``. Build it with::

    cmake -S . -B build -DCMAKE_CUDA_ARCHITECTURES=90 && cmake --build build -j

The library links the CUDA runtime statically; :func:`unavailable_reason` refuses it when the
installed driver is older than that runtime needs (CUDA 13: driver R580 or newer), instead of
letting the first launch fail. Its host-only functions (shared memory per block, the Dv split)
answer without a GPU, which is how ``backend="auto"`` and the tests plan ahead.
"""

from __future__ import annotations

import ctypes
import functools
import os
from pathlib import Path

import torch
from torch import Tensor

from spot_edge.device import cuda_available
from spot_edge.kernels.backward import fused_structure_attention_backward, part_pool_backward
from spot_edge.kernels.planning import output_like_values

LIBRARY_ENV = "SPOT_EDGE_KERNELS_LIB"
LIBRARY_FILE = "libspot_edge_kernels.so"
ABI_VERSION = 2
#: NVIDIA driver branch that first supports each CUDA major version (for messages).
DRIVER_BRANCH = {12: "R525", 13: "R580"}
BUILD_HINT = ("build it with `cmake -S . -B build && cmake --build build -j` at the repository root "
              f"(needs nvcc and CMake >= 3.24), or point ${LIBRARY_ENV} at an existing {LIBRARY_FILE}")

DTYPE_CODES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
_STATUS_UNSUPPORTED = 2

_INT64_3 = ctypes.c_int64 * 3


class KernelLibraryError(RuntimeError):
    """The CUDA kernel library is missing, cannot be loaded, or a launch failed."""


def library_candidates() -> list[Path]:
    """Paths searched for the library, in order."""
    here = Path(__file__).resolve().parent
    root = here.parent
    paths: list[Path] = []
    env = os.environ.get(LIBRARY_ENV)
    if env:
        paths.append(Path(env))
    paths.append(root / "build" / LIBRARY_FILE)
    paths.extend(sorted(root.glob(f"build-*/{LIBRARY_FILE}")))
    paths.append(here / "lib" / LIBRARY_FILE)
    return paths


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i64, f32, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float, ctypes.c_int
    strides = ctypes.POINTER(ctypes.c_int64)
    lib.spot_structure_attention.argtypes = [p, p, p, p, i64, i64, i64, i64, strides, strides, strides,
                                             strides, f32, i32, p]
    lib.spot_structure_attention.restype = i32
    lib.spot_part_pool.argtypes = [p, p, p, i64, i64, i64, i64, strides, strides, f32, i32, p]
    lib.spot_part_pool.restype = i32
    lib.spot_status_string.argtypes = [i32]
    lib.spot_status_string.restype = ctypes.c_char_p
    lib.spot_kernels_abi_version.argtypes = []
    lib.spot_kernels_abi_version.restype = i32
    lib.spot_structure_attention_max_nodes.restype = i64
    lib.spot_part_pool_max_parts.restype = i64
    lib.spot_structure_attention_smem_bytes.argtypes = [i64, i32]
    lib.spot_structure_attention_smem_bytes.restype = i64
    lib.spot_structure_attention_splits.argtypes = [i64, i64, i64, i64, i32, i64]
    lib.spot_structure_attention_splits.restype = i64
    lib.spot_part_pool_smem_bytes.argtypes = [i64, i64]
    lib.spot_part_pool_smem_bytes.restype = i64
    lib.spot_kernels_runtime_version.restype = i32
    lib.spot_kernels_driver_version.restype = i32
    return lib


def open_library(path: str | os.PathLike) -> ctypes.CDLL:
    """Load one library file and declare its C signatures (raises :class:`KernelLibraryError`)."""
    try:
        lib = _declare(ctypes.CDLL(str(path)))
    except (OSError, AttributeError) as exc:
        raise KernelLibraryError(f"cannot load the CUDA kernel library {path}: {exc}; rebuild it: {BUILD_HINT}") from exc
    version = lib.spot_kernels_abi_version()
    if version != ABI_VERSION:
        raise KernelLibraryError(f"{path} has C API version {version}, this package expects "
                                 f"{ABI_VERSION}; rebuild it: {BUILD_HINT}")
    return lib


@functools.lru_cache(maxsize=1)
def _load() -> tuple[ctypes.CDLL | None, str]:
    tried = []
    for path in library_candidates():
        if path.is_file():
            try:
                return open_library(path), str(path)
            except KernelLibraryError as exc:
                return None, str(exc)
        tried.append(str(path))
    return None, f"{LIBRARY_FILE} not found (looked at {', '.join(tried)}); {BUILD_HINT}"


def clear_cache() -> None:
    """Forget the loaded library and the driver check (after building it, or in tests)."""
    _load.cache_clear()
    _driver_reason.cache_clear()


def library() -> ctypes.CDLL:
    """The loaded library, or :class:`KernelLibraryError` saying how to get it."""
    lib, info = _load()
    if lib is None:
        raise KernelLibraryError(info)
    return lib


def library_path() -> str | None:
    """Where the library was loaded from (``None`` if it was not)."""
    lib, info = _load()
    return info if lib is not None else None


def driver_problem(driver_version: int, runtime_version: int) -> str | None:
    """``None`` when a driver supporting CUDA ``driver_version`` (``cudaDriverGetVersion``, e.g.
    12040) can run a statically linked CUDA runtime ``runtime_version`` (e.g. 13000), else why not.

    CUDA's minor-version compatibility: runtime X.y runs on any driver that supports X.0.
    """
    needed = runtime_version // 1000 * 1000
    if driver_version >= needed:
        return None
    major = runtime_version // 1000
    branch = DRIVER_BRANCH.get(major)
    wanted = f"a driver for CUDA {major}.0 or newer" + (f" ({branch} or later)" if branch else "")
    have = ("no NVIDIA driver was found" if driver_version <= 0 else
            f"this driver supports CUDA {driver_version // 1000}.{driver_version % 1000 // 10}")
    return (f"the CUDA kernel library links the CUDA {major}.{runtime_version % 1000 // 10} runtime "
            f"statically, which needs {wanted}; {have}: update the driver, or rebuild the library "
            f"with a CUDA toolkit this driver supports")


def versions() -> tuple[int, int]:
    """``(driver, runtime)`` CUDA versions as the library sees them (see :func:`driver_problem`)."""
    lib = library()
    return int(lib.spot_kernels_driver_version()), int(lib.spot_kernels_runtime_version())


@functools.lru_cache(maxsize=1)
def _driver_reason() -> str | None:
    return driver_problem(*versions())


def unavailable_reason() -> str | None:
    """``None`` when the CUDA backend can run here, else why not and how to fix it.

    Checks, once per process: a GPU is visible, the library loads with this package's C API
    version, and the driver is new enough for the CUDA runtime linked into the library.
    """
    if not cuda_available():
        return "the CUDA backend needs a CUDA GPU (torch.cuda.is_available() is False)"
    lib, info = _load()
    if lib is None:
        return info
    return _driver_reason()


def is_available() -> bool:
    return unavailable_reason() is None


def max_nodes() -> int:
    """Largest N the attention kernel takes (256 for the library's tile sizes)."""
    return int(library().spot_structure_attention_max_nodes())


def max_parts() -> int:
    """Largest P the part pooling kernel takes (16)."""
    return int(library().spot_part_pool_max_parts())


def attention_shared_bytes(nodes: int, dtype: torch.dtype) -> int:
    """Dynamic shared memory per block of the attention kernel (-1: N beyond the kernel)."""
    return int(library().spot_structure_attention_smem_bytes(nodes, DTYPE_CODES[dtype]))


def part_pool_shared_bytes(parts: int, nodes: int) -> int:
    """Dynamic shared memory per block of the part pooling kernel (-1: P beyond the kernel)."""
    return int(library().spot_part_pool_smem_bytes(parts, nodes))


def attention_splits(batch: int, nodes: int, key_dim: int, value_dim: int, dtype: torch.dtype,
                     slots: int) -> int:
    """Blocks sharing the value width of one query tile, for ``slots`` resident blocks."""
    return int(library().spot_structure_attention_splits(batch, nodes, key_dim, value_dim,
                                                         DTYPE_CODES[dtype], slots))


def _check_status(status: int, what: str) -> None:
    if status == 0:
        return
    message = library().spot_status_string(status).decode()
    error = ValueError if status == _STATUS_UNSUPPORTED else KernelLibraryError
    raise error(f"{what} CUDA kernel failed: {message}")


def _ptr(t: Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


def _stream(t: Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(torch.cuda.current_stream(t.device).cuda_stream)


def _on_device(device: torch.device, call):
    """Run ``call()`` with ``device`` current (the C API launches on the current device);
    switches only when another device is current (the switch costs a few microseconds)."""
    if device.index is None or device.index == torch.cuda.current_device():
        return call()
    with torch.cuda.device(device):
        return call()


# --------------------------------------------------------------------------- operators

def launch_structure_attention(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """Run the library kernel (no autograd, no dispatcher): shapes as the reference; the output
    has the memory layout of ``v`` (:func:`spot_edge.kernels.planning.output_like_values`)."""
    lib = library()
    batch, nodes, key_dim = q.shape
    value_dim = v.shape[-1]
    out = output_like_values(v, nodes)
    if out.numel() == 0:
        return out
    status = _on_device(v.device, lambda: lib.spot_structure_attention(
        _ptr(q), _ptr(k), _ptr(v), _ptr(out), batch, nodes, key_dim, value_dim,
        _INT64_3(*q.stride()), _INT64_3(*k.stride()), _INT64_3(*v.stride()), _INT64_3(*out.stride()),
        float(scale), DTYPE_CODES[v.dtype], _stream(v)))
    _check_status(status, "structure attention")
    return out


@torch.library.custom_op("spot_edge::structure_attention", mutates_args=(), device_types="cuda")
def structure_attention_op(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    """``(B, N, Dk), (B, N, Dk), (B, N, Dv) -> (B, N, Dv)``: softmax(scale q k^T) v (CUDA library)."""
    return launch_structure_attention(q, k, v, scale)


@structure_attention_op.register_fake
def _structure_attention_fake(q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
    return output_like_values(v, q.shape[1])


def _structure_attention_setup(ctx, inputs, output) -> None:
    q, k, v, scale = inputs
    ctx.save_for_backward(q, k, v)
    ctx.scale = scale


def _structure_attention_grad(ctx, grad_out: Tensor):
    q, k, v = ctx.saved_tensors
    grad_q, grad_k, grad_v = fused_structure_attention_backward(grad_out, q, k, v, ctx.scale)
    return grad_q, grad_k, grad_v, None


structure_attention_op.register_autograd(_structure_attention_grad,
                                         setup_context=_structure_attention_setup)


def launch_part_pool(part_maps: Tensor, features: Tensor, eps: float) -> Tensor:
    """Run the library kernel (no autograd, no dispatcher): shapes as the reference."""
    lib = library()
    batch, parts = part_maps.shape[:2]
    channels = features.shape[1]
    maps = part_maps.flatten(2)               # views for NCHW and channels-last tensors alike
    feats = features.flatten(2)
    out = torch.empty((batch, parts, channels), device=features.device, dtype=features.dtype)
    if out.numel() == 0:
        return out
    status = _on_device(features.device, lambda: lib.spot_part_pool(
        _ptr(maps), _ptr(feats), _ptr(out), batch, parts, channels, maps.shape[-1],
        _INT64_3(*maps.stride()), _INT64_3(*feats.stride()), float(eps),
        DTYPE_CODES[features.dtype], _stream(features)))
    _check_status(status, "part pooling")
    return out


@torch.library.custom_op("spot_edge::part_pool", mutates_args=(), device_types="cuda")
def part_pool_op(part_maps: Tensor, features: Tensor, eps: float) -> Tensor:
    """``(B, P, H, W), (B, C, H, W) -> (B, P, C)``: node-level part pooling (CUDA library)."""
    return launch_part_pool(part_maps, features, eps)


@part_pool_op.register_fake
def _part_pool_fake(part_maps: Tensor, features: Tensor, eps: float) -> Tensor:
    return features.new_empty((part_maps.shape[0], part_maps.shape[1], features.shape[1]))


def _part_pool_setup(ctx, inputs, output) -> None:
    part_maps, features, eps = inputs
    ctx.save_for_backward(part_maps, features)
    ctx.eps = eps


def _part_pool_grad(ctx, grad_out: Tensor):
    part_maps, features = ctx.saved_tensors
    grad_maps, grad_feats = part_pool_backward(grad_out, part_maps, features, ctx.eps)
    return grad_maps, grad_feats, None


part_pool_op.register_autograd(_part_pool_grad, setup_context=_part_pool_setup)


def _needs_graph(*tensors: Tensor) -> bool:
    """Autograd or a tracer needs the registered operator; plain inference can skip the
    dispatcher (saves its per-call overhead, which matters at B = 1)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return True
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


def fused_structure_attention_cuda(q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0) -> Tensor:
    """Differentiable CUDA-library fused structure attention (shapes as the reference)."""
    if _needs_graph(q, k, v):
        return structure_attention_op(q, k, v, float(scale))
    return launch_structure_attention(q, k, v, float(scale))


def part_pool_cuda(part_maps: Tensor, features: Tensor, eps: float = 1e-6) -> Tensor:
    """Differentiable CUDA-library part pooling (shapes as the reference)."""
    if _needs_graph(part_maps, features):
        return part_pool_op(part_maps, features, float(eps))
    return launch_part_pool(part_maps, features, float(eps))
