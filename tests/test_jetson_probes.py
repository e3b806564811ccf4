"""``spot_edge.jetson``: a Jetson recognised from its files and commands (faked in a temporary
root), and the advice, each with its fix, when the Python stack is not JetPack's (faked doctor
probes: modules replaced in ``sys.modules``)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from spot_edge import doctor, jetson

TEGRA_R36_4_3 = ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
                 "DATE: Wed Jan  8 01:49:37 UTC 2025\n# KERNEL_VARIANT: oot\nTARGET_USERSPACE_LIB_DIR=nvidia\n")
DPKG_STATUS = ("Package: nvidia-l4t-core\nStatus: install ok installed\nVersion: 36.4.3-20250107174145\n\n"
               "Package: nvidia-jetpack\nStatus: install ok installed\nArchitecture: arm64\n"
               "Version: 6.2+b77\nDepends: nvidia-jetpack-runtime (= 6.2+b77)\n\n")
NVPMODEL_CONF = ("< PARAM TYPE=FILE NAME=CPU_ONLINE >\n< POWER_MODEL ID=0 NAME=15W >\nCPU_ONLINE CORE_0 1\n"
                 "< POWER_MODEL ID=1 NAME=25W >\n< POWER_MODEL ID=2 NAME=MAXN_SUPER >\n"
                 "< PM_CONFIG DEFAULT=2 >\n")


def orin_nano(root: Path, tegra: str = TEGRA_R36_4_3, dpkg: bool = True) -> Path:
    """A JetPack 6.2 Orin Nano 8GB's files under ``root``."""
    files = {
        "etc/nv_tegra_release": tegra,
        "proc/device-tree/model": "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00",
        "proc/device-tree/compatible": "nvidia,p3768-0000+p3767-0005-super\x00nvidia,tegra234\x00",
        "etc/apt/sources.list.d/nvidia-l4t-apt-source.list": "deb https://repo.example/jetson/common r36.4 main\n",
        "proc/meminfo": "MemTotal:        7801036 kB\nMemFree:          123456 kB\n",
        "etc/nvpmodel.conf": NVPMODEL_CONF,
        "var/lib/nvpmodel/status": "pmode:0001 fmode:quiet\n",
    }
    if dpkg:
        files["var/lib/dpkg/status"] = DPKG_STATUS
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def nvpmodel(output: str | None):
    """A fake command runner: ``nvpmodel -q`` prints ``output`` (None: the command fails)."""
    return lambda argv: output if list(argv) == ["nvpmodel", "-q"] else None


JETPACK_STACK = {
    "torch": {"available": True, "version": "2.5.0a0+872d972e41.nv24.08", "cuda_build": "12.6",
              "cuda_available": True},
    "tensorrt": {"available": True, "version": "10.3.0"},
    "opencv": {"available": True, "version": "4.8.0", "gstreamer": True},
}


def facts(root: Path, **kw) -> jetson.JetsonFacts:
    kw.setdefault("distributions", {})
    kw.setdefault("python", "3.10.12")
    kw.setdefault("in_venv", False)
    return jetson.read_facts(root, run=kw.pop("run", nvpmodel("NV Power Mode: 15W\n0\n")), **kw)


def test_orin_nano_is_recognised(tmp_path):
    f = facts(orin_nano(tmp_path))
    assert f.is_jetson and f.l4t == "36.4.3" and f.jetpack == "6.2" and f.jetpack_source == "dpkg"
    assert f.model.startswith("NVIDIA Jetson Orin Nano") and "\x00" not in f.model
    assert f.apt_release == "r36.4" and f.memory_gib == 7.4
    assert (f.power_mode, f.power_mode_id) == ("15W", 0)
    assert (f.max_power_mode, f.max_power_mode_id) == ("MAXN_SUPER", 2)
    result = jetson.assess(f, JETPACK_STACK)
    assert result["is_jetson"] and result["findings"]["jetpack"] == "6.2"
    assert [a["severity"] for a in result["advice"]] == ["info"]  # only: not the fastest power mode
    assert "nvpmodel -m 2" in result["advice"][0]["fix"]


def test_power_mode_from_the_status_file_when_nvpmodel_cannot_run(tmp_path):
    f = facts(orin_nano(tmp_path), run=nvpmodel(None))
    assert (f.power_mode, f.power_mode_id) == ("25W", 1)


def test_jetpack_from_the_l4t_release_without_the_package(tmp_path):
    f = facts(orin_nano(tmp_path, dpkg=False))
    assert (f.jetpack, f.jetpack_source) == ("6.2", "L4T table")
    f = facts(orin_nano(tmp_path / "other", tegra="# R36 (release), REVISION: 9.1, GCID: 1\n", dpkg=False))
    assert f.l4t == "36.9.1" and f.jetpack == "6.x"


def test_not_a_jetson_gives_no_advice(tmp_path):
    f = facts(tmp_path)  # an empty root: an ordinary machine
    cpu_stack = {"torch": {"available": True, "version": "2.14.1", "cuda_build": None},
                 "tensorrt": {"available": False, "reason": "ModuleNotFoundError"},
                 "opencv": {"available": True, "version": "4.12", "gstreamer": False}}
    assert not f.is_jetson
    assert jetson.assess(f, cpu_stack) == {"is_jetson": False, "findings": {}, "advice": []}
    assert jetson.summary_rows(jetson.assess(f, cpu_stack)) == []


def _stack(**changes):
    stack = json.loads(json.dumps(JETPACK_STACK))
    for path, value in changes.items():
        section, key = path.split("__")
        stack[section][key] = value
    return stack


