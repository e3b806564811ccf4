"""Configure and build the native kernels (CUDA library, TensorRT plugins) with CMake.

Equivalent to::

    cmake -S <repo> -B <build_dir> -DCMAKE_CUDA_ARCHITECTURES="87;90" [-DTENSORRT_ROOT=...]
    cmake --build <build_dir> -j <jobs>
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from spot_edge.kernels.cuda_ops import LIBRARY_FILE

REPO_ROOT = Path(__file__).resolve().parent.parent
PLUGIN_LIBRARY_FILE = "libspot_edge_trt_plugins.so"
DEFAULT_ARCHITECTURES = "87;90"


class KernelBuildError(RuntimeError):
    """CMake or nvcc is missing, or the build failed (the message carries the log tail)."""


def _run(cmd: list[str], log: Callable[[str], None] | None) -> str:
    if log:
        log(" ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise KernelBuildError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{output[-4000:]}")
    return output


def build_kernels(build_dir: str | Path = REPO_ROOT / "build", architectures: str = DEFAULT_ARCHITECTURES,
                  tensorrt_root: str | Path | None = None, jobs: int = 2,
                  log: Callable[[str], None] | None = None) -> dict[str, Path | None]:
    """Build ``libspot_edge_kernels.so`` (and the TensorRT plugins when TensorRT is found).

    Args:
        build_dir: CMake build directory; ``build/`` at the repository root is where
            :mod:`spot_edge.kernels.cuda_ops` looks first.
        architectures: ``CMAKE_CUDA_ARCHITECTURES``, e.g. ``"87"`` (Orin), ``"90"`` (H100).
        tensorrt_root: TensorRT prefix (with ``include/NvInfer.h``); ``None`` skips the plugins
            unless CMake finds TensorRT in the system paths.
        jobs: parallel compile jobs.
        log: called with each command line (for progress output).

    Returns:
        ``{"kernels": path, "plugins": path or None}``.
    """
    missing = [tool for tool in ("cmake", "nvcc") if shutil.which(tool) is None]
    if missing:
        raise KernelBuildError(f"{' and '.join(missing)} not found on PATH: install the CUDA toolkit "
                               f"(nvcc) and CMake >= 3.24 to build the kernels")
    build_dir = Path(build_dir)
    configure = ["cmake", "-S", str(REPO_ROOT), "-B", str(build_dir),
                 f"-DCMAKE_CUDA_ARCHITECTURES={architectures}"]
    if tensorrt_root is not None:
        if not Path(tensorrt_root).is_dir():
            raise FileNotFoundError(f"TensorRT root {tensorrt_root} does not exist")
        configure.append(f"-DTENSORRT_ROOT={tensorrt_root}")
    _run(configure, log)
    _run(["cmake", "--build", str(build_dir), "-j", str(jobs)], log)
    kernels = build_dir / LIBRARY_FILE
    plugins = build_dir / PLUGIN_LIBRARY_FILE
    if not kernels.is_file():
        raise KernelBuildError(f"the build finished but {kernels} is missing")
    return {"kernels": kernels, "plugins": plugins if plugins.is_file() else None}
