"""ONNX export: reference ops by default, TensorRT plugin nodes when opted in."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from spot_edge.kernels import fused_structure_attention, part_pool, plugin_export
from spot_edge.kernels.onnx_plugins import (PART_POOL_PLUGIN, PLUGIN_NAMESPACE, PLUGIN_VERSION,
                                            STRUCTURE_ATTENTION_PLUGIN, export_onnx_with_plugins,
                                            plugin_nodes)


class ToySpotHead(nn.Module):
    """ASR-style attention followed by TPI-style part pooling, as SPOT wires them."""

    def __init__(self, channels: int = 12, key_dim: int = 4, parts: int = 3) -> None:
        super().__init__()
        self.key = nn.Conv2d(channels, key_dim, 1)
        self.query = nn.Conv2d(channels, key_dim, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.parts = nn.Conv2d(channels, parts, 1)
        self.kernel_backend = "auto"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        rows = self.key(x).flatten(2).transpose(1, 2)
        cols = self.query(x).flatten(2).transpose(1, 2)
        values = self.value(x).flatten(2).transpose(1, 2)
        attended = fused_structure_attention(rows, cols, values, 0.5, backend=self.kernel_backend)
        attended = attended.transpose(1, 2).reshape(b, c, h, w)
        maps = torch.sigmoid(self.parts(attended))
        return part_pool(maps, attended, 1e-6, backend=self.kernel_backend)


def _model_and_input():
    torch.manual_seed(0)
    return ToySpotHead().eval(), torch.randn(2, 12, 6, 3)


def _export(model, x, path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                          input_names=["x"], output_names=["parts"], **kwargs)


def test_default_export_uses_reference_ops_and_runs_in_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model, x = _model_and_input()
    path = tmp_path / "toy.onnx"
    model.kernel_backend = "cuda"     # an explicit GPU backend must not matter for export
    _export(model, x, path)
    model.kernel_backend = "auto"
    graph = onnx.load(str(path))
    op_types = {node.op_type for node in graph.graph.node}
    assert {"MatMul", "Softmax"} <= op_types
    assert not plugin_nodes(graph)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(out, model(x).numpy(), rtol=1e-4, atol=1e-5)


def test_plugin_export_emits_custom_nodes(tmp_path):
    model, x = _model_and_input()
    path = tmp_path / "toy_plugins.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx_with_plugins(model, (x,), path, input_names=["x"], output_names=["parts"],
                                 dynamic_axes={"x": {0: "batch"}, "parts": {0: "batch"}})
    graph = onnx.load(str(path))
    nodes = plugin_nodes(graph)
    assert [n.op_type for n in nodes] == [STRUCTURE_ATTENTION_PLUGIN, PART_POOL_PLUGIN]
    for node in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert node.domain == "spot_edge"
        assert attrs["plugin_namespace"] == PLUGIN_NAMESPACE.encode()
        assert attrs["plugin_version"] == PLUGIN_VERSION.encode()
    attention, pooling = nodes
    assert onnx.helper.get_attribute_value(attention.attribute[[a.name for a in attention.attribute].index("scale")]) == 0.5
    assert len(attention.input) == 3 and len(pooling.input) == 2
    assert "Softmax" not in {node.op_type for node in graph.graph.node}
    assert any(op.domain == "spot_edge" for op in graph.opset_import)
    # The custom nodes' outputs are typed (float, rank 3) for ONNX tools; TensorRT takes the
    # shapes from the plugins' getOutputShapes.
    infos = {vi.name: vi.type.tensor_type for vi in list(graph.graph.value_info) + list(graph.graph.output)}
    for node in nodes:
        info = infos[node.output[0]]
        assert info.elem_type == onnx.TensorProto.FLOAT and len(info.shape.dim) == 3


def test_plugin_context_keeps_eager_numbers():
    model, x = _model_and_input()
    with torch.no_grad():
        expected = model(x)
        with plugin_export():
            got = model(x)
    torch.testing.assert_close(got, expected)


def test_plugin_export_refuses_dynamo(tmp_path):
    model, x = _model_and_input()
    with pytest.raises(ValueError, match="TorchScript"):
        export_onnx_with_plugins(model, (x,), tmp_path / "x.onnx", dynamo=True)
