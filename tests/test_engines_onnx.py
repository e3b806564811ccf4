"""ONNX export: checker, shape inference, metadata, ONNX Runtime == PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engines_helpers import random_inputs, small_exports, small_model, torch_reference, workdir

from spot_edge.engines import ArtifactError, ArtifactInfo, check_onnx, export_onnx, read_onnx_info
from spot_edge.engines.metadata import NORMALIZATION


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def test_graphs_pass_checker_and_strict_shape_inference():
    for path in small_exports().values():
        check_onnx(path)  # checker(full_check) + strict shape inference + metadata + TRT operators
        model = onnx.load(str(path))
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        names = [i.name for i in inferred.graph.input]
        assert names == ["images", "heatmaps"]
        out = inferred.graph.output[0].type.tensor_type.shape.dim
        assert out[0].dim_param == "batch" and out[1].dim_value == small_model().config.embedding_dim


@pytest.mark.parametrize("batch", [1, 5, 32])
@pytest.mark.parametrize("modality", ["visible", "infrared"])
def test_onnxruntime_matches_pytorch(batch, modality):
    model = small_model()
    images, heatmaps = random_inputs(model.config, batch, seed=batch)
    expected = torch_reference(model, images, heatmaps, modality)
    (got,) = _session(small_exports()[modality]).run(None, {"images": images, "heatmaps": heatmaps})
    assert got.shape == expected.shape == (batch, model.config.embedding_dim)
    assert np.abs(got - expected).max() < 1e-4
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_modality_graphs_differ():
    """Each graph holds its own stem: the same input embeds differently."""
    model = small_model()
    images, heatmaps = random_inputs(model.config, 2, seed=7)
    outs = {m: _session(p).run(None, {"images": images, "heatmaps": heatmaps})[0] for m, p in small_exports().items()}
    assert np.abs(outs["visible"] - outs["infrared"]).max() > 1e-3


def test_metadata_round_trip():
    model = small_model()
    for modality, path in small_exports().items():
        info = read_onnx_info(path)
        assert info.modality == modality
        assert info.config == model.config
        assert info.config_fingerprint == model.config.fingerprint()
        assert info.preprocessing == model.config.preprocessing
        assert info.embedding_dim == model.config.embedding_dim
        assert info.normalization == NORMALIZATION == "outside"
        assert info.opset == 17 and info.precision == "fp32" and info.calibration is None
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        assert props["spot_edge.version"]
        inputs = json.loads(props["spot_edge.inputs"])
        assert inputs[0]["shape"] == [-1, 3, *model.config.preprocessing.size]
        assert inputs[0]["normalization"] == "outside"
        assert inputs[1]["shape"] == [-1, 56, *model.config.preprocessing.heatmap_size]
        assert ArtifactInfo.from_props(info.to_props()) == info
        assert ArtifactInfo.from_dict(info.to_dict()) == info


def test_normalisation_is_outside_the_graph():
    """The graph takes float normalised images: PreprocessSpec.normalize output feeds it directly."""
    model = small_model()
    spec = model.config.preprocessing
    rng = np.random.default_rng(3)
    crops = rng.integers(0, 256, (2, spec.height, spec.width, 3), dtype=np.uint8)
    images = spec.normalize(crops)
    _, heatmaps = random_inputs(model.config, 2)
    session = _session(small_exports()["visible"])
    assert session.get_inputs()[0].type == "tensor(float)"
    (got,) = session.run(None, {"images": images, "heatmaps": heatmaps})
    assert np.abs(got - torch_reference(model, images, heatmaps, "visible")).max() < 1e-4


def test_export_restores_training_mode_and_static_batch(tmp_path):
    model = small_model()
    model.train()
    try:
        path = export_onnx(model, tmp_path / "static.onnx", "visible", dynamic_batch=False, trace_batch=3)
        assert model.training and all(m.training for m in model.modules())
    finally:
        model.eval()
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 3


def test_export_errors(tmp_path):
    model = small_model()
    with pytest.raises(ValueError, match="modality"):
        export_onnx(model, tmp_path / "a.onnx", "thermal")
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "a.onnx", "visible", opset=13)
    with pytest.raises(TypeError, match="SPOT"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "a.onnx", "visible")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_plugin_export_writes_plugin_nodes_and_records_them(tmp_path):
    """plugins=True goes through spot_edge.kernels.onnx_plugins.export_onnx_with_plugins."""
    from spot_edge.engines import onnx_operators, unsupported_trt_operators

    from spot_edge.backends import create_embedder

    path = export_onnx(small_model(), tmp_path / "p.infrared.onnx", "infrared", plugins=True)  # checks included
    info = read_onnx_info(path)
    assert info.modality == "infrared" and info.plugins
    ops = onnx_operators(path)
    assert ops["spot_edge::SpotStructureAttention"] == 1 and ops["spot_edge::SpotPartPool"] == 1  # ASR, TPI
    assert ops["Einsum"] == 0 and ops["Softmax"] == 1  # only the TPI transformer's softmax is left
    assert set(unsupported_trt_operators(path)) == set(info.plugins)  # only the plugin nodes are foreign
    with pytest.raises(ValueError, match="plugin nodes"):
        create_embedder(path)


def test_reading_metadata_of_foreign_files(tmp_path):
    bare = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]))
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(ArtifactError, match="no spot-edge metadata"):
        read_onnx_info(tmp_path / "bare.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all \x00\xff")
    with pytest.raises(ArtifactError, match="not a readable ONNX"):
        read_onnx_info(tmp_path / "junk.onnx")
    with pytest.raises(FileNotFoundError):
        read_onnx_info(workdir() / "missing.onnx")


def test_baseline_without_structure_has_no_heatmap_input(tmp_path):
    """Table I #1 (B) uses no pose maps: its graph takes images only; the embedder ignores heatmaps."""
    from spot_edge.backends import create_embedder
    from spot_edge.model import SPOT, preset

    model = SPOT(preset("baseline-small")).eval()
    path = export_onnx(model, tmp_path / "base.visible.onnx", "visible")
    assert [i.name for i in onnx.load(str(path), load_external_data=False).graph.input] == ["images"]
    assert [i["name"] for i in json.loads(
        {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}["spot_edge.inputs"])] \
        == ["images"]
    images, heatmaps = random_inputs(model.config, 3, seed=2)
    got = create_embedder(path, threads=1).embed(images, heatmaps, "visible")
    assert np.abs(got - torch_reference(model, images, heatmaps, "visible")).max() < 1e-4
