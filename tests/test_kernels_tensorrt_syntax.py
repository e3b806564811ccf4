"""The TensorRT plugin sources compile against the REAL TensorRT public headers (10.3 = JetPack 6,
10.16, 11.1; from ``../shared/third_party/tensorrt`` or ``$SPOT_EDGE_TENSORRT_HEADERS``), every
plugin and creator class is concrete (``static_assert(!std::is_abstract<...>)`` in
``kernels/tensorrt/plugin_base.h``), and a smoke driver exercises the plugins through those
headers. No libnvinfer here: compile only, with test doubles for what the library would provide
(``tests/tensorrt_double/``); TensorRT's parser, builder and runtime are not exercised."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import kernels_build

ROOT = kernels_build.ROOT
TRT_DIR = ROOT / "kernels" / "tensorrt"
SOURCES = sorted(TRT_DIR.glob("*.cpp"))
CUDA_INCLUDE = kernels_build.cuda_include()

pytestmark = [
    pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++"),
    pytest.mark.skipif(CUDA_INCLUDE is None, reason="needs the CUDA headers (cuda_runtime_api.h)"),
]


def _include(version: str):
    include = kernels_build.tensorrt_include(version)
    if include is None:
        pytest.skip(f"the real TensorRT {version} headers are not available (set {kernels_build.HEADERS_ENV})")
    return include


def _flags(version: str) -> list[str]:
    return ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
            "-isystem", str(_include(version)), f"-I{TRT_DIR}", f"-I{ROOT / 'kernels' / 'cuda'}",
            "-isystem", str(CUDA_INCLUDE)]


def test_plugin_sources_are_present():
    names = {p.name for p in SOURCES}
    assert {"structure_attention_plugin.cpp", "part_pool_plugin.cpp", "plugin_registration.cpp"} <= names


@pytest.mark.parametrize("version", kernels_build.TENSORRT_VERSIONS)
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_plugin_source_compiles_against_real_headers(source, version):
    proc = subprocess.run(["g++", "-fsyntax-only", *_flags(version), str(source)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_an_abstract_plugin_is_refused_at_compile_time(tmp_path):
    """The concreteness check can fail: a plugin missing enqueue does not compile."""
    source = (TRT_DIR / "part_pool_plugin.cpp").read_text()
    start = source.index("    int32_t enqueue(")
    end = source.index("};\n\n}  // namespace")
    broken = tmp_path / "part_pool_plugin.cpp"
    broken.write_text(source[:start] + source[end:])
    proc = subprocess.run(["g++", "-fsyntax-only", *_flags("10.3"), str(broken)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "abstract" in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize("version", ["10.3", "11.1"])
def test_plugin_smoke_driver_against_real_headers(tmp_path, version):
    """Builds the plugins with tests/tensorrt_double/plugin_smoke_test.cpp (recording stubs of the
    kernels' C API and of the plugin registry) and runs it: creator metadata, attribute parsing,
    shapes, types, formats, serialisation, enqueue arguments, registration, version entry points."""
    exe = tmp_path / "plugin_smoke"
    flags = [f for f in _flags(version) if f != "-Werror"]
    proc = subprocess.run(["g++", *flags, f'-DEXPECTED_TENSORRT_VERSION="{version}"',
                           str(kernels_build.DOUBLES / "plugin_smoke_test.cpp"), *map(str, SOURCES), "-o", str(exe)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and "all checks passed" in run.stdout, run.stdout + run.stderr
