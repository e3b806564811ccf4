"""TensorRT build/runtime against the double of the 10.3 and 11.1 bindings (tests/trt_double.py)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

import trt_double
from engines_helpers import random_inputs, small_exports, small_model, small_plugin_exports, torch_reference
from spot_edge.engines.graph_props import set_metadata_props
from spot_edge.engines.metadata import ArtifactError, BatchProfile, EngineMetadata, EngineMismatchError, GpuInfo
from spot_edge.engines.trt_builder import (BuildOptions, EngineBuildError, available_targets, build_engine,
                                           engine_path_for, load_target)
from spot_edge.engines.trt_compat import TensorRTUnavailableError
from spot_edge.engines.trt_runtime import TrtEngineRunner, best_profile, plan_chunks
from spot_edge.errors import InputError

ORIN = GpuInfo("Orin", (8, 7))


@pytest.fixture(params=["10.3", "11.1"])
def trt(request, monkeypatch):
    module = trt_double.as_module(request.param)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


@pytest.fixture
def trt10(monkeypatch):
    module = trt_double.as_module("10.3")
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


@pytest.fixture
def trt11(monkeypatch):
    """One version for the tests where the versions do not differ."""
    module = trt_double.as_module("11.1")
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


def _build(tmp_path, modality="infrared", precision="fp32", **options):
    options.setdefault("profiles", (BatchProfile(2, 4, 8),))
    engine = tmp_path / f"spot.{modality}.{precision}.engine"
    meta = build_engine(small_exports(precision)[modality], engine, BuildOptions(**options), gpu=ORIN)
    return engine, meta


# ------------------------------------------------------------------ targets and options
def test_target_profiles_load():
    assert {"orin-nano", "agx-orin", "datacenter"} <= set(available_targets())
    nano = load_target("orin-nano")
    assert nano.expected_compute_capability == (8, 7)
    assert nano.profiles[0].max <= 16 and nano.workspace_mib <= 1024
    dc = load_target("datacenter")
    assert len(dc.profiles) == 2 and dc.profiles[1].max >= 64
    options = BuildOptions.from_target("agx-orin", workspace_mib=1024)
    assert options.target == "agx-orin" and options.workspace_mib == 1024 and options.precision is None
    with pytest.raises(FileNotFoundError, match="orin-nano"):
        load_target("jetson-tx1")


@pytest.mark.parametrize("options, message", [
    (dict(precision="bf8"), "precision"),
    (dict(workspace_mib=1), "workspace"),
    (dict(builder_optimization_level=9), "0..5"),
    (dict(profiles=()), "profile"),
])
def test_build_options_are_validated(options, message):
    with pytest.raises(InputError, match=message):
        BuildOptions(**options)


@pytest.mark.parametrize("text, message", [
    ("profiles: [{min: 1, opt: 2, max: 4}]\nworkspace_mib: 64\nprecision: fp16\n", "precision is not a target"),
    ("workspace_mib: 64\n", "invalid build target"),
    ("profiles: [{min: 4, opt: 2, max: 8}]\nworkspace_mib: 64\n", "min <= opt <= max"),
    ("profiles: [\n", "not valid YAML"),
    ("- a list\n", "mapping"),
])
def test_bad_target_files_are_refused(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_target(bad)


def test_missing_or_unsupported_tensorrt_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(TensorRTUnavailableError, match="pip install"):
        build_engine(small_exports()["visible"], tmp_path / "x.engine", gpu=ORIN)
    old = trt_double.as_module("10.3")
    old.__version__ = "8.6.1"
    monkeypatch.setitem(sys.modules, "tensorrt", old)
    with pytest.raises(TensorRTUnavailableError, match=r"8\.6\.1 is not supported.*>=10\.3,<12"):
        build_engine(small_exports()["visible"], tmp_path / "x.engine", gpu=ORIN)


# ------------------------------------------------------------------ build
def test_build_writes_engine_metadata_and_timing_cache(trt, tmp_path):
    cache = tmp_path / "timing.cache"
    engine, meta = _build(tmp_path, precision="fp16", timing_cache=cache, workspace_mib=512, target="orin-nano")
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
    assert data["artifact"]["precision"] == "fp16"
    assert data["tensorrt_version"] == trt.__version__
    assert data["gpu"] == {"name": "Orin", "compute_capability": [8, 7]}
    assert data["spot_edge_version"] and len(data["onnx_sha256"]) == 64
    assert ("build", [], True) in trt.state.calls  # strongly typed, no precision flags
    assert engine_path_for(small_exports()["infrared"]).name == "spot.infrared.fp16.engine"
    _build(tmp_path, precision="fp16", timing_cache=cache)  # the cache is read back and updated
    assert json.loads(cache.read_text())["builds"] == 2


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_every_precision_builds_strongly_typed_and_runs_what_the_graph_says(trt, tmp_path, precision):
    import onnxruntime as ort
    import torch

    engine, meta = _build(tmp_path, precision=precision)
    assert meta.precision == meta.artifact.precision == precision
    assert [c for c in trt.state.calls if c[0] == "build"] == [("build", [], True)]
    runner = TrtEngineRunner(engine, "infrared", device="cpu", gpu=ORIN)
    images, heatmaps = random_inputs(small_model().config, 3, seed=3)
    got = runner.run(torch.from_numpy(images), torch.from_numpy(heatmaps)).numpy()
    session = ort.InferenceSession(str(small_exports(precision)["infrared"]), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"images": images, "heatmaps": heatmaps})[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_legacy_fp16_flag_only_on_tensorrt_10(trt, tmp_path):
    """fp32 graph + precision fp16: BuilderFlag.FP16 on a weakly typed network, TensorRT 10 only."""
    if trt.__version__.startswith("10."):
        meta = build_engine(small_exports()["infrared"], tmp_path / "legacy.engine",
                            BuildOptions(precision="fp16", profiles=(BatchProfile(1, 2, 4),)), gpu=ORIN)
        assert meta.precision == "fp16" and meta.artifact.precision == "fp32"
        assert ("build", ["FP16"], False) in trt.state.calls
    else:
        with pytest.raises(TensorRTUnavailableError, match="export-onnx --precision fp16"):
            build_engine(small_exports()["infrared"], tmp_path / "legacy.engine", BuildOptions(precision="fp16"),
                         gpu=ORIN)
        assert not [c for c in trt.state.calls if c[0] == "build"]


@pytest.mark.parametrize("graph, requested, message", [
    ("fp32", "int8", "export-onnx --precision int8 --calibration"),
    ("fp16", "int8", "int8 graph"),
    ("int8", "fp16", "fp16 graph"),
    ("fp16", "fp32", "fp32 graph"),
])
def test_engine_precision_other_than_the_graph_is_refused(trt11, tmp_path, graph, requested, message):
    with pytest.raises(InputError, match=message):
        build_engine(small_exports(graph)["visible"], tmp_path / "x.engine", BuildOptions(precision=requested),
                     gpu=ORIN)


def test_a_graph_changed_after_export_is_refused(trt11, tmp_path):
    import onnx

    model = onnx.load(str(small_exports("fp16")["visible"]))
    set_metadata_props(model, {"spot_edge.precision": "fp32"})
    lying = tmp_path / "lying.visible.onnx"
    onnx.save(model, str(lying))
    with pytest.raises(ArtifactError, match="content is fp16"):
        build_engine(lying, tmp_path / "x.engine", gpu=ORIN)


def test_parse_failure_names_the_operator(trt11, tmp_path):
    import onnx

    model = onnx.load(str(small_exports()["visible"]))
    model.graph.node[0].op_type = "Col2Im"  # not importable by the 10.3 parser
    bad = tmp_path / "bad.visible.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(EngineBuildError, match="Col2Im"):
        build_engine(bad, tmp_path / "bad.engine", gpu=ORIN)


def test_onnx_without_metadata_is_refused(trt11, tmp_path):
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
        trt.state.calls.clear()
        out = runner.run(torch.from_numpy(images[:batch]), torch.from_numpy(heatmaps[:batch])).numpy()
        assert out.shape == (batch, small_model().config.embedding_dim)
        if batch:
            assert np.abs(out - expected[:batch]).max() < 1e-4
        assert [c[1]["images"] for c in trt.state.calls if c[0] == "execute"] == runs
    with pytest.raises(InputError, match="takes images"):
        runner.run(torch.zeros(2, 3, 8, 8), torch.zeros(2, 56, 2, 1))


def test_runner_with_two_profiles(trt11, tmp_path):
    import torch

    engine, _ = _build(tmp_path, profiles=(BatchProfile(1, 1, 2), BatchProfile(3, 4, 6)))
    runner = TrtEngineRunner(engine, device="cpu", gpu=ORIN)
    images, heatmaps = random_inputs(small_model().config, 11, seed=5)
    trt11.state.calls.clear()
    out = runner.run(torch.from_numpy(images), torch.from_numpy(heatmaps)).numpy()
    assert np.abs(out - torch_reference(small_model(), images, heatmaps, "infrared")).max() < 1e-4
    assert [c[1]["images"] for c in trt11.state.calls if c[0] == "execute"] == [6, 5]


def test_engine_for_another_modality_is_refused(trt11, tmp_path):
    engine, _ = _build(tmp_path)
    with pytest.raises(EngineMismatchError, match=r"'infrared'.*'visible'.*build-engine <visible.onnx>"):
        TrtEngineRunner(engine, "visible", device="cpu", gpu=ORIN)


def test_engine_for_another_gpu_is_refused(trt11, tmp_path):
    engine, _ = _build(tmp_path)
    h100 = GpuInfo("NVIDIA H100 80GB HBM3", (9, 0))
    with pytest.raises(EngineMismatchError) as err:
        TrtEngineRunner(engine, "infrared", device="cpu", gpu=h100)
    message = str(err.value)
    assert "built for Orin (compute capability 8.7)" in message and "H100" in message and "9.0" in message
    assert "spot-edge build-engine" in message
    with pytest.warns(RuntimeWarning, match="tuned on Orin"):  # same architecture, another board: works
        TrtEngineRunner(engine, "infrared", device="cpu", gpu=GpuInfo("Orin NX", (8, 7)))


def test_engine_for_another_tensorrt_version_is_refused(trt10, tmp_path, monkeypatch):
    engine, _ = _build(tmp_path)
    monkeypatch.setitem(sys.modules, "tensorrt", trt_double.as_module("11.1"))
    with pytest.raises(EngineMismatchError, match=r"TensorRT 10\.3\.0\.26.*TensorRT 11\.1\.0\.106.*rebuild"):
        TrtEngineRunner(engine, "infrared", device="cpu", gpu=ORIN)


def test_engine_needing_a_plugin_is_refused_without_it(trt11, tmp_path):
    engine, _ = _build(tmp_path, plugin_versions={"libspot_plugins.so": "1.0"})
    with pytest.raises(EngineMismatchError, match="libspot_plugins.so"):
        TrtEngineRunner(engine, "infrared", device="cpu", gpu=ORIN)


def test_missing_or_broken_sidecar_and_corrupt_engine(trt11, tmp_path):
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
        pytest.skip("TensorRT is not installed (pip install 'tensorrt>=10.3,<12'; JetPack 6 ships 10.3)")
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
    build_engine(small_exports("fp16")["infrared"], engine, BuildOptions(profiles=(BatchProfile(1, 4, 8),)))
    embedder = create_embedder(engine)
    images, heatmaps = random_inputs(small_model().config, 11, seed=2)
    got = embedder.embed(images, heatmaps, "infrared")
    expected = torch_reference(small_model(), images, heatmaps, "infrared")
    assert (got * expected).sum(axis=1).min() > 0.99  # FP16: cosine, not bit equality


def test_plugin_graph_needs_its_library_loaded_once_per_process(trt, tmp_path):
    """Build then run in one process, and two plugin engines (visible + infrared) in one process:
    the registry returns None on the second load_library; that is not a failure."""
    from spot_edge.backends import create_embedder

    library = tmp_path / "libspot_edge_trt_plugins.so"
    library.write_bytes(b"stands in for the plugin library")  # the double's registry only records it
    graphs = small_plugin_exports()
    with pytest.raises(EngineBuildError, match="--plugin"):
        build_engine(graphs["visible"], tmp_path / "p.visible.engine", gpu=ORIN)
    options = BuildOptions(plugin_libraries=(library,), profiles=(BatchProfile(1, 2, 4),))
    metas = [build_engine(graphs[m], tmp_path / f"p.{m}.engine", options, gpu=ORIN) for m in ("visible", "infrared")]
    assert metas[0].plugins == {"libspot_edge_trt_plugins.so": "1"} and metas[0].artifact.plugins
    with pytest.raises(EngineMismatchError, match="needs the plugin library libspot_edge_trt_plugins.so"):
        TrtEngineRunner(tmp_path / "p.visible.engine", device="cpu", gpu=ORIN)
    embedder = create_embedder(tmp_path / "p", device="cpu", gpu=ORIN, plugin_libraries=[library])
    assert embedder.modalities == ("visible", "infrared")
    loads = [c for c in trt.state.calls if c[0] == "load_library"]
    assert len(loads) == 1  # once per process, whatever the number of builds and engines
    assert trt.get_plugin_registry().load_library(str(library)) is None  # what a second load returns


def test_a_library_the_registry_refuses_is_an_error(trt11, tmp_path):
    """None from load_library while the spot-edge creators are not all registered: a real failure."""
    from spot_edge.engines.trt_plugins import PluginLoadError, load_plugin_libraries

    library = tmp_path / "libspot_edge_trt_plugins.so"
    library.write_bytes(b"x")
    trt11.state.registered.add(("SpotPartPool", "1", "spot_edge"))  # a clash: one creator is there, not the other
    with pytest.raises(PluginLoadError, match="could not load the plugin library"):
        load_plugin_libraries(trt11, trt11.Logger(), [library])
    with pytest.raises(FileNotFoundError, match="plugin library not found"):
        load_plugin_libraries(trt11, trt11.Logger(), [tmp_path / "missing.so"])
