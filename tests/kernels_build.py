"""One CMake build of the native kernels, shared by the kernel tests (a helper, not a test).

:func:`shared_build` configures and builds the repository's ``CMakeLists.txt`` once per checkout
into ``$TMPDIR/spot-edge-kernels-<hash of the checkout path>/`` for sm_87 and sm_90, with
``-DTENSORRT_ROOT`` pointing at a stub TensorRT root (the real 10.3 public headers and a stub
``libnvinfer.so`` from ``tests/tensorrt_double/``), so the plugin library configures, compiles and
links too. A file lock serialises test processes (pytest-xdist); CMake rebuilds only what changed,
so a second test session costs seconds. Also: where the real TensorRT headers are, and the CUDA
toolchain check.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
DOUBLES = ROOT / "tests" / "tensorrt_double"
ARCHITECTURES = "87;90"
HEADERS_ENV = "SPOT_EDGE_TENSORRT_HEADERS"
TENSORRT_VERSIONS = ("10.3", "10.16", "11.1")


def tensorrt_headers_root() -> Path | None:
    """The folder with ``<version>/include`` of the real TensorRT headers: ``$SPOT_EDGE_TENSORRT_HEADERS``,
    else ``shared/third_party/tensorrt`` beside the checkout."""
    env = os.environ.get(HEADERS_ENV)
    candidates = [Path(env)] if env else []
    candidates.append(ROOT.parent / "shared" / "third_party" / "tensorrt")
    return next((c for c in candidates if (c / "10.3" / "include" / "NvInfer.h").is_file()), None)


def tensorrt_include(version: str) -> Path | None:
    root = tensorrt_headers_root()
    if root is None:
        return None
    include = root / version / "include"
    return include if (include / "NvInferRuntime.h").is_file() else None


def cuda_include() -> Path | None:
    for candidate in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if candidate and (Path(candidate) / "include" / "cuda_runtime_api.h").is_file():
            return Path(candidate) / "include"
    return None


def toolchain_missing() -> str | None:
    """Why the kernels cannot be built here (``None``: cmake, nvcc and g++ are on PATH)."""
    missing = [tool for tool in ("cmake", "nvcc", "g++") if shutil.which(tool) is None]
    return f"needs {', '.join(missing)} on PATH" if missing else None


def cuobjdump() -> Path | None:
    """``cuobjdump`` (the CUDA toolkit's, else the one bundled with Triton)."""
    found = shutil.which("cuobjdump")
    if found:
        return Path(found)
    try:
        from triton import knobs
    except ImportError:
        return None
    path = Path(knobs.nvidia.cuobjdump.path)
    return path if path.is_file() else None


@dataclass(frozen=True)
class Build:
    directory: Path
    library: Path
    plugins: Path | None
    log: str              # configure + build output of this session's (possibly no-op) build


def _run(cmd: list[str], timeout: int) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{output[-6000:]}")
    return output


def _stub_tensorrt_root(directory: Path) -> Path | None:
    include = tensorrt_include("10.3")
    cuda = cuda_include()
    if include is None or cuda is None:
        return None
    root = directory / "tensorrt-stub"
    (root / "lib").mkdir(parents=True, exist_ok=True)
    link = root / "include"
    if not link.exists():
        link.symlink_to(include, target_is_directory=True)
    library = root / "lib" / "libnvinfer.so"
    if not library.is_file():
        _run(["g++", "-std=c++17", "-shared", "-fPIC", f"-I{include}", f"-I{cuda}",
              str(DOUBLES / "libnvinfer_stub.cpp"), "-o", str(library)], timeout=120)
    return root


def _directory() -> Path:
    key = hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"spot-edge-kernels-{key}"


def build_lock() -> FileLock:
    """Held while anything configures or builds in the shared build folder."""
    return FileLock(str(_directory()) + ".lock", timeout=1800)


@functools.lru_cache(maxsize=1)
def shared_build() -> Build:
    """Configure and build (incrementally) the kernels for sm_87 and sm_90; see the module doc."""
    directory = _directory()
    directory.mkdir(parents=True, exist_ok=True)
    with build_lock():
        stub = _stub_tensorrt_root(directory)
        configure = ["cmake", "-S", str(ROOT), "-B", str(directory / "build"),
                     f"-DCMAKE_CUDA_ARCHITECTURES={ARCHITECTURES}", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"]
        if shutil.which("ninja") and not (directory / "build" / "CMakeCache.txt").is_file():
            configure.append("-GNinja")
        if stub is not None:
            configure.append(f"-DTENSORRT_ROOT={stub}")
        log = _run(configure, timeout=300)
        log += _run(["cmake", "--build", str(directory / "build"), "-j", "2"], timeout=1200)
    build = directory / "build"
    plugins = build / "libspot_edge_trt_plugins.so"
    return Build(build, build / "libspot_edge_kernels.so", plugins if plugins.is_file() else None, log)
