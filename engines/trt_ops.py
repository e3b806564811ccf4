"""The operators the TensorRT 10.3 ONNX parser imports (JetPack 6), and the check of a graph.

``trt_supported_ops.txt`` lists them (sources and derivation in ``trt_ops.md``). TensorRT 11
parses a superset, so a graph that passes here parses on every supported version. Q/DQ
(``QuantizeLinear`` / ``DequantizeLinear``) and ``Cast`` are in the list: the INT8 and FP16
graphs pass the same check as the FP32 one.
"""

from __future__ import annotations

import collections
from functools import lru_cache
from pathlib import Path

__all__ = ["TRT_OPS_FILE", "UnsupportedOperatorError", "trt_supported_operators", "onnx_operators",
           "unsupported_trt_operators", "check_trt_operators"]

TRT_OPS_FILE = Path(__file__).with_name("trt_supported_ops.txt")


class UnsupportedOperatorError(ValueError):
    """An exported graph holds operators the TensorRT 10.3 ONNX parser cannot import."""


@lru_cache(maxsize=1)
def trt_supported_operators() -> frozenset[str]:
    """Operators of ``trt_supported_ops.txt`` (TensorRT 10.3 ONNX parser, see ``trt_ops.md``)."""
    lines = TRT_OPS_FILE.read_text().splitlines()
    return frozenset(s for line in lines if (s := line.strip()) and not s.startswith("#"))


def onnx_operators(model) -> collections.Counter:
    """``Counter`` of ``op_type`` (``"domain::op"`` outside the default domain), subgraphs included."""
    import onnx

    if isinstance(model, (str, Path)):
        model = onnx.load(str(model), load_external_data=False)
    counts: collections.Counter = collections.Counter()

    def visit(graph) -> None:
        for node in graph.node:
            name = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            counts[name] += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g)
                for sub in attr.graphs:
                    visit(sub)

    visit(model.graph)
    return counts


def unsupported_trt_operators(model, allowed_plugins: frozenset[str] = frozenset()) -> dict[str, int]:
    """Operators of ``model`` that the TensorRT 10.3 parser does not import, with their counts."""
    supported = trt_supported_operators() | allowed_plugins
    return {op: n for op, n in sorted(onnx_operators(model).items()) if op not in supported}


def check_trt_operators(model, allowed_plugins: frozenset[str] = frozenset()) -> None:
    """Raise :class:`UnsupportedOperatorError` listing operators outside the TensorRT 10.3 list."""
    bad = unsupported_trt_operators(model, allowed_plugins)
    if bad:
        listed = ", ".join(f"{op} (x{n})" for op, n in bad.items())
        raise UnsupportedOperatorError(f"the graph holds operators the TensorRT 10.3 ONNX parser does not support: "
                                       f"{listed}; see {TRT_OPS_FILE.name} and trt_ops.md in spot_edge/engines")
