"""TensorRT build/runtime against the documented-API double (tests/trt_double.py); real TensorRT skips."""

from __future__ import annotations

import json
import shutil
import sys

import cv2
import numpy as np
import pytest

import trt_double
from engines_helpers import random_inputs, small_exports, small_model, torch_reference
from spot_edge.engines.metadata import (ArtifactError, BatchProfile, EngineMetadata, EngineMismatchError, GpuInfo)
from spot_edge.engines.trt_builder import (BuildOptions, EngineBuildError, TensorRTUnavailableError, available_targets,
                                           build_engine, engine_path_for, load_target)
from spot_edge.engines.trt_runtime import TrtEngineRunner, best_profile, plan_chunks

ORIN = GpuInfo("Orin", (8, 7))


@pytest.fixture
def trt(monkeypatch):
    module = trt_double.as_module()
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


def _build(tmp_path, modality="infrared", **options):
    options.setdefault("profiles", (BatchProfile(2, 4, 8),))
    engine = tmp_path / f"spot.{modality}.fp16.engine"
    meta = build_engine(small_exports()[modality], engine, BuildOptions(**options), gpu=ORIN)
    return engine, meta


# ------------------------------------------------------------------ targets and options
def test_target_profiles_load():
    assert {"orin-nano", "agx-orin", "datacenter"} <= set(available_targets())
    nano = load_target("orin-nano")
    assert nano.precision == "fp16" and nano.expected_compute_capability == (8, 7)
    assert nano.profiles[0].max <= 16 and nano.workspace_mib <= 1024
    dc = load_target("datacenter")
    assert len(dc.profiles) == 2 and dc.profiles[1].max >= 64
    options = BuildOptions.from_target("agx-orin", workspace_mib=1024)
    assert options.target == "agx-orin" and options.workspace_mib == 1024 and options.precision == "fp16"
    with pytest.raises(FileNotFoundError, match="orin-nano"):
        load_target("jetson-tx1")


def test_build_options_are_validated(tmp_path):
    with pytest.raises(ValueError, match="min <= opt <= max"):
        BatchProfile(4, 2, 8)
    with pytest.raises(ValueError, match="precision"):
        BuildOptions(precision="bf8")
    with pytest.raises(ValueError, match="calibration"):
        BuildOptions(precision="int8")
    with pytest.raises(ValueError, match="workspace"):
        BuildOptions(workspace_mib=1)
    bad = tmp_path / "bad.yaml"
    bad.write_text("precision: fp16\n")
    with pytest.raises(ValueError, match="invalid build target"):
        load_target(bad)


def test_missing_tensorrt_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(TensorRTUnavailableError, match="pip install tensorrt"):
        build_engine(small_exports()["visible"], tmp_path / "x.engine", gpu=ORIN)


# ------------------------------------------------------------------ build
def test_build_writes_engine_metadata_and_timing_cache(trt, tmp_path):
    cache = tmp_path / "timing.cache"
    engine, meta = _build(tmp_path, timing_cache=cache, workspace_mib=512, target="orin-nano")
    assert engine.is_file() and cache.is_file()
    assert json.loads(cache.read_text())["builds"] == 1
    assert EngineMetadata.load(engine) == meta
    assert meta.target == "orin-nano" and meta.workspace_mib == 512
    data = json.loads(EngineMetadata.sidecar_path(engine).read_text())
    model = small_model()
    assert data["artifact"]["config_fingerprint"] == model.config.fingerprint()
    assert data["artifact"]["modality"] == "infrared"
    assert data["artifact"]["preprocessing"] == model.config.preprocessing.to_dict()
    assert data["precision"] == "fp16" and data["profiles"] == [[2, 4, 8]]
    assert data["tensorrt_version"] == "10.3.0"
    assert data["gpu"] == {"name": "Orin", "compute_capability": [8, 7]}
    assert data["spot_edge_version"] and len(data["onnx_sha256"]) == 64
    assert ("build", ["FP16"]) in trt_double.calls
    assert engine_path_for(small_exports()["infrared"]).name == "spot.infrared.fp16.engine"
    _build(tmp_path, timing_cache=cache)  # the cache is read back and updated
    assert json.loads(cache.read_text())["builds"] == 2


