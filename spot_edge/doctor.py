"""``spot-edge doctor``: what this machine has, and which backends spot-edge will use.

Every probe is isolated: a package that is missing, broken or raises on import is reported as
unavailable with the reason, never a crash. Nothing heavy is imported at module import time.

:func:`collect` returns a JSON-serialisable report:

- ``python``, ``spot_edge``, ``platform`` (with ``jetson`` when ``/etc/nv_tegra_release`` exists);
- ``torch``: version, CUDA build, ``cuda_available``, devices (name, compute capability, memory);
- ``tensorrt``, ``onnxruntime`` (with its execution providers), ``triton``, ``cuda_python``,
  ``faiss``, ``opencv`` (with ``gstreamer`` from ``cv2.getBuildInformation()``);
- ``kernels``: the CUDA kernel library (``libspot_edge_kernels.so``), the TensorRT plugin
  library (``libspot_edge_trt_plugins.so``) and the kernel backends usable here;
- ``defaults``: the device, the embedding backend ``create_embedder(source)`` picks for each kind
  of source (the backends' own auto rule, :func:`spot_edge.backends.resolve_backend`) and whether
  it runs here, the kernel backend, pose device and gallery search that ``"auto"`` settings
  resolve to on this machine, each with the reason.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path
from typing import Any, Callable

from spot_edge import jetson


def _import(name: str):
    """Import ``name``; ImportError (or any error raised while importing) propagates."""
    return importlib.import_module(name)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _probe(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one probe; any exception becomes ``{"available": False, "reason": ...}``."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the doctor must report, never crash
        return {"available": False, "reason": _reason(exc)}


def _package_version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


# ----------------------------------------------------------------------------- probes


def probe_python() -> dict[str, Any]:
    from spot_edge import __version__

    jetson = None
    tegra = Path("/etc/nv_tegra_release")
    if tegra.is_file():
        try:
            jetson = tegra.read_text(errors="replace").splitlines()[0].strip()
        except OSError:
            jetson = "unknown L4T release"
    return {"available": True, "version": platform.python_version(), "executable": sys.executable,
            "spot_edge": __version__, "platform": platform.platform(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "jetson": jetson}


def probe_torch() -> dict[str, Any]:
    torch = _import("torch")
    out: dict[str, Any] = {"available": True, "version": torch.__version__, "cuda_build": torch.version.cuda,
                           "cuda_available": False, "devices": [], "threads": torch.get_num_threads()}
    try:
        out["cuda_available"] = bool(torch.cuda.is_available())
        if out["cuda_available"]:
            out["cudnn"] = torch.backends.cudnn.version()
            for i in range(torch.cuda.device_count()):
                p = torch.cuda.get_device_properties(i)
                out["devices"].append({"index": i, "name": p.name, "compute_capability": f"{p.major}.{p.minor}",
                                       "memory_gib": round(p.total_memory / 2**30, 2),
                                       "multiprocessors": p.multi_processor_count})
        else:
            out["cuda_reason"] = ("this PyTorch build has no CUDA" if torch.version.cuda is None
                                  else "PyTorch has CUDA but sees no GPU (driver missing or no device)")
    except Exception as exc:  # noqa: BLE001 - a broken driver must not stop the report
        out["cuda_reason"] = _reason(exc)
    return out


def probe_tensorrt() -> dict[str, Any]:
    trt = _import("tensorrt")
    return {"available": True, "version": getattr(trt, "__version__", None)}


def probe_onnxruntime() -> dict[str, Any]:
    ort = _import("onnxruntime")
    return {"available": True, "version": getattr(ort, "__version__", None),
            "providers": list(ort.get_available_providers()), "device": ort.get_device()}


def probe_triton() -> dict[str, Any]:
    triton = _import("triton")
    return {"available": True, "version": getattr(triton, "__version__", None)}


def probe_cuda_python() -> dict[str, Any]:
    try:
        module = _import("cuda.bindings")
    except ImportError:
        module = _import("cuda")
    version = _package_version("cuda-python") or getattr(module, "__version__", None)
    return {"available": True, "version": version, "module": module.__name__}


def probe_faiss() -> dict[str, Any]:
    faiss = _import("faiss")
    gpus = 0
    if hasattr(faiss, "get_num_gpus"):
        try:
            gpus = int(faiss.get_num_gpus())
        except Exception:  # noqa: BLE001
            gpus = 0
    return {"available": True, "version": getattr(faiss, "__version__", None), "gpus": gpus}


def opencv_video_backends(build_information: str) -> dict[str, bool]:
    """``{"GStreamer": True, "FFMPEG": True, ...}`` from ``cv2.getBuildInformation()`` text
    (the "Video I/O" section's ``NAME: YES ...`` / ``NAME: NO`` lines)."""
    found: dict[str, bool] = {}
    in_video = False
    for line in build_information.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent < 4:   # a section title ("  Video I/O:") or a top-level line ends the section
            in_video = stripped.rstrip(":").strip().lower() == "video i/o"
            continue
        if in_video and ":" in stripped:
            name, _, value = stripped.partition(":")
            value = value.strip().upper()
            if value.startswith(("YES", "NO")) or value[:1].isdigit():
                found[name.strip()] = not value.startswith("NO")
    return found


def probe_opencv() -> dict[str, Any]:
    cv2 = _import("cv2")
    video = opencv_video_backends(cv2.getBuildInformation())
    cuda_devices = 0
    try:
        cuda_devices = int(cv2.cuda.getCudaEnabledDeviceCount())
    except Exception:  # noqa: BLE001 - no CUDA module in the wheel
        cuda_devices = 0
    return {"available": True, "version": cv2.__version__, "gstreamer": bool(video.get("GStreamer", False)),
            "ffmpeg": bool(video.get("FFMPEG", False)), "video_io": video, "cuda_devices": cuda_devices}


def _trt_plugin_library() -> str | None:
    """The TensorRT plugin library beside the CUDA kernel library, where ``spot-edge kernels build``
    puts both, or None."""
    from spot_edge.kernels import cuda_ops
    from spot_edge.kernels.build import PLUGIN_LIBRARY_FILE

    for folder in dict.fromkeys(p.parent for p in cuda_ops.library_candidates()):
        if (folder / PLUGIN_LIBRARY_FILE).is_file():
            return str(folder / PLUGIN_LIBRARY_FILE)
    return None


def probe_kernels() -> dict[str, Any]:
    from spot_edge import kernels
    from spot_edge.kernels import cuda_ops

    out: dict[str, Any] = {"available": True,
                           "cuda_library_candidates": [str(p) for p in cuda_ops.library_candidates()]}
    try:
        out["cuda_library"] = cuda_ops.library_path()
        out["cuda_library_reason"] = cuda_ops.unavailable_reason()
    except Exception as exc:  # noqa: BLE001 - a library that fails to load is reported, not raised
        out["cuda_library"] = None
        out["cuda_library_reason"] = _reason(exc)
    out["trt_plugin_library"] = _trt_plugin_library()
    device = "cuda" if _torch_cuda() else "cpu"
    out["backends"] = list(kernels.available_backends(device))
    out["backends_device"] = device
    out["triton_reason"] = kernels.triton_unavailable_reason(None)
    out["auto"] = kernels.auto_backends_for_spot(device)  # the kernels' own auto rule, at SPOT's shapes
    return out


def _torch_cuda() -> bool:
    try:
        torch = _import("torch")
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


PROBES: dict[str, Callable[[], dict[str, Any]]] = {
    "python": probe_python,
    "torch": probe_torch,
    "tensorrt": probe_tensorrt,
    "onnxruntime": probe_onnxruntime,
    "triton": probe_triton,
    "cuda_python": probe_cuda_python,
    "faiss": probe_faiss,
    "opencv": probe_opencv,
    "kernels": probe_kernels,
}


# ----------------------------------------------------------------------------- defaults


#: What a user points the embedder at, and a name of that kind for :func:`spot_edge.backends.resolve_backend`.
SOURCE_KINDS = {"tensorrt_engine": "model.engine", "onnx_model": "model.onnx", "checkpoint": "model.safetensors"}


def _embedder_choices(report: dict[str, Any], cuda: bool, providers: list[str]) -> dict[str, dict[str, Any]]:
    """Per kind of source: the backend ``create_embedder(source)`` picks (the backends' one auto
    rule, :func:`spot_edge.backends.resolve_backend`) and whether it can run here."""
    from spot_edge.backends import resolve_backend

    choices = {}
    for kind, example in SOURCE_KINDS.items():
        backend = resolve_backend(example, "auto")
        if backend == "tensorrt":
            trt = bool(report.get("tensorrt", {}).get("available"))
            runs = trt and cuda
            detail = "on the GPU" if runs else ("needs a CUDA GPU" if trt else "needs the tensorrt package and a "
                                                "CUDA GPU: pip install 'spot-edge[tensorrt]'")
        elif backend == "onnxruntime":
            runs = bool(providers)
            detail = (", ".join(_onnxruntime_providers(providers)) if runs
                      else "needs onnxruntime: pip install onnxruntime")
        else:
            runs = bool(report.get("torch", {}).get("available"))
            detail = ("on CUDA" if cuda else "on the CPU") if runs else "needs PyTorch: pip install torch"
        choices[kind] = {"backend": backend, "runs_here": runs, "detail": detail}
    return choices


def _onnxruntime_providers(available: list[str]) -> list[str]:
    """The providers ``spot_edge.backends`` asks ONNX Runtime for with ``device="auto"``."""
    from spot_edge.backends.onnxruntime_backend import choose_providers

    return list(choose_providers("auto", available))


def resolve_defaults(report: dict[str, Any]) -> dict[str, Any]:
    """What the ``"auto"`` settings choose on this machine, with reasons."""
    torch_info = report.get("torch", {})
    cuda = bool(torch_info.get("available") and torch_info.get("cuda_available"))
    ort = report.get("onnxruntime", {})
    providers = ort.get("providers", []) if ort.get("available") else []
    defaults: dict[str, Any] = {"device": "cuda" if cuda else "cpu"}

    if providers:
        defaults["onnxruntime_providers"] = _onnxruntime_providers(providers)
    defaults["embedder_by_source"] = _embedder_choices(report, cuda, providers)

    kernels = report.get("kernels", {})
    auto = kernels.get("auto") if kernels.get("available") else None
    auto = auto or {"attention": "reference", "part_pool": "reference"}
    reason = ("what the kernels' auto rule picks at SPOT's shapes in fp16 (part pooling: "
              f"{auto['part_pool']})" if cuda else "plain PyTorch operators (no CUDA GPU)")
    defaults["kernels"] = {"backend": auto["attention"], "part_pool": auto["part_pool"], "reason": reason}

    defaults["pose"] = {"device": "cuda" if cuda else "cpu"}
    faiss = bool(report.get("faiss", {}).get("available"))
    defaults["gallery_search"] = {"backend": "faiss for large galleries, numpy otherwise" if faiss else "numpy",
                                  "reason": "faiss is installed" if faiss else "faiss is not installed (exact "
                                                                               "numpy search; pip install faiss-cpu "
                                                                               "for large galleries)"}
    opencv = report.get("opencv", {})
    defaults["camera_input"] = ("OpenCV with GStreamer (CSI/RTSP pipelines)" if opencv.get("gstreamer")
                                else "OpenCV without GStreamer (files, USB cameras, RTSP via FFmpeg)"
                                if opencv.get("available") else "unavailable: OpenCV is not installed")
    return defaults


def collect() -> dict[str, Any]:
    """Run every probe and resolve the defaults; never raises."""
    report = {name: _probe(fn) for name, fn in PROBES.items()}
    report["jetson"] = _probe(lambda: jetson.probe(report))
    try:
        report["defaults"] = resolve_defaults(report)
    except Exception as exc:  # noqa: BLE001
        report["defaults"] = {"error": _reason(exc)}
    return report


def summary_rows(report: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """``(component, available, detail)`` rows for a human-readable table."""
    rows: list[tuple[str, bool, str]] = []
    py = report.get("python", {})
    rows.append(("Python", bool(py.get("available")), f"{py.get('version', '?')} ({py.get('executable', '?')}), "
                 f"spot-edge {py.get('spot_edge', '?')}" + (f", Jetson: {py['jetson']}" if py.get("jetson") else "")))
    rows.extend(jetson.summary_rows(report.get("jetson", {})))
    t = report.get("torch", {})
    if t.get("available"):
        detail = f"{t['version']}, CUDA build {t.get('cuda_build') or 'none'}"
        rows.append(("PyTorch", True, detail))
        if t.get("cuda_available"):
            for d in t.get("devices", []):
                rows.append((f"GPU {d['index']}", True, f"{d['name']}, compute capability {d['compute_capability']}, "
                             f"{d['memory_gib']} GiB"))
        else:
            rows.append(("CUDA GPU", False, t.get("cuda_reason", "not available")))
    else:
        rows.append(("PyTorch", False, t.get("reason", "not installed")))
    for key, label in (("tensorrt", "TensorRT"), ("onnxruntime", "ONNX Runtime"), ("triton", "Triton"),
                       ("cuda_python", "cuda-python"), ("faiss", "faiss"), ("opencv", "OpenCV")):
        info = report.get(key, {})
        if info.get("available"):
            detail = str(info.get("version") or "installed")
            if key == "onnxruntime":
                detail += ", providers: " + ", ".join(info.get("providers", []))
            if key == "opencv":
                detail += f", GStreamer: {'yes' if info.get('gstreamer') else 'no'}"
            if key == "faiss" and info.get("gpus"):
                detail += f", {info['gpus']} GPU(s)"
            rows.append((label, True, detail))
        else:
            rows.append((label, False, info.get("reason", "not installed")))
    k = report.get("kernels", {})
    if k.get("available"):
        rows.append(("CUDA kernel library", bool(k.get("cuda_library")),
                     k.get("cuda_library") or k.get("cuda_library_reason") or "not built"))
        rows.append(("TensorRT plugin library", bool(k.get("trt_plugin_library")),
                     k.get("trt_plugin_library") or "not built (spot-edge kernels build --tensorrt-root ...)"))
        rows.append(("kernel backends", True, ", ".join(k.get("backends", ["reference"]))))
    else:
        rows.append(("spot_edge.kernels", False, k.get("reason", "unavailable")))
    return rows


__all__ = ["collect", "resolve_defaults", "summary_rows", "opencv_video_backends", "PROBES", "SOURCE_KINDS"]