# (id, facts overrides, stack, severity, problem regex, fix regex)
PROBLEMS = [
    ("pip-opencv-shadows-jetpack", {"distributions": {"opencv-python-headless": "4.12.0.88"}},
     _stack(opencv__gstreamer=False), "error", "no GStreamer.*opencv-python-headless",
     "pip uninstall -y opencv-python-headless"),
    ("opencv-without-gstreamer", {}, _stack(opencv__gstreamer=False), "error", "no GStreamer",
     "apt install nvidia-opencv"),
    ("opencv-broken-by-numpy-2", {}, {**JETPACK_STACK, "opencv": {
        "available": False, "reason": "ImportError: A module that was compiled using NumPy 1.x cannot be run in "
                                      "NumPy 2.2.6"}}, "error", "cv2 cannot be imported", "numpy<2"),
    ("cpu-torch-from-pypi", {}, _stack(torch__cuda_build=None, torch__version="2.14.1"), "error", "CPU-only",
     "pip uninstall -y torch torchvision.*install-pytorch-jetson"),
    ("torch-sees-no-gpu", {}, _stack(torch__cuda_available=False, torch__cuda_reason="no device"), "warning",
     "sees no GPU", "usermod -aG video,render"),
    ("torch-too-old", {}, _stack(torch__version="2.3.0"), "error", "torch >= 2.4", "JetPack 6.1"),
    ("no-torch", {}, {**JETPACK_STACK, "torch": {"available": False, "reason": "ModuleNotFoundError"}},
     "error", "PyTorch cannot be imported", "NVIDIA's PyTorch wheels"),
    ("no-tensorrt", {}, {**JETPACK_STACK, "tensorrt": {"available": False, "reason": "ModuleNotFoundError"}},
     "error", "TensorRT", "python3-libnvinfer"),
    ("python-3-11-on-jetpack-6", {"python": "3.11.9"}, JETPACK_STACK, "error", "Python 3.11.9",
     "/usr/bin/python3 -m venv --system-site-packages"),
    ("jetpack-5", {"tegra": "# R35 (release), REVISION: 5.0, GCID: 1\n", "dpkg": False}, JETPACK_STACK, "error",
     r"L4T 35.5.0 \(JetPack 5.1.3\) is not supported", "flash JetPack 6"),
]


@pytest.mark.parametrize("overrides,stack,severity,problem,fix", [p[1:] for p in PROBLEMS],
                         ids=[p[0] for p in PROBLEMS])
def test_advice_with_its_fix(tmp_path, overrides, stack, severity, problem, fix):
    import re

    files = {k: overrides.pop(k) for k in ("tegra", "dpkg") if k in overrides}
    result = jetson.assess(facts(orin_nano(tmp_path, **files), **overrides), stack)
    found = [a for a in result["advice"] if a["severity"] != "info"]
    assert len(found) == 1, found
    assert found[0]["severity"] == severity
    assert re.search(problem, found[0]["problem"]) and re.search(fix, found[0]["fix"]), found[0]


def test_venv_without_system_site_packages(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.10.12\n")
    trt_missing = {**JETPACK_STACK, "tensorrt": {"available": False, "reason": "ModuleNotFoundError"}}
    result = jetson.assess(facts(orin_nano(tmp_path / "root"), in_venv=True, venv_prefix=venv), trt_missing)
    problems = [a for a in result["advice"] if a["severity"] == "error"]
    assert any("does not see JetPack's system packages" in a["problem"] and "--system-site-packages" in a["fix"]
               for a in problems)
    assert any("--system-site-packages" in a["fix"] for a in problems if "TensorRT" in a["problem"])
    (venv / "pyvenv.cfg").write_text("include-system-site-packages = true\n")
    result = jetson.assess(facts(orin_nano(tmp_path / "root"), in_venv=True, venv_prefix=venv), JETPACK_STACK)
    assert [a["severity"] for a in result["advice"]] == ["info"]


# ----------------------------------------------------------------------------- through the doctor's probes

VIDEO_IO = """General configuration for OpenCV 4.8.0 =====================================
  Video I/O:
    DC1394:                      NO
    FFMPEG:                      YES
      avcodec:                   YES (58.54.100)
    GStreamer:                   {gst}
    v4l/v4l2:                    YES (linux/videodev2.h)

  Parallel framework:            pthreads
"""


@pytest.mark.parametrize("gstreamer", [True, False], ids=["jetpack-opencv", "pip-opencv"])
def test_doctor_probes_feed_the_jetson_advice(tmp_path, monkeypatch, gstreamer):
    """cv2's build information (a faked module) -> the doctor's OpenCV probe -> the advice."""
    fake_cv2 = types.SimpleNamespace(__version__="4.8.0", cuda=None, getBuildInformation=lambda: VIDEO_IO.format(
        gst="YES (1.20.3)" if gstreamer else "NO"))
    fake_trt = types.SimpleNamespace(__version__="10.3.0")
    monkeypatch.setitem(sys.modules, "cv2", fake_cv2)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_trt)
    report = {"opencv": doctor.probe_opencv(), "tensorrt": doctor.probe_tensorrt(), "torch": JETPACK_STACK["torch"]}
    result = jetson.probe(report, root=orin_nano(tmp_path), run=nvpmodel("NV Power Mode: MAXN_SUPER\n2\n"),
                          python="3.10.12", in_venv=False,
                          distributions={} if gstreamer else {"opencv-python-headless": "4.12.0.88"})
    errors = jetson.advice_lines(result, severities=("error",))
    if gstreamer:
        assert errors == [] and result["advice"] == []
        assert jetson.summary_rows(result)[2][1] is True
    else:
        assert len(errors) == 1 and "GStreamer" in errors[0] and "; fix: " in errors[0]
        assert jetson.summary_rows(result)[2][1] is False
    json.dumps(result)  # the doctor's --json report stays serialisable