def test_int8_build_calibrates_from_an_image_folder(trt, tmp_path):
    spec = small_model().config.preprocessing
    folder = tmp_path / "calib"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 256, (40, 20, 3), dtype=np.uint8))
        np.save(folder / f"{i:03d}.npy", rng.random((56, *spec.heatmap_size)).astype(np.float32))
    cache = tmp_path / "calib.cache"
    options = dict(precision="int8", calibration_images=folder, calibration_cache=cache, calibration_batch=2,
                   calibration_device="cpu")
    engine, meta = _build(tmp_path, **options)
    assert meta.precision == "int8"
    assert cache.read_bytes() == b"double-calibration batches=2"  # 5 images -> 2 full batches of 2
    assert ("build", ["FP16", "INT8"]) in trt_double.calls
    cache.write_bytes(b"previous")
    _build(tmp_path, **options)  # an existing cache is used as is
    assert cache.read_bytes() == b"previous"


def test_parse_failure_names_the_operator(trt, tmp_path):
    import onnx

    model = onnx.load(str(small_exports()["visible"]))
    model.graph.node[0].op_type = "Col2Im"  # not importable by the 10.3 parser
    bad = tmp_path / "bad.visible.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(EngineBuildError, match="Col2Im"):
        build_engine(bad, tmp_path / "bad.engine", gpu=ORIN)


def test_onnx_without_metadata_is_refused(trt, tmp_path):
    import onnx

    model = onnx.load(str(small_exports()["visible"]))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(ArtifactError, match="export-onnx"):
        build_engine(bare, tmp_path / "bare.engine", gpu=ORIN)


# ------------------------------------------------------------------ runtime
def test_plan_chunks_split_and_pick_profiles():
    one = (BatchProfile(2, 4, 8),)
    assert plan_chunks(0, one) == []
    assert plan_chunks(1, one) == [(0, 1, 0)]  # padded up to min by the runner
    assert plan_chunks(19, one) == [(0, 8, 0), (8, 8, 0), (16, 3, 0)]
    two = (BatchProfile(1, 1, 8), BatchProfile(8, 32, 128))
    assert plan_chunks(5, two) == [(0, 5, 0)]
    assert plan_chunks(8, two) == [(0, 8, 0)]  # smallest max that holds it
    assert plan_chunks(200, two) == [(0, 128, 1), (128, 72, 1)]
    assert best_profile(100, two) == 1


def test_runner_matches_onnx_model_at_any_batch(trt, tmp_path):
    import torch

    engine, _ = _build(tmp_path)
    runner = TrtEngineRunner(engine, "infrared", device="cpu", gpu=ORIN)
    assert runner.profiles == (BatchProfile(2, 4, 8),) and runner.max_batch == 8
    images, heatmaps = random_inputs(small_model().config, 19, seed=19)
    expected = torch_reference(small_model(), images, heatmaps, "infrared")
    for batch, runs in {0: [], 1: [2], 3: [3], 8: [8], 19: [8, 8, 3]}.items():
        trt_double.calls.clear()
        out = runner.run(torch.from_numpy(images[:batch]), torch.from_numpy(heatmaps[:batch])).numpy()
        assert out.shape == (batch, small_model().config.embedding_dim)
        if batch:
            assert np.abs(out - expected[:batch]).max() < 1e-4
        assert [c[1]["images"] for c in trt_double.calls if c[0] == "execute"] == runs
    with pytest.raises(ValueError, match="takes images"):
        runner.run(torch.zeros(2, 3, 8, 8), torch.zeros(2, 56, 2, 1))


def test_runner_with_two_profiles(trt, tmp_path):
    import torch

    engine, _ = _build(tmp_path, profiles=(BatchProfile(1, 1, 2), BatchProfile(3, 4, 6)))
    runner = TrtEngineRunner(engine, device="cpu", gpu=ORIN)
    images, heatmaps = random_inputs(small_model().config, 11, seed=5)
    trt_double.calls.clear()
    out = runner.run(torch.from_numpy(images), torch.from_numpy(heatmaps)).numpy()
    assert np.abs(out - torch_reference(small_model(), images, heatmaps, "infrared")).max() < 1e-4
    assert [c[1]["images"] for c in trt_double.calls if c[0] == "execute"] == [6, 5]


def test_engine_for_another_modality_is_refused(trt, tmp_path):
    engine, _ = _build(tmp_path)
    with pytest.raises(EngineMismatchError, match=r"'infrared'.*'visible'.*build-engine <visible.onnx>"):
        TrtEngineRunner(engine, "visible", device="cpu", gpu=ORIN)


