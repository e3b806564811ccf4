"""What precision a graph computes in, read from the graph itself, and the check at load time.

The precision of a spot-edge graph is a property of the graph (TensorRT 11 builds strongly
typed networks only; TensorRT 10.3 does too when asked), recorded in ``spot_edge.precision``:

- ``fp32``: float32 everywhere;
- ``fp16``: float16 weights and activations with FP32 islands (:mod:`spot_edge.engines.fp16`),
  float32 graph inputs and output (casts inside);
- ``int8``: a Q/DQ graph (:mod:`spot_edge.engines.int8`): INT8 per-channel symmetric weights,
  per-tensor symmetric INT8 activations with zero point 0 (what TensorRT accepts).

:func:`check_graph_precision` refuses a graph whose content disagrees with its metadata, whose
interface is not float32, or (int8) whose Q/DQ zero points are not the symmetric INT8 ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spot_edge.engines.metadata import PRECISIONS, ArtifactError, ArtifactInfo
from spot_edge.engines.trt_ops import onnx_operators

__all__ = ["PRECISIONS", "graph_precision", "check_graph_precision", "check_interface_float32"]


def _load(model):
    import onnx

    if isinstance(model, (str, Path)):
        return onnx.load(str(model), load_external_data=False)
    return model


def graph_precision(model) -> str:
    """``"int8"`` when the graph holds Q/DQ nodes, ``"fp16"`` when it holds float16 tensors
    (initializers or casts to float16), else ``"fp32"``."""
    import onnx

    model = _load(model)
    ops = onnx_operators(model)
    if ops["QuantizeLinear"] or ops["DequantizeLinear"]:
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer):
        return "fp16"
    for node in model.graph.node:
        if node.op_type == "Cast" and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT16 for a in node.attribute):
            return "fp16"
    return "fp32"


def check_interface_float32(model, source: str = "graph") -> None:
    """Every graph input and output is float32: callers feed the same arrays whatever the precision."""
    import onnx

    model = _load(model)
    initializers = {t.name for t in model.graph.initializer}
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            if value.name in initializers:
                continue
            elem = value.type.tensor_type.elem_type
            if elem != onnx.TensorProto.FLOAT:
                raise ArtifactError(f"{source}: {kind} {value.name!r} is {onnx.TensorProto.DataType.Name(elem)}; "
                                    f"spot-edge graphs take and return float32 whatever their precision")


def _symmetric_int8(model, source: str) -> None:
    """Every Q/DQ zero point is INT8 zero (absent zero points mean 0 as uint8: refused too)."""
    import onnx
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        zero_point = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zero_point is None:
            if node.op_type == "QuantizeLinear":
                raise ArtifactError(f"{source}: QuantizeLinear {node.name} has no INT8 zero point; TensorRT "
                                    f"needs symmetric INT8 (zero point 0): re-export with spot-edge export-onnx")
            continue
        if zero_point.data_type not in (onnx.TensorProto.INT8, onnx.TensorProto.INT32) or \
                np.any(numpy_helper.to_array(zero_point) != 0):
            raise ArtifactError(f"{source}: {node.op_type} {node.name} has a non-zero or non-INT8 zero point; "
                                f"the stored int8 graph must be symmetric (zero point 0, what TensorRT accepts)")


def check_graph_precision(model, info: ArtifactInfo | None = None, source: str = "graph") -> str:
    """The graph's precision; :class:`ArtifactError` when it differs from ``info.precision`` (``info``:
    an :class:`ArtifactInfo` or a pose graph's ``PoseGraphInfo``; default: read from the graph), when
    the interface is not float32, or when an int8 graph is not symmetric INT8."""
    model = _load(model)
    if info is None:
        from spot_edge.engines.metadata import read_onnx_info

        info = read_onnx_info(model)
    found = graph_precision(model)
    if found != info.precision:
        command = "spot-edge pose export-onnx" if getattr(info, "kind", "spot") == "pose" else "spot-edge export-onnx"
        raise ArtifactError(f"{source} records spot_edge.precision={info.precision!r} but its content is "
                            f"{found}; the file was changed after export: re-export it with {command}")
    check_interface_float32(model, source)
    if found == "int8":
        _symmetric_int8(model, source)
    return found
