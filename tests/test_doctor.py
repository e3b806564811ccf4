"""Doctor: report fields, default backend choice, and no crash when packages are missing or broken."""

from __future__ import annotations

import json
import sys
import types

import pytest

import spot_edge.doctor as doctor
from spot_edge.doctor import collect, opencv_video_backends, resolve_defaults, summary_rows

COMPONENTS = ("python", "torch", "tensorrt", "onnxruntime", "triton", "cuda_python", "faiss", "opencv", "kernels")


def test_report_fields():
    report = collect()
    json.dumps(report)
    for name in COMPONENTS:
        assert isinstance(report[name]["available"], bool), name
        if not report[name]["available"]:
            assert report[name]["reason"], name
    assert report["python"]["version"].count(".") == 2 and report["python"]["spot_edge"]
    torch_info = report["torch"]
    assert torch_info["available"] and isinstance(torch_info["cuda_available"], bool)
    if torch_info["cuda_available"]:
        assert torch_info["devices"][0]["compute_capability"]
    ort = report["onnxruntime"]
    assert ort["available"] and "CPUExecutionProvider" in ort["providers"]
    assert isinstance(report["opencv"]["gstreamer"], bool)
    assert "reference" in report["kernels"]["backends"]
    d = report["defaults"]
    assert d["device"] in ("cpu", "cuda")
    assert d["embedder"]["backend"] and d["embedder"]["reason"]
    assert d["kernels"]["backend"] in ("reference", "triton", "cuda")
    assert {row[0] for row in summary_rows(report)} >= {"Python", "PyTorch", "TensorRT", "ONNX Runtime", "OpenCV"}


def test_missing_packages_never_crash(monkeypatch):
    for name in ("tensorrt", "onnxruntime", "triton", "cuda", "cuda.bindings", "faiss", "cv2", "torch",
                 "spot_edge.backends"):
        monkeypatch.setitem(sys.modules, name, None)      # makes `import name` raise ImportError
    report = collect()
    json.dumps(report)
    for name in ("tensorrt", "onnxruntime", "triton", "cuda_python", "faiss", "opencv", "torch"):
        assert report[name]["available"] is False and "Error" in report[name]["reason"], name
    assert report["defaults"]["embedder"]["backend"] is None
    assert "pip install" in report["defaults"]["embedder"]["reason"]
    assert report["defaults"]["device"] == "cpu"
    assert summary_rows(report)


def test_broken_package_is_reported(monkeypatch):
    broken = types.ModuleType("onnxruntime")
    broken.__version__ = "0.0"

    def fail():
        raise RuntimeError("provider library corrupt")

    broken.get_available_providers = fail
    monkeypatch.setitem(sys.modules, "onnxruntime", broken)
    exploding = types.ModuleType("tensorrt")
    monkeypatch.setitem(sys.modules, "tensorrt", exploding)
    monkeypatch.setattr(doctor, "probe_tensorrt", lambda: 1 / 0)
    monkeypatch.setitem(doctor.PROBES, "tensorrt", doctor.probe_tensorrt)
    report = collect()
    assert report["onnxruntime"] == {"available": False, "reason": "RuntimeError: provider library corrupt"}
    assert report["tensorrt"]["available"] is False and "ZeroDivisionError" in report["tensorrt"]["reason"]


@pytest.mark.parametrize("cuda,trt,ort,torch_ok,expected", [
    (True, True, True, True, "tensorrt"),
    (True, False, True, True, "pytorch"),
    (False, True, True, True, "onnxruntime"),
    (False, False, False, True, "pytorch"),
    (False, False, False, False, None),
])
def test_default_embedder_choice(monkeypatch, cuda, trt, ort, torch_ok, expected):
    monkeypatch.setattr(doctor, "_backends_module_choice", lambda: None)
    report = {"torch": {"available": torch_ok, "cuda_available": cuda}, "tensorrt": {"available": trt},
              "onnxruntime": {"available": ort, "providers": ["CPUExecutionProvider"] if ort else []},
              "kernels": {"available": True, "backends": ["reference", "triton"] if cuda else ["reference"]},
              "faiss": {"available": False}, "opencv": {"available": True, "gstreamer": True}}
    d = resolve_defaults(report)
    assert d["embedder"]["backend"] == expected
    assert d["device"] == ("cuda" if cuda else "cpu")
    assert d["kernels"]["backend"] == ("triton" if cuda else "reference")
    assert "GStreamer" in d["camera_input"]


def test_backends_module_decides_when_present(monkeypatch):
    fake = types.ModuleType("spot_edge.backends")
    fake.resolve_backend = lambda name: "onnxruntime-cuda"
    monkeypatch.setitem(sys.modules, "spot_edge.backends", fake)
    d = resolve_defaults({"torch": {"available": True, "cuda_available": False}})
    assert d["embedder"] == {"backend": "onnxruntime-cuda", "reason": "spot_edge.backends.resolve_backend()"}


BUILD_INFO = """
General configuration for OpenCV 4.10.0 =====================================
  Version control:               4.10.0

  Video I/O:
    DC1394:                      NO
    FFMPEG:                      YES
      avcodec:                   YES (58.134.100)
    GStreamer:                   YES (1.20.3)
    v4l/v4l2:                    YES (linux/videodev2.h)

  Parallel framework:            pthreads

  Trace:                         YES (with Intel ITT)
"""


def test_opencv_build_information_parsing():
    found = opencv_video_backends(BUILD_INFO)
    assert found["GStreamer"] is True and found["FFMPEG"] is True and found["DC1394"] is False
    assert "Trace" not in found and "Parallel framework" not in found
    assert opencv_video_backends(BUILD_INFO.replace("YES (1.20.3)", "NO"))["GStreamer"] is False
    assert opencv_video_backends("") == {}


def test_cli_doctor_json():
    import typer
    from typer.testing import CliRunner

    from spot_edge.cli.doctor import doctor as doctor_command

    app = typer.Typer()
    app.command("doctor")(doctor_command)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(COMPONENTS) <= set(report) and "defaults" in report
    table = CliRunner().invoke(app, ["doctor"])
    assert table.exit_code == 0 and "ONNX Runtime" in table.output and "defaults" in table.output


def test_embedder_choice_per_source_kind(monkeypatch):
    monkeypatch.setattr(doctor, "_backends_module_choice", lambda: None)
    d = resolve_defaults({"torch": {"available": True, "cuda_available": True}, "tensorrt": {"available": True},
                          "onnxruntime": {"available": True, "providers": ["CUDAExecutionProvider",
                                                                            "CPUExecutionProvider"]}})
    by_source = d["embedder_by_source"]
    assert by_source["tensorrt_engine"] == "tensorrt"
    assert by_source["onnx_model"] == "onnxruntime (CUDAExecutionProvider, CPUExecutionProvider)"
    assert by_source["checkpoint_or_model"] == "pytorch on CUDA"