def test_engine_for_another_gpu_is_refused(trt, tmp_path):
    engine, _ = _build(tmp_path)
    h100 = GpuInfo("NVIDIA H100 80GB HBM3", (9, 0))
    with pytest.raises(EngineMismatchError) as err:
        TrtEngineRunner(engine, "infrared", device="cpu", gpu=h100)
    message = str(err.value)
    assert "built for Orin (compute capability 8.7)" in message and "H100" in message and "9.0" in message
    assert "spot-edge build-engine" in message
    with pytest.warns(RuntimeWarning, match="tuned on Orin"):  # same architecture, another board: works
        TrtEngineRunner(engine, "infrared", device="cpu", gpu=GpuInfo("Orin NX", (8, 7)))


def test_engine_for_another_tensorrt_version_is_refused(trt, tmp_path):
    engine, _ = _build(tmp_path)
    trt.__version__ = "10.7.0"
    with pytest.raises(EngineMismatchError, match=r"TensorRT 10\.3\.0.*TensorRT 10\.7\.0.*rebuild"):
        TrtEngineRunner(engine, "infrared", device="cpu", gpu=ORIN)


def test_engine_needing_a_plugin_is_refused_without_it(trt, tmp_path):
    engine, _ = _build(tmp_path, plugin_versions={"libspot_plugins.so": "1.0"})
    with pytest.raises(EngineMismatchError, match="libspot_plugins.so"):
        TrtEngineRunner(engine, "infrared", device="cpu", gpu=ORIN)


def test_missing_or_broken_sidecar_and_corrupt_engine(trt, tmp_path):
    engine, _ = _build(tmp_path)
    lone = tmp_path / "lone.engine"
    shutil.copyfile(engine, lone)
    with pytest.raises(ArtifactError, match="sidecar"):
        TrtEngineRunner(lone, device="cpu", gpu=ORIN)
    EngineMetadata.sidecar_path(lone).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        TrtEngineRunner(lone, device="cpu", gpu=ORIN)
    EngineMetadata.sidecar_path(lone).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ArtifactError, match="not spot-edge engine metadata"):
        TrtEngineRunner(lone, device="cpu", gpu=ORIN)
    shutil.copyfile(EngineMetadata.sidecar_path(engine), EngineMetadata.sidecar_path(lone))
    lone.write_bytes(b"garbage")
    with pytest.raises(EngineMismatchError, match="corrupt"):
        TrtEngineRunner(lone, device="cpu", gpu=ORIN)
    with pytest.raises(FileNotFoundError):
        TrtEngineRunner(tmp_path / "none.engine", device="cpu", gpu=ORIN)


# ------------------------------------------------------------------ real TensorRT
def _real_tensorrt_or_skip():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pytest.skip("TensorRT is not installed (pip install tensorrt>=10.3; JetPack 6 ships it)")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("TensorRT needs a CUDA GPU; none is visible")
    return tensorrt


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_real_tensorrt_fp16_engine_matches_pytorch(tmp_path):
    _real_tensorrt_or_skip()
    from spot_edge.backends import create_embedder

    engine = tmp_path / "spot.infrared.fp16.engine"
    build_engine(small_exports()["infrared"], engine, BuildOptions(profiles=(BatchProfile(1, 4, 8),)))
    embedder = create_embedder(engine)
    images, heatmaps = random_inputs(small_model().config, 11, seed=2)
    got = embedder.embed(images, heatmaps, "infrared")
    expected = torch_reference(small_model(), images, heatmaps, "infrared")
    assert (got * expected).sum(axis=1).min() > 0.99  # FP16: cosine, not bit equality


def test_plugin_graph_needs_its_library(trt, tmp_path):
    from spot_edge.engines import export_onnx
    from spot_edge.engines.onnx_export import _plugin_exporter

    if _plugin_exporter() is None:
        pytest.skip("spot_edge.kernels.onnx_plugins is not available")
    graph = export_onnx(small_model(), tmp_path / "p.visible.onnx", "visible", plugins=True)
    with pytest.raises(EngineBuildError, match="--plugin"):
        build_engine(graph, tmp_path / "p.engine", gpu=ORIN)
    library = tmp_path / "libspot_edge_trt_plugins.so"
    library.write_bytes(b"stands in for the plugin library")  # the double's registry only records it
    meta = build_engine(graph, tmp_path / "p.engine", BuildOptions(plugin_libraries=(library,)), gpu=ORIN)
    assert meta.plugins == {"libspot_edge_trt_plugins.so": "1"} and meta.artifact.plugins
    with pytest.raises(EngineMismatchError, match="needs the plugin library libspot_edge_trt_plugins.so"):
        TrtEngineRunner(tmp_path / "p.engine", device="cpu", gpu=ORIN)
    runner = TrtEngineRunner(tmp_path / "p.engine", device="cpu", gpu=ORIN, plugin_libraries=[library])
    assert runner.modality == "visible"
