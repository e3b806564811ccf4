"""The pose network on SPOT's path: one fp16 converter and one metadata writer for its graph, pose
engines with (batch, height, width) profiles on the engines' runtime (TensorRT double, 10.3 and
11.1 bindings), the same load-time checks as SPOT's engines, and the TensorRT pose estimator."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

import trt_double
from engines_helpers import small_exports, small_pose_graph
from spot_edge.engines.graph_props import set_metadata_props
from spot_edge.engines.metadata import (ArtifactError, EngineMetadata, EngineMismatchError, GpuInfo, ShapeProfile,
                                        read_graph_info)
from spot_edge.engines.pose_metadata import PoseGraphError, PoseGraphInfo
from spot_edge.engines.precision import check_graph_precision, graph_precision
from spot_edge.engines.trt_builder import BuildOptions, build_engine, load_target
from spot_edge.errors import InputError
from spot_edge.backends.pose_estimators import OnnxRuntimePoseEstimator, TensorRTPoseEstimator, create_pose_estimator

ORIN = GpuInfo("Orin", (8, 7))
PROFILE = ShapeProfile((1, 32, 32), (1, 48, 64), (2, 64, 96))
runner = CliRunner()


@pytest.fixture(params=["10.3", "11.1"])
def trt(request, monkeypatch):
    module = trt_double.as_module(request.param)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


def _frames(n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_pose_graph_goes_through_the_engines_converter_and_metadata():
    graph = onnx.load(str(small_pose_graph("fp16")))
    info = read_graph_info(graph)
    assert isinstance(info, PoseGraphInfo) and info.kind == "pose" and info.precision == "fp16"
    assert graph.producer_name == "spot-edge"  # the engines' writer
    assert graph_precision(graph) == "fp16" == check_graph_precision(graph, info)
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 interface
    dims = [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    fp32 = onnx.load(str(small_pose_graph("fp32")))
    set_metadata_props(fp32, {"spot_edge.precision": "fp16"})  # an fp32 graph that claims fp16: refused
    with pytest.raises(ArtifactError, match="spot-edge pose export-onnx"):
        check_graph_precision(fp32, read_graph_info(fp32), "pose.onnx")
    with pytest.raises(ArtifactError, match="not a SPOT embedding graph"):
        from spot_edge.engines.metadata import read_onnx_info

        read_onnx_info(small_pose_graph())


def test_fp16_pose_graph_stays_close_to_fp32():
    frames = _frames(1, 40, 56)
    ref = OnnxRuntimePoseEstimator(small_pose_graph("fp32"))(frames)
    half = OnnxRuntimePoseEstimator(small_pose_graph("fp16"))(frames)
    assert float((half - ref).abs().max()) < 2e-2 * max(1.0, float(ref.abs().max()))


def test_targets_hold_pose_profiles_for_368_high_frames():
    for name in ("orin-nano", "agx-orin", "datacenter"):
        target = load_target(name)
        assert all(target.pose_profiles[0].holds(368, w) for w in (368, 496, 656)), name
        options = BuildOptions.from_target(name)
        assert options.pose_profiles == target.pose_profiles and options.pose_workspace_mib


@pytest.mark.parametrize("section, message", [
    ("pose: [1, 2]", "invalid pose section"),
    ("pose: {profiles: [{min: [1, 368], opt: [1, 368, 656], max: [1, 368, 656]}]}", "(batch, height, width)"),
    ("pose: {profiles: [{min: [1, 368, 656], opt: [1, 368, 368], max: [1, 368, 656]}]}", "width"),
    ("pose: {profiles: [{min: [1, 360, 364], opt: [1, 368, 656], max: [1, 368, 656]}]}", "multiples of 8"),
    ("pose: {profiles: []}", "at least one profile"),
    ("pose: {workspace_mib: 64}", "invalid pose section"),
])
def test_bad_pose_sections_are_refused(tmp_path, section, message):
    path = tmp_path / "target.yaml"
    path.write_text(f"profiles: [{{min: 1, opt: 2, max: 4}}]\nworkspace_mib: 64\n{section}\n")
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_target(path)


def _build(tmp_path, precision="fp32", profile=PROFILE):
    engine = tmp_path / f"pose.{precision}.engine"
    meta = build_engine(small_pose_graph(precision), engine, BuildOptions(pose_profiles=(profile,), pose_workspace_mib=256),
                        gpu=ORIN)
    return engine, meta


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_pose_engine_builds_with_shape_profiles_and_runs_what_the_graph_says(trt, tmp_path, precision):
    engine, meta = _build(tmp_path, precision)
    data = json.loads(EngineMetadata.sidecar_path(engine).read_text())
    assert data["artifact"]["kind"] == "pose" and data["profiles"] == [PROFILE.to_list()]
    assert data["precision"] == precision and data["workspace_mib"] == 256
    assert data["artifact"]["weights_fingerprint"] == read_graph_info(small_pose_graph()).weights_fingerprint
    assert [c for c in trt.state.calls if c[0] == "build"] == [("build", [], True)]  # strongly typed
    estimator = create_pose_estimator(engine, device="cpu", gpu=ORIN)
    assert isinstance(estimator, TensorRTPoseEstimator) and estimator.max_batch == 2
    reference = OnnxRuntimePoseEstimator(small_pose_graph(precision))
    for frames in (_frames(3, 45, 61), _frames(1, 64, 90, seed=1)):  # 3 > max batch 2: split
        got, expected = estimator(frames), reference(frames)
        assert got.shape == expected.shape
        assert float((got - expected).abs().max()) < 1e-5
    executed = [c[1]["image"] for c in trt.state.calls if c[0] == "execute"]
    assert executed == [2, 1, 1]
    one = _frames(1, 40, 48)[0]
    a, b = estimator.detect(one), reference.detect(one)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_pose_engine_load_time_checks(trt, tmp_path):
    engine, meta = _build(tmp_path)
    with pytest.raises(InputError, match=r"takes frames of height 32\.\.64 x width 32\.\.96"):
        create_pose_estimator(engine, device="cpu", gpu=ORIN)(_frames(1, 100, 40))
    with pytest.raises(PoseGraphError, match="other weights"):
        TensorRTPoseEstimator(engine, device="cpu", gpu=ORIN, expected_fingerprint="0" * 64)
    with pytest.raises(EngineMismatchError, match="compute capability 8.7.*rebuild.*pose.onnx"):
        TensorRTPoseEstimator(engine, device="cpu", gpu=GpuInfo("H200", (9, 0)))
    sidecar = EngineMetadata.sidecar_path(engine)
    data = json.loads(sidecar.read_text())
    data["tensorrt_version"] = "10.0.0.1"
    sidecar.write_text(json.dumps(data))
    with pytest.raises(EngineMismatchError, match="built with TensorRT 10.0.0.1"):
        TensorRTPoseEstimator(engine, device="cpu", gpu=ORIN)


def test_pose_and_spot_engines_are_not_interchangeable(trt, tmp_path):
    from spot_edge.backends import create_embedder

    pose_engine, _ = _build(tmp_path)
    with pytest.raises(ArtifactError, match="pose engine, not a SPOT"):
        create_embedder(pose_engine, device="cpu", gpu=ORIN)
    spot_engine = tmp_path / "spot.visible.engine"
    build_engine(small_exports()["visible"], spot_engine, BuildOptions(profiles=((1, 1, 2),)), gpu=ORIN)
    with pytest.raises(EngineMismatchError, match="SPOT embedding engine, not a pose"):
        TensorRTPoseEstimator(spot_engine, device="cpu", gpu=ORIN)


def test_build_engine_command_builds_a_pose_engine(trt, tmp_path, monkeypatch):
    from spot_edge.cli.engines import app
    from spot_edge.engines import trt_builder

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(trt_builder, "current_gpu", lambda device=0: ORIN)
    shutil.copyfile(small_pose_graph("fp16"), tmp_path / "pose.onnx")
    result = runner.invoke(app, ["build-engine", "pose.onnx", "--target", "orin-nano"])
    assert result.exit_code == 0, result.output
    meta = EngineMetadata.load(tmp_path / "pose.fp16.engine")
    assert meta.kind == "pose" and meta.profiles == load_target("orin-nano").pose_profiles
    assert meta.workspace_mib == 1024 and meta.target == "orin-nano"
    result = runner.invoke(app, ["build-engine", "pose.onnx", "--min-batch", "1", "--opt-batch", "1",
                                 "--max-batch", "2"])
    assert result.exit_code == 2 and "target's pose section" in result.stderr
