"""The TensorRT names the code and the double use exist in the real 10.3 and 11.1 bindings.

Three checks, each against the pybind11 sources and headers in /work/shared/third_party/tensorrt:
- every ``trt.X`` / ``trt.X.Y`` written in ``spot_edge/engines`` exists in 10.3, and in 11.1 unless
  it sits on the legacy TensorRT-10-only path (``trt_compat.legacy_fp16_flag``);
- running the build and runtime flows (fp32 / fp16 / int8 graphs, the pose graph with its
  (batch, height, width) profiles, plugins, timing cache, the legacy path) against the 10.3 and
  the 11.1 double touches only names of that version;
- the double itself offers no name its version lacks, and its enum values are the headers'.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest

import trt_bindings_source as source
import trt_double
from engines_helpers import random_inputs, small_exports, small_model, small_pose_graph

ENGINES = Path(__file__).resolve().parents[1] / "engines"
VERSIONS = ("10.3", "11.1")
#: names only the TensorRT 10 legacy path touches (trt_compat refuses it on 11 before using them)
LEGACY_ONLY = {("BuilderFlag", "FP16")}

pytestmark = pytest.mark.skipif(not all(source.available(v) for v in VERSIONS),
                                reason="the TensorRT binding sources are not in /work/shared/third_party")


def _written_names() -> set[tuple[str, str]]:
    """``("", X)`` and ``(X, Y)`` for every ``trt.X`` / ``trt.X.Y`` in the engines' sources."""
    names: set[tuple[str, str]] = set()
    for path in ENGINES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "trt":
                names.add(("", node.attr))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and \
                    isinstance(node.value.value, ast.Name) and node.value.value.id == "trt":
                names.add((node.value.attr, node.attr))
    return names


def _missing(names, version: str) -> list[tuple[str, str]]:
    api = source.python_api(version)
    return sorted((cls, attr) for cls, attr in names if attr not in api.get(cls, frozenset()))


def test_the_binding_reader_finds_the_known_api():
    """Guards the reader itself: names every version has, and the documented 10 -> 11 removals."""
    old, new = source.python_api("10.3"), source.python_api("11.1")
    for api in (old, new):
        assert {"Builder", "Runtime", "OnnxParser", "IPluginRegistry", "get_plugin_registry"} <= api[""]
        assert {"load_library", "get_creator"} <= api["IPluginRegistry"]
        assert {"execute_async_v3", "set_optimization_profile_async"} <= api["IExecutionContext"]
        assert "WARNING" in api["Logger"] and "STRONGLY_TYPED" in api["NetworkDefinitionCreationFlag"]
    assert {"FP16", "INT8"} <= old["BuilderFlag"] and not {"FP16", "INT8"} & new["BuilderFlag"]
    assert "IInt8EntropyCalibrator2" in old[""] and "IInt8EntropyCalibrator2" not in new[""]
    assert "platform_has_fast_fp16" in old["Builder"] and "platform_has_fast_fp16" not in new["Builder"]
    assert source.header_enum("10.3", "NetworkDefinitionCreationFlag")["STRONGLY_TYPED"] == 1
    assert source.header_enum("11.1", "NetworkDefinitionCreationFlag")["STRONGLY_TYPED"] == 0


def test_names_written_in_the_engines_exist_in_both_versions():
    written = _written_names()
    assert ("NetworkDefinitionCreationFlag", "STRONGLY_TYPED") in written  # the reader sees the code
    assert _missing(written, "10.3") == []
    assert _missing(written, "11.1") == sorted(LEGACY_ONLY)


def _flows(trt, tmp_path) -> None:
    """Build and run every kind of engine the code builds with this double."""
    from spot_edge.backends import create_embedder
    from spot_edge.engines import BatchProfile, BuildOptions, GpuInfo, build_engine
    from spot_edge.engines.trt_compat import TensorRTUnavailableError

    gpu = GpuInfo("Orin", (8, 7))
    images, heatmaps = random_inputs(small_model().config, 3)
    options = BuildOptions(profiles=(BatchProfile(1, 2, 4),), timing_cache=tmp_path / "timing.cache")
    for precision in ("fp32", "fp16", "int8"):
        folder = tmp_path / precision
        for modality, graph in small_exports(precision).items():
            build_engine(graph, folder / f"spot.{modality}.engine", options, gpu=gpu)
        embedder = create_embedder(folder / "spot", device="cpu", gpu=gpu)
        embedder.embed(images, heatmaps, "infrared")
        embedder.close()
    from spot_edge.engines.metadata import ShapeProfile
    from spot_edge.backends.pose_estimators import create_pose_estimator

    pose_options = BuildOptions(pose_profiles=(ShapeProfile((1, 32, 32), (1, 32, 48), (2, 64, 64)),))
    build_engine(small_pose_graph("fp16"), tmp_path / "pose.engine", pose_options, gpu=gpu)
    pose = create_pose_estimator(tmp_path / "pose.engine", device="cpu", gpu=gpu)
    pose(np.zeros((3, 40, 40, 3), np.uint8))
    pose.close()
    try:  # the legacy path: TensorRT 10 only
        build_engine(small_exports()["visible"], tmp_path / "legacy.engine", BuildOptions(precision="fp16"), gpu=gpu)
    except TensorRTUnavailableError:
        assert trt.__version__.startswith("11.")


@pytest.mark.parametrize("version", VERSIONS)
def test_names_the_code_touches_exist_in_that_version(version, monkeypatch, tmp_path):
    trt = trt_double.as_module(version)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    _flows(trt, tmp_path)
    touched = trt.state.accessed
    assert ("", "Builder") in touched and ("IExecutionContext", "execute_async_v3") in touched
    assert _missing(touched, version) == []
    if version == "11.1":
        assert not {("BuilderFlag", "FP16"), ("BuilderFlag", "INT8")} & touched


@pytest.mark.parametrize("version", VERSIONS)
def test_the_double_offers_only_real_names_with_real_values(version):
    trt = trt_double.as_module(version)
    offered = set()
    for name, value in vars(trt).items():
        if name.startswith("_") or name == "state":
            continue
        offered.add(("", name))
        if isinstance(value, type):
            members = getattr(value, "__members__", None)
            attributes = members if members is not None else \
                {a for klass in value.__mro__ if klass.__module__ == trt_double.__name__ for a in vars(klass)}
            offered.update((name, a) for a in attributes if not a.startswith("_"))
            if members is not None:
                header = source.header_enum(version, name)
                assert {k: int(v) for k, v in members.items()} == {k: header[k] for k in members}, name
    assert _missing(offered, version) == []
    severity = source.header_enum(version, "Severity")
    assert (trt.Logger.WARNING, trt.Logger.ERROR) == (severity["WARNING"], severity["ERROR"])
