"""The PoseEstimator interface: PyTorch and ONNX Runtime estimators, the factory, the pose graph's
metadata and load-time checks (small generated networks, small frames)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import onnx
import pytest
import torch

from spot_edge.backends.base import BackendUnavailableError
from spot_edge.backends.pose_estimators import (
    OnnxRuntimePoseEstimator,
    PoseEstimator,
    PoseInputError,
    TorchPoseEstimator,
    create_pose_estimator,
    resolve_pose_backend,
)
from pose_networks import LOOSE, ONE_STAGE, scaled_random_network
from spot_edge.pose.network import PoseNetConfig, RandomWeightsWarning
from spot_edge.engines.pose_onnx_export import PoseGraphError, export_pose_onnx, read_pose_onnx_info
from spot_edge.pose.weights import pose_weights_fingerprint, save_pose_weights


@pytest.fixture(scope="module")
def model():
    return scaled_random_network()


@pytest.fixture(scope="module")
def graph(model, tmp_path_factory):
    return export_pose_onnx(model, tmp_path_factory.mktemp("pose") / "pose.onnx", sample_hw=(32, 48))


def frames(rng, n, h, w):
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_onnx_runtime_maps_match_pytorch_and_give_the_same_people(model, graph, rng):
    torch_est = create_pose_estimator(model, device="cpu")
    ort_est = create_pose_estimator(graph)
    assert isinstance(torch_est, TorchPoseEstimator) and isinstance(ort_est, OnnxRuntimePoseEstimator)
    assert isinstance(ort_est, PoseEstimator) and ort_est.backend == "onnxruntime"
    for batch in (frames(rng, 2, 45, 61), frames(rng, 1, 72, 40)):
        ref, got = torch_est(batch), ort_est(batch)
        assert got.shape == ref.shape == (len(batch), 56, -(-batch.shape[1] // 8), -(-batch.shape[2] // 8))
        assert float((got - ref).abs().max()) < 1e-4
    one = frames(rng, 1, 64, 96)[0]
    a, b = torch_est.detect(one, LOOSE), ort_est.detect(one, LOOSE)
    assert len(a) > 0 and len(a) == len(b)  # the same people: same keypoints, peak pixels within
    np.testing.assert_array_equal(a.keypoints[..., 2] > 0, b.keypoints[..., 2] > 0)  # the sub-pixel
    np.testing.assert_allclose(a.keypoints[..., :2], b.keypoints[..., :2], atol=0.5)  # offsets of flat
    np.testing.assert_allclose(a.keypoints[..., 2], b.keypoints[..., 2], atol=1e-3)  # random peaks
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-2)  # a near-tie peak may move 1 px
    assert ort_est.weights_fingerprint == torch_est.weights_fingerprint == pose_weights_fingerprint(model.state_dict())


def test_graph_metadata_round_trip(model, graph):
    info = read_pose_onnx_info(graph)
    assert (info.config_name, info.num_stages, info.precision, info.stride, info.num_maps) == \
        ("test_1stage", 1, "fp32", 8, 56)
    assert info.normalization == "outside" and not info.clamped and info.opset == 17
    proto = onnx.load(str(graph))
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


def test_fp16_graph_and_normalisation_inside(model, tmp_path, rng):
    fp16 = export_pose_onnx(model, tmp_path / "pose16.onnx", sample_hw=(32, 32), precision="fp16")
    proto = onnx.load(str(fp16))
    assert {t.data_type for t in proto.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 I/O
    assert read_pose_onnx_info(fp16).precision == "fp16"
    raw = export_pose_onnx(model, tmp_path / "raw.onnx", sample_hw=(32, 32), normalize=True)
    batch = frames(rng, 1, 40, 56)
    ref = TorchPoseEstimator(model, device="cpu")(batch)
    assert float((OnnxRuntimePoseEstimator(raw)(batch) - ref).abs().max()) < 1e-4
    half = OnnxRuntimePoseEstimator(fp16)(batch)
    assert float((half - ref).abs().max()) < 2e-2 * max(1.0, float(ref.abs().max()))
    assert next(model.parameters()).dtype == torch.float32  # the fp16 export left the model alone


def test_load_time_checks(model, graph, tmp_path):
    with pytest.raises(PoseGraphError, match="other weights"):
        OnnxRuntimePoseEstimator(graph, expected_fingerprint="0" * 64)
    proto = onnx.load(str(graph))
    for prop in proto.metadata_props:
        if prop.key == "spot_edge.pose.output":
            prop.value = prop.value.replace('"stride": 8', '"stride": 4')
    onnx.save(proto, str(tmp_path / "stride4.onnx"))
    with pytest.raises(PoseGraphError, match="stride 4"):
        OnnxRuntimePoseEstimator(tmp_path / "stride4.onnx")
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    with pytest.raises(PoseGraphError, match="not a spot-edge pose graph"):
        OnnxRuntimePoseEstimator(tmp_path / "bare.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(PoseGraphError, match="not a readable ONNX"):
        OnnxRuntimePoseEstimator(tmp_path / "junk.onnx")


def test_weights_run_on_onnx_runtime_through_a_cached_export(model, tmp_path, rng):
    weights = save_pose_weights(model.state_dict(), tmp_path / "w.safetensors")
    est = create_pose_estimator(weights, backend="onnxruntime", config=ONE_STAGE)
    path = est.path
    assert path.parent == tmp_path / "w.safetensors.onnx" and path.is_file()
    mtime = path.stat().st_mtime_ns
    assert create_pose_estimator(weights, backend="onnxruntime", config=ONE_STAGE).path.stat().st_mtime_ns == mtime
    batch = frames(rng, 1, 32, 32)
    ref = create_pose_estimator(weights, config=ONE_STAGE, device="cpu")(batch)
    assert float((est(batch) - ref).abs().max()) < 1e-4


@pytest.mark.parametrize("source, backend, expected", [
    ("w.pth", "auto", "pytorch"), ("w.caffemodel", "auto", "pytorch"), ("w.safetensors", "onnxruntime", "onnxruntime"),
    ("p.onnx", "auto", "onnxruntime"), ("p.engine", "auto", "tensorrt"), ("p.plan", "tensorrt", "tensorrt"),
])
def test_auto_backend_rule(source, backend, expected):
    assert resolve_pose_backend(source, backend) == expected


@pytest.mark.parametrize("source, backend, error, match", [
    ("p.onnx", "pytorch", ValueError, "cannot run pose onnx"),
    ("w.pth", "tensorrt", ValueError, "cannot run pose weights"),
    ("w.pth", "cuda", ValueError, "unknown backend"),
    ("w.bin", "auto", ValueError, "cannot tell what"),
    (42, "auto", TypeError, "OpenPoseBody or a file path"),
])
def test_bad_sources_and_backends(source, backend, error, match):
    with pytest.raises(error, match=match):
        resolve_pose_backend(source, backend)


def test_missing_files_and_an_engine_without_tensorrt(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="not found"):
        create_pose_estimator(tmp_path / "missing.pth")
    engine = tmp_path / "pose.engine"
    engine.write_bytes(b"")
    monkeypatch.setitem(sys.modules, "tensorrt", None)   # as on a machine without TensorRT
    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        create_pose_estimator(engine)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((32, 32), np.uint8), "3-channel"),
    (np.zeros((2, 32, 32, 4), np.uint8), "BGR, got shape"),
    (np.zeros((32, 32, 3), np.int64), "uint8"),
    (np.zeros((4, 32, 3), np.uint8), "outside"),
    ([], "empty list"),
    ("frame.png", "numpy array, torch tensor"),
])
def test_bad_frames_are_refused(model, bad, match):
    with pytest.raises(PoseInputError, match=match):
        TorchPoseEstimator(model, device="cpu")(bad)


def test_random_weights_warn_and_describe(rng):
    est = TorchPoseEstimator(config=PoseNetConfig(name="tiny", num_stages=1), device="cpu", clamp=True)
    with pytest.warns(RandomWeightsWarning):
        maps = est(frames(rng, 1, 16, 24))
    assert maps[:, :18].min() >= 0 and maps[:, :18].max() <= 1 and maps[:, 18:].abs().max() <= 1  # clamp=True
    info = est.describe()
    assert info["weights_fingerprint"] == "random" and info["backend"] == "pytorch" and info["num_stages"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        with pytest.raises(BackendUnavailableError, match="fp16 needs a CUDA"):
            TorchPoseEstimator(config=PoseNetConfig(name="tiny", num_stages=1), device="cpu", fp16=True)
