"""Triton model repository: layout, and config.pbtxt parsed with Triton's model-config schema."""

from __future__ import annotations

import sys

import pytest

import trt_double
from engines_helpers import small_exports, small_model

from spot_edge.engines.triton_repo import export_triton_repo, model_config_text, validate_model_config


def _schema_or_skip():
    pytest.importorskip("tritonclient.grpc.model_config_pb2",
                        reason="Triton's model-config schema comes with tritonclient[grpc]")


def test_onnx_repository_validates_against_tritons_schema(tmp_path):
    _schema_or_skip()
    dirs = export_triton_repo(small_exports(), tmp_path / "repo", preferred_batch_sizes=(4, 8, 64))
    assert sorted(d.name for d in dirs.values()) == ["spot_infrared", "spot_visible"]
    config = small_model().config
    for modality, model_dir in dirs.items():
        assert (model_dir / "1" / "model.onnx").is_file() and (model_dir / "spot_edge.json").is_file()
        parsed = validate_model_config((model_dir / "config.pbtxt").read_text())
        assert parsed.name == f"spot_{modality}" and parsed.platform == "onnxruntime_onnx"
        assert parsed.max_batch_size == 32
        assert list(parsed.dynamic_batching.preferred_batch_size) == [4, 8]  # 64 > max_batch_size dropped
        assert [i.name for i in parsed.input] == ["images", "heatmaps"]
        assert list(parsed.input[0].dims) == [3, *config.preprocessing.size]
        assert list(parsed.input[1].dims) == [56, *config.preprocessing.heatmap_size]
        assert list(parsed.output[0].dims) == [config.embedding_dim]
        assert parsed.parameters["spot_edge.modality"].string_value == modality
        assert parsed.parameters["spot_edge.config_fingerprint"].string_value == config.fingerprint()
        assert parsed.parameters["spot_edge.precision"].string_value == "fp32"
    with pytest.raises(FileExistsError, match="overwrite"):
        export_triton_repo(small_exports(), tmp_path / "repo")


def test_engine_repository_respects_the_profile(monkeypatch, tmp_path):
    _schema_or_skip()
    from spot_edge.engines import BatchProfile, BuildOptions, GpuInfo, build_engine

    monkeypatch.setitem(sys.modules, "tensorrt", trt_double.as_module("11.1"))
    engine = tmp_path / "spot.visible.fp16.engine"
    build_engine(small_exports()["visible"], engine, BuildOptions(profiles=(BatchProfile(1, 8, 16),)),
                 gpu=GpuInfo("A100", (8, 0)))
    dirs = export_triton_repo({"visible": engine}, tmp_path / "repo")
    parsed = validate_model_config((dirs["visible"] / "config.pbtxt").read_text())
    assert parsed.platform == "tensorrt_plan" and parsed.max_batch_size == 16
    assert (dirs["visible"] / "1" / "model.plan").read_bytes() == engine.read_bytes()
    with pytest.raises(ValueError, match="largest profile"):
        export_triton_repo({"visible": engine}, tmp_path / "repo2", max_batch_size=64)


def test_schema_rejects_a_broken_config():
    _schema_or_skip()
    from spot_edge.engines.metadata import ArtifactInfo

    text = model_config_text("m", "onnx", ArtifactInfo.from_config(small_model().config, "visible"), 8)
    validate_model_config(text)
    with pytest.raises(ValueError, match="schema"):
        validate_model_config(text.replace("max_batch_size", "max_batch"))
    with pytest.raises(ValueError, match="instance_kind"):
        model_config_text("m", "onnx", ArtifactInfo.from_config(small_model().config, "visible"), 8,
                          instance_kind="KIND_TPU")


def test_wrong_modality_mapping_is_refused(tmp_path):
    with pytest.raises(ValueError, match="holds the visible graph"):
        export_triton_repo({"infrared": small_exports()["visible"]}, tmp_path / "repo", validate=False)
