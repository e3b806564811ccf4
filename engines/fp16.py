"""FP16 graphs: float16 weights and compute, FP32 islands where float16 loses the embedding.

The conversion is onnxruntime's float16 converter (``onnxruntime.transformers.float16``, the
converter of ``onnxconverter-common``, shipped with ONNX Runtime): every float32 tensor and
initializer becomes float16 except the operations listed in :data:`FP16_KEEP_FP32_OPS`, which
run in float32 between Casts. Graph inputs and the output stay float32 (``keep_io_types``): every
caller feeds the same float32 arrays whatever the precision, and the casts happen inside.

The islands were chosen by measurement (``python benchmarks/bench_precision.py --study fp16``,
figures in ``engines/README.md``). ONNX Runtime's CPU kernels compute float16 operators in float32
(only the tensors between operators are rounded), so the cosine it measures (1 - 2e-6 on the
trained SPOT-small's test queries, with or without the operator islands) cannot show an overflow
inside an operator, which is what TensorRT's FP16 kernels risk. The study therefore also
measures, in the fp32 graph on test images, the largest sum each candidate operator accumulates
against float16's largest value (65504); an operator stays in FP32 when that peak exceeds 1% of
the float16 range or its divisor falls below float16's normal range (6.1e-5):

- ``Div``: the TPI part pooling divides by ``mean(M) + eps`` with eps = 1e-6 (a float16
  subnormal): quotients up to 1e6, 15x float16's range;
- ``LayerNormalization``: the TPI transformer's row sums of squares reach 3.3% of the range on
  SPOT-small's 512-wide rows (2048 in the paper configuration);
- ``ReduceL2``: the final L2 normalisation's sum of squares, 1.5% on SPOT-small.

Softmax (largest logit 1.8) and ReduceMean (0.07%) showed ample headroom and run in FP16.

One more island is structural: the structure path (:mod:`spot_edge.engines.structure_path`, every
node computed from the pose maps alone: relation network, structure resizing, injection
projection, TPI part maps and partition). TPI gives each node to the part whose map is largest
there (eq. 9, a hard max); float16 rounding on this path creates ties and flipped assignments:
with the operator islands alone the lowest cosine to fp32 over the 1,014 visible images of the
synthetic protocol's galleries was 0.962 (mean 0.99996), with the structure path in float32
0.999998. The backbone, ASR, the TPI transformer and the fusion (nearly all the compute) run in
FP16.
"""

from __future__ import annotations

from typing import Iterable

from spot_edge.engines.structure_path import structure_path_nodes

__all__ = ["FP16_KEEP_FP32_OPS", "convert_to_fp16"]

#: Operators computed in FP32 inside fp16 graphs (the module docstring says why each one).
FP16_KEEP_FP32_OPS: tuple[str, ...] = ("LayerNormalization", "ReduceL2", "Div")


def convert_to_fp16(model, keep_fp32_ops: Iterable[str] = FP16_KEEP_FP32_OPS,
                    keep_fp32_nodes: Iterable[str] | None = None):
    """``model`` (an fp32 ``onnx.ModelProto``) with float16 weights and activations, the operators
    ``keep_fp32_ops`` and the nodes ``keep_fp32_nodes`` (default: the structure path; add e.g.
    TensorRT plugin nodes) in float32, float32 inputs and outputs. Returns a new ``ModelProto``."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    nodes = structure_path_nodes(model) if keep_fp32_nodes is None else list(keep_fp32_nodes)
    converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(keep_fp32_ops),
                                         node_block_list=nodes)
    _drop_float16_round_trips(converted, set(nodes), set(keep_fp32_ops))
    OnnxModel(converted).topological_sort()  # the converter appends the input casts at the end
    return converted


def _drop_float16_round_trips(model, fp32_nodes: set[str], fp32_ops: set[str]) -> None:
    """FP32 islands pass float32 to each other and read the float32 graph inputs themselves.

    The converter gives every FP32 node's output a cast to float16 and every FP32 node's input a
    cast back to float32, so a chain of FP32 nodes (the structure path) is still rounded to float16
    between nodes: on the synthetic protocol that flipped TPI's part assignments for 30 of its
    1,625 images (cosine to fp32 below 0.999, lowest 0.89; measured). Each ``Cast(to=FLOAT)`` of
    a ``Cast(to=FLOAT16)`` of a float32 tensor (a graph input, or the output of an FP32 node) is
    replaced by that tensor."""
    import onnx

    graph = model.graph
    inputs = {i.name for i in graph.input}
    producers = {out: node for node in graph.node for out in node.output}
    outputs = {o.name for o in graph.output}

    def float32(name: str) -> bool:
        node = producers.get(name)
        return name in inputs or (node is not None and (node.name in fp32_nodes or node.op_type in fp32_ops))

    def cast_to(node) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    replaced: dict[str, str] = {}
    for node in graph.node:
        source = producers.get(node.input[0]) if node.input else None
        if cast_to(node) == onnx.TensorProto.FLOAT and source is not None and \
                cast_to(source) == onnx.TensorProto.FLOAT16 and float32(source.input[0]) and \
                node.output[0] not in outputs:
            replaced[node.output[0]] = source.input[0]
    if not replaced:
        return
    keep = [n for n in graph.node if not (n.op_type == "Cast" and n.output[0] in replaced)]
    for node in keep:
        for i, name in enumerate(node.input):
            if name in replaced:
                node.input[i] = replaced[name]
    used = {i for n in keep for i in n.input} | outputs
    keep = [n for n in keep if n.op_type != "Cast" or any(o in used for o in n.output)]  # unused input casts
    del graph.node[:]
    graph.node.extend(keep)
