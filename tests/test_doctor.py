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
    assert set(d["embedder_by_source"]) == set(doctor.SOURCE_KINDS)
    assert d["kernels"]["backend"] in ("reference", "triton", "cuda")
    from spot_edge.kernels import auto_backends_for_spot  # the doctor reports the kernels' own rule

    assert report["kernels"]["auto"] == auto_backends_for_spot(d["device"])
    assert d["kernels"]["backend"] == report["kernels"]["auto"]["attention"]
    assert {row[0] for row in summary_rows(report)} >= {"Python", "PyTorch", "TensorRT", "ONNX Runtime", "OpenCV"}


@pytest.mark.parametrize("missing", [
    ("tensorrt", "onnxruntime", "triton", "cuda", "cuda.bindings", "faiss", "cv2", "torch"),
    ("tensorrt", "onnxruntime", "triton", "cuda", "cuda.bindings", "faiss", "cv2", "torch", "spot_edge.backends"),
])
def test_missing_packages_never_crash(monkeypatch, missing):
    for name in missing:
        monkeypatch.setitem(sys.modules, name, None)      # makes `import name` raise ImportError
    report = collect()
    json.dumps(report)
    for name in ("tensorrt", "onnxruntime", "triton", "cuda_python", "faiss", "opencv", "torch"):
        assert report[name]["available"] is False and "Error" in report[name]["reason"], name
    defaults = report["defaults"]
    if "spot_edge.backends" in missing:
        assert "Error" in defaults["error"]
    else:
        assert defaults["device"] == "cpu"
        by_source = defaults["embedder_by_source"]
        assert not any(choice["runs_here"] for choice in by_source.values())
        assert "pip install" in by_source["onnx_model"]["detail"]
    assert summary_rows(report)


def test_broken_package_is_reported(monkeypatch):
    broken = types.ModuleType("onnxruntime")
    broken.__version__ = "0.0"

    def fail():
        raise RuntimeError("provider library corrupt")

    broken.get_available_providers = fail
    monkeypatch.setitem(sys.modules, "onnxruntime", broken)
    monkeypatch.setitem(doctor.PROBES, "tensorrt", lambda: 1 / 0)
    report = collect()
    assert report["onnxruntime"] == {"available": False, "reason": "RuntimeError: provider library corrupt"}
    assert report["tensorrt"]["available"] is False and "ZeroDivisionError" in report["tensorrt"]["reason"]


def _report(cuda, trt, ort, torch_ok):
    return {"torch": {"available": torch_ok, "cuda_available": cuda}, "tensorrt": {"available": trt},
            "onnxruntime": {"available": ort, "providers": ["CPUExecutionProvider"] if ort else []},
            "kernels": {"available": True, "backends": ["reference", "triton"] if cuda else ["reference"],
                        "auto": {"attention": "triton" if cuda else "reference", "part_pool": "reference"}},
            "faiss": {"available": False}, "opencv": {"available": True, "gstreamer": True}}


@pytest.mark.parametrize("cuda,trt,ort,torch_ok,runs", [
    (True, True, True, True, {"tensorrt_engine": True, "onnx_model": True, "checkpoint": True}),
    (True, False, True, True, {"tensorrt_engine": False, "onnx_model": True, "checkpoint": True}),
    (False, True, True, True, {"tensorrt_engine": False, "onnx_model": True, "checkpoint": True}),
    (False, False, False, True, {"tensorrt_engine": False, "onnx_model": False, "checkpoint": True}),
    (False, False, False, False, {"tensorrt_engine": False, "onnx_model": False, "checkpoint": False}),
])
def test_embedder_choice_per_source_kind(cuda, trt, ort, torch_ok, runs):
    from spot_edge.backends import resolve_backend

    d = resolve_defaults(_report(cuda, trt, ort, torch_ok))
    for kind, choice in d["embedder_by_source"].items():
        assert choice["backend"] == resolve_backend(doctor.SOURCE_KINDS[kind]), kind   # the backends' rule
        assert choice["runs_here"] is runs[kind], kind
        assert choice["detail"]
    assert d["device"] == ("cuda" if cuda else "cpu")
    assert d["kernels"]["backend"] == ("triton" if cuda else "reference")
    assert "GStreamer" in d["camera_input"]


def test_doctor_follows_the_backends_auto_rule(monkeypatch):
    """doctor has no auto rule of its own: what spot_edge.backends.resolve_backend says is reported."""
    import spot_edge.backends

    monkeypatch.setattr(spot_edge.backends, "resolve_backend", lambda source, backend="auto": "onnxruntime")
    d = resolve_defaults(_report(False, False, True, True))
    assert {c["backend"] for c in d["embedder_by_source"].values()} == {"onnxruntime"}


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


def test_cli_doctor(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from spot_edge.cli.doctor import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(COMPONENTS) <= set(report) and "defaults" in report
    table = CliRunner().invoke(app, [], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "ONNX Runtime" in table.output and "defaults" in table.output
    assert "pip install 'spot-edge[tensorrt]'" in table.output or report["tensorrt"]["available"]
