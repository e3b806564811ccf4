"""Every exported operator is in the TensorRT 10.3 ONNX-parser list (engines/trt_supported_ops.txt)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from engines_helpers import random_inputs, small_exports, torch_reference, workdir

from spot_edge.engines import UnsupportedOperatorError, check_trt_operators, onnx_operators, trt_supported_operators
from spot_edge.engines.trt_ops import TRT_OPS_FILE


def test_operator_list_is_the_documented_one():
    ops = trt_supported_operators()
    assert len(ops) > 100
    for op in ("Conv", "MatMul", "Softmax", "LayerNormalization", "Einsum", "Resize", "ReduceL2", "Equal"):
        assert op in ops
    # added after TensorRT 10.3 (onnx-tensorrt changelog) or not documented for 10.3: must be absent
    for op in ("Attention", "RMSNormalization", "STFT", "HannWindow", "Gelu", "StringNormalizer", "Col2Im"):
        assert op not in ops
    assert (TRT_OPS_FILE.parent / "trt_ops.md").read_text().count("onnx-tensorrt") >= 2  # its source


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_small_config_uses_only_tensorrt_operators(precision):
    for path in small_exports(precision).values():
        check_trt_operators(onnx.load(str(path), load_external_data=False))
        ops = onnx_operators(path)
        assert ops["MatMul"] >= 4 and ops["Softmax"] == 2  # ASR attention + TPI transformer
        assert (ops["QuantizeLinear"] > 0) == (precision == "int8")


def test_attention_scale_is_applied_before_the_first_matmul():
    """TensorRT's MHA fusion wants Mul(scale) -> MatMul -> Softmax -> MatMul (issue 5)."""
    model = onnx.load(str(small_exports()["visible"]), load_external_data=False)
    producers = {out: node for node in model.graph.node for out in node.output}
    scaled_queries = 0
    for softmax in (n for n in model.graph.node if n.op_type == "Softmax"):
        matmul = producers[softmax.input[0]]
        assert matmul.op_type == "MatMul"  # no scaling of the logits between MatMul and Softmax
        feeding = [producers.get(i) for i in matmul.input]
        scaled_queries += sum(n is not None and n.op_type == "Mul" for n in feeding)
    # the TPI transformer scales Q by 1/sqrt(d_head); ASR has no scale (eq. 4 as written)
    assert scaled_queries == 1


def test_foreign_operator_is_reported(tmp_path):
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["r"]), onnx.helper.make_node("Col2Im", ["r", "s", "b"], ["y"])],
        "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 4]),
              onnx.helper.make_tensor_value_info("s", onnx.TensorProto.INT64, [2]),
              onnx.helper.make_tensor_value_info("b", onnx.TensorProto.INT64, [2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    model = onnx.helper.make_model(graph)
    with pytest.raises(UnsupportedOperatorError, match=r"Col2Im \(x1\)"):
        check_trt_operators(model)
    check_trt_operators(model, allowed_plugins=frozenset({"Col2Im"}))  # e.g. a plugin node


@pytest.mark.slow
def test_paper_config_exports_with_tensorrt_operators_and_matches_pytorch():
    """The paper configuration (ResNet-50, 288x144, 78 M parameters): export, operators, ORT parity."""
    import onnxruntime as ort
    import torch

    from spot_edge.engines import export_onnx

    from spot_edge.model import SPOT, preset

    torch.manual_seed(0)
    model = SPOT(preset("spot")).eval()
    path = export_onnx(model, workdir() / "paper" / "spot.infrared.onnx", "infrared")  # runs the op check
    assert not set(onnx_operators(path)) - trt_supported_operators()
    images, heatmaps = random_inputs(model.config, 2, seed=11)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for batch in (1, 2):
        (got,) = session.run(None, {"images": images[:batch], "heatmaps": heatmaps[:batch]})
        expected = torch_reference(model, images[:batch], heatmaps[:batch], "infrared")
        assert got.shape == (batch, 2048)
        assert np.abs(got - expected).max() < 1e-4
    path.unlink()
