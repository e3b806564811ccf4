"""Precision in the graph: fp16 and Q/DQ int8 exports, their metadata and checks, the uint8
re-encoding of ONNX Runtime, calibration data from a dataset root and a crop folder."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from engines_helpers import (calibration_batches, random_inputs, small_exports, small_model, tiny_synthetic,
                             torch_reference)
from spot_edge.engines.graph_props import set_metadata_props
from spot_edge.engines import ArtifactError, check_graph_precision, export_onnx, graph_precision, read_onnx_info
from spot_edge.engines.int8 import to_uint8_activations
from spot_edge.engines.structure_path import structure_path_nodes
from spot_edge.errors import InputError


def _run(model_or_path, images, heatmaps, optimize=True):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    data = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"]).run(
        None, {"images": images, "heatmaps": heatmaps})[0]


def _cosines(a, b):
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("precision, min_cosine", [("fp16", 0.999), ("int8", 0.99)])
def test_reduced_precision_graphs_run_with_float32_io_and_stay_close(precision, min_cosine):
    model = small_model()
    images, heatmaps = random_inputs(model.config, 5, seed=21)
    expected = torch_reference(model, images, heatmaps, "visible")
    path = small_exports(precision)["visible"]
    graph = onnx.load(str(path))
    assert graph_precision(graph) == precision == read_onnx_info(path).precision
    assert check_graph_precision(graph) == precision
    assert {i.type.tensor_type.elem_type for i in graph.graph.input} == {onnx.TensorProto.FLOAT}
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    got = _run(path, images, heatmaps)
    assert got.dtype == np.float32 and _cosines(got, expected).min() > min_cosine


def test_fp16_graph_keeps_its_fp32_islands():
    from spot_edge.engines.fp16 import FP16_KEEP_FP32_OPS

    graph = onnx.load(str(small_exports("fp16")["visible"]))
    inferred = onnx.shape_inference.infer_shapes(graph)
    types = {v.name: v.type.tensor_type.elem_type for v in
             list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    inits = {t.name: t.data_type for t in graph.graph.initializer}
    half = sum(t == onnx.TensorProto.FLOAT16 for t in inits.values())
    assert half > 20  # the weights are float16
    for node in graph.graph.node:
        if node.op_type in FP16_KEEP_FP32_OPS:  # islands compute in float32
            assert types.get(node.input[0], inits.get(node.input[0])) == onnx.TensorProto.FLOAT, node.name
    structure = set(structure_path_nodes(onnx.load(str(small_exports()["visible"]))))
    assert len(structure) > 10
    producers = {out: node for node in graph.graph.node for out in node.output}
    casts_to = {n.output[0]: n.attribute[0].i for n in graph.graph.node if n.op_type == "Cast"}
    for node in graph.graph.node:
        if node.op_type == "Conv":
            expected = onnx.TensorProto.FLOAT if node.name in structure else onnx.TensorProto.FLOAT16
            assert inits[node.input[1]] == expected, node.name
        if node.name in structure:  # float32 from end to end: no float16 round trip in between
            for name in node.input:
                source = producers.get(name)
                if source is not None and casts_to.get(name) == onnx.TensorProto.FLOAT:
                    assert casts_to.get(source.input[0]) != onnx.TensorProto.FLOAT16, node.name
    first = next(n for n in graph.graph.node if n.name in structure)
    assert first.input[0] == "heatmaps"  # the pose maps are read as given, not rounded to float16


def test_int8_graph_is_symmetric_per_channel_and_records_its_calibration():
    path = small_exports("int8")["infrared"]
    graph = onnx.load(str(path))
    inits = {t.name: t for t in graph.graph.initializer}
    quantize = [n for n in graph.graph.node if n.op_type == "QuantizeLinear"]
    assert len(quantize) > 20
    for node in graph.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.input[2] in inits:
            zero = inits[node.input[2]]
            assert zero.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.INT32)
            assert not numpy_helper.to_array(zero).any()
    conv_weight_scales = [numpy_helper.to_array(inits[n.input[1]]) for n in graph.graph.node
                          if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
                          and inits[n.input[0]].data_type == onnx.TensorProto.INT8]
    assert any(s.ndim == 1 and s.size > 1 for s in conv_weight_scales)  # per-channel weights
    record = read_onnx_info(path).calibration
    assert record["kind"] == "api" and record["images"] == 8 and len(record["data_sha256"]) == 64
    assert record["method"] == "minmax"
    structure = structure_path_nodes(onnx.load(str(small_exports()["infrared"])))
    assert record["kept_float"] and set(record["kept_float"]) <= set(structure)
    assert {n.op_type for n in graph.graph.node if n.name in record["kept_float"]} == {"Conv", "Add"}
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["spot_edge.precision"] == "int8" and json.loads(props["spot_edge.calibration"]) == record


def test_uint8_reencoding_is_exact_and_used_on_the_cpu():
    from spot_edge.backends import create_embedder

    path = small_exports("int8")["visible"]
    graph = onnx.load(str(path))
    shifted = to_uint8_activations(graph)
    zero_points = {t.name: t for t in shifted.graph.initializer if t.name.endswith("__uint8")}
    assert zero_points and all(numpy_helper.to_array(t).min() == 128 for t in zero_points.values())
    images, heatmaps = random_inputs(small_model().config, 4, seed=5)
    # the same Q/DQ arithmetic, node by node: bit-identical outputs
    exact = _run(graph, images, heatmaps, optimize=False)
    np.testing.assert_array_equal(_run(shifted, images, heatmaps, optimize=False), exact)
    # ONNX Runtime's fused integer kernels requantise with their own rounding, for the symmetric
    # graph as for the re-encoded one: both stay as close to the exact Q/DQ result
    for fused in (_run(shifted, images, heatmaps), _run(graph, images, heatmaps)):
        assert _cosines(fused, exact).min() > 0.999
    with pytest.raises(ArtifactError, match="symmetric"):
        check_graph_precision(shifted)  # never stored like this: TensorRT needs zero point 0
    embedder = create_embedder(path, device="cpu", threads=1)
    assert embedder.describe()["uint8_activations"] and embedder.precision == "int8"
    np.testing.assert_allclose(embedder.embed(images, heatmaps, "visible"), _run(shifted, images, heatmaps),
                               atol=1e-6)


def test_int8_calibration_from_a_dataset_root_and_a_crop_folder(tmp_path):
    import cv2

    from spot_edge.calibration_data import calibration_set

    spec = small_model().config.preprocessing
    root_set = calibration_set(tiny_synthetic(), "infrared", spec, size=5, batch=2)
    assert root_set.num_images == 5 and [len(b[0]) for b in root_set] == [2, 2, 1]
    assert root_set.description["kind"] == "sysu-train" and root_set.description["modality"] == "infrared"
    assert float(root_set.batches[0][1].max()) > 0.5  # pose maps rendered from the keypoints
    rng = np.random.default_rng(0)
    rows = ["file,pid,camid,modality,split"]
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"{i}.png"), rng.integers(0, 256, (40, 20, 3), dtype=np.uint8))
        np.save(tmp_path / f"{i}.npy", rng.random((56, 8, 4)).astype(np.float32))
        rows.append(f"{i}.png,{i},1,{'visible' if i < 3 else 'infrared'},gallery")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    folder_set = calibration_set(tmp_path, "visible", spec, size=10)
    assert folder_set.num_images == 3 and folder_set.description["kind"] == "image-folder"
    path = export_onnx(small_model(), tmp_path / "out" / "m.visible.onnx", "visible", precision="int8",
                       calibration=root_set)
    assert read_onnx_info(path).calibration["kind"] == "sysu-train"


BATCH = random_inputs(small_model().config, 2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(precision="bf16"), "precision must be one of"),
    (dict(precision="int8"), "needs calibration data"),
    (dict(precision="fp16", calibration=[BATCH]), "for int8 exports only"),
    (dict(precision="int8", calibration=[]), "at least one"),
    (dict(precision="int8", calibration=[BATCH[0]]), "a pair"),
    (dict(precision="int8", calibration=[(BATCH[0][:, :, :64], BATCH[1])]), "images must be"),
    (dict(precision="int8", calibration=[(BATCH[0], BATCH[1][:1])]), "heatmaps must be"),
    (dict(precision="int8", calibration=[(BATCH[0].astype(np.float64), BATCH[1])]), "float32"),
    (dict(precision="int8", calibration=[(np.full_like(BATCH[0], np.nan), BATCH[1])]), "NaN"),
    (dict(precision="int8", calibration=[BATCH], plugins=True), "plugin"),
])
def test_bad_precision_arguments_are_refused(tmp_path, kwargs, message):
    with pytest.raises(InputError, match=message):
        export_onnx(small_model(), tmp_path / "m.visible.onnx", "visible", **kwargs)
    assert not (tmp_path / "m.visible.onnx").exists()


def test_a_graph_that_lies_about_its_precision_is_refused_at_load(tmp_path):
    from spot_edge.backends import create_embedder

    graph = onnx.load(str(small_exports("int8")["visible"]))
    set_metadata_props(graph, {"spot_edge.calibration": "{not json"})
    onnx.save(graph, str(tmp_path / "a.visible.onnx"))
    with pytest.raises(ArtifactError, match="unreadable"):
        create_embedder(tmp_path / "a.visible.onnx")
    shifted = to_uint8_activations(onnx.load(str(small_exports("int8")["visible"])))
    onnx.save(shifted, str(tmp_path / "b.visible.onnx"))
    with pytest.raises(ArtifactError, match="symmetric"):
        create_embedder(tmp_path / "b.visible.onnx")
    fp16 = onnx.load(str(small_exports("fp16")["visible"]))
    set_metadata_props(fp16, {"spot_edge.precision": "fp32"})
    onnx.save(fp16, str(tmp_path / "c.visible.onnx"))
    with pytest.raises(ArtifactError, match="content is fp16"):
        create_embedder(tmp_path / "c.visible.onnx")


def test_int8_export_of_both_modalities_needs_both_calibrations(tmp_path):
    from spot_edge.engines import export_both

    with pytest.raises(InputError, match="visible.*infrared"):
        export_both(small_model(), tmp_path / "m", precision="int8", calibration={"visible": calibration_batches()})


def test_calibration_ranges_cover_every_batch(tmp_path):
    """The activation ranges come from all calibration batches (the largest input is in the first of
    five): the images' scale is max |images| / 127, symmetric."""
    batches = [random_inputs(small_model().config, 2, seed=s) for s in range(5)]
    batches[0] = (batches[0][0] * 3.0, batches[0][1])
    path = export_onnx(small_model(), tmp_path / "m.visible.onnx", "visible", precision="int8", calibration=batches)
    graph = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    (q,) = [n for n in graph.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "images"]
    largest = max(float(np.abs(images).max()) for images, _ in batches)
    assert float(inits[q.input[1]]) == pytest.approx(largest / 127.0, rel=1e-5)


def test_the_structure_path_is_what_the_pose_maps_alone_compute(tmp_path):
    from spot_edge.model import SPOT, preset

    graph = onnx.load(str(small_exports()["visible"]))
    path = structure_path_nodes(graph)
    convs = [n for n in path if n.endswith("/Conv")]
    assert any("/relation/" in n for n in convs) and any("/part_maps/" in n for n in convs)
    assert not any("/layer" in n or "/stem/" in n or "/asr/" in n for n in path)  # images feed those
    baseline = export_onnx(SPOT(preset("baseline-small")).eval(), tmp_path / "b.visible.onnx", "visible")
    assert structure_path_nodes(onnx.load(str(baseline))) == []  # no heatmaps input
