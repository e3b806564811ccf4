"""INT8 graphs: Q/DQ quantisation with onnxruntime's static quantiser, and the uint8 re-encoding
ONNX Runtime's x86 kernels want.

:func:`quantize_int8` runs ``onnxruntime.quantization.quantize_static`` in the QDQ format with
INT8 per-channel symmetric weights and per-tensor symmetric INT8 activations (zero point 0):
the explicit quantisation TensorRT 10.3 and 11 consume (strongly typed networks). Activation
ranges come from calibration batches (MinMax over the batches); the operators quantised are
:data:`INT8_OP_TYPES`, except on the structure path (:mod:`spot_edge.engines.structure_path`),
which stays in float (chosen by measurement: ``python benchmarks/bench_precision.py --study
int8``; figures in ``engines/README.md``). TPI assigns each node to the part whose map is largest
there (eq. 9, a hard max), so noise in the structure features flips assignments and changes some
embeddings a lot. On the trained SPOT-small (611 synthetic test queries, Conv / MatMul / Gemm
quantised), quantising everything gave a lowest cosine to fp32 of 0.831 (mean 0.990); keeping the
structure path's 6 small convolutions (relation network, injection projection, part maps) in
float, 0.9905 (mean 0.9960); any one of them alone, at most 0.857; keeping any further group in
float (a backbone stage, ASR, the TPI transformer, the fusion) adds at most 0.0025, so those,
nearly all the compute, stay INT8. Quantising the residual Adds too costs 0.0014 of the lowest
cosine (0.9891, mean 0.9942) for the speed above.

:func:`to_uint8_activations` re-encodes such a graph's activations as uint8 with zero point 128
for ONNX Runtime on the CPU (its x86 integer kernels are fast for uint8 activations only).
INT8 with zero point 0 and uint8 with zero point 128 are the same grid shifted by 128
(``q_u8 = q_s8 + 128`` on both sides of every Q/DQ pair), so the re-encoding is exact and one
calibration serves both engines; the file on disk stays the symmetric TensorRT graph.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from spot_edge.engines.metadata import HEATMAP_INPUT, IMAGE_INPUT
from spot_edge.engines.structure_path import structure_path_nodes
from spot_edge.errors import InputError
from spot_edge.hashing import sha256_bytes

__all__ = ["INT8_OP_TYPES", "CALIBRATION_METHOD", "check_calibration_batches", "describe_batches",
           "quantize_int8", "to_uint8_activations", "inline_identity_initializers"]

#: Operators whose inputs are quantised: the compute-heavy ones, and the residual sums (Q/DQ on both
#: inputs of an Add is NVIDIA's recommended placement: TensorRT fuses the sum into the convolution,
#: ONNX Runtime runs QLinearAdd and stays in its integer layout; measured on the paper configuration,
#: batch 8: 2.43x fp32 with Add, 2.13x without, one alternating run on a loaded machine). Everything
#: else runs in float between DequantizeLinear nodes.
INT8_OP_TYPES: tuple[str, ...] = ("Conv", "MatMul", "Gemm", "Add")

CALIBRATION_METHOD = "minmax"


def check_calibration_batches(calibration: Iterable, image_shape: tuple[int, ...],
                              heatmap_shape: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The calibration batches as a list of float32 ``(images (B, 3, H, W), heatmaps (B, K_S, Hs, Ws))``;
    :class:`InputError` for anything else (wrong shapes, non-finite values, no data)."""
    batches = []
    for i, item in enumerate(calibration):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InputError(f"calibration batch {i} must be a pair (images, heatmaps), got {type(item).__name__}")
        images, heatmaps = item
        images = np.asarray(images)
        heatmaps = np.asarray(heatmaps)
        if images.dtype != np.float32 or heatmaps.dtype != np.float32:
            raise InputError(f"calibration batch {i}: images and heatmaps must be float32 arrays, got "
                             f"{images.dtype} and {heatmaps.dtype}")
        if images.ndim != 4 or images.shape[1:] != tuple(image_shape) or images.shape[0] == 0:
            raise InputError(f"calibration batch {i}: images must be (B, {', '.join(map(str, image_shape))}), "
                             f"got {images.shape}")
        if heatmaps.shape != (images.shape[0], *heatmap_shape):
            raise InputError(f"calibration batch {i}: heatmaps must be ({images.shape[0]}, "
                             f"{', '.join(map(str, heatmap_shape))}), got {heatmaps.shape}")
        if not (np.isfinite(images).all() and np.isfinite(heatmaps).all()):
            raise InputError(f"calibration batch {i} holds NaN or Inf values")
        batches.append((np.ascontiguousarray(images), np.ascontiguousarray(heatmaps)))
    if not batches:
        raise InputError("INT8 export needs calibration data: at least one (images, heatmaps) batch")
    return batches


def describe_batches(batches: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Where calibration data given through the API came from: its size and a SHA-256 of its bytes."""
    digest = sha256_bytes(b"".join(a.tobytes() + h.tobytes() for a, h in batches))
    return {"kind": "api", "images": int(sum(a.shape[0] for a, _ in batches)), "data_sha256": digest}


class _BatchReader:
    """``onnxruntime.quantization.CalibrationDataReader`` over ``(images, heatmaps)`` batches."""

    def __init__(self, batches: list[tuple[np.ndarray, np.ndarray]], input_names: set[str]) -> None:
        self.feeds = [{k: v for k, v in ((IMAGE_INPUT, images), (HEATMAP_INPUT, heatmaps)) if k in input_names}
                      for images, heatmaps in batches]
        self.index = 0

    def get_next(self) -> dict | None:
        if self.index >= len(self.feeds):
            return None
        self.index += 1
        return self.feeds[self.index - 1]

    def __len__(self) -> int:
        return len(self.feeds)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.feeds = self.feeds[start_index:end_index]
        self.index = 0


def quantize_int8(fp32_model, batches: list[tuple[np.ndarray, np.ndarray]],
                  keep_float: Iterable[str] | None = None, calibration_cache: str | Path | None = None):
    """The Q/DQ INT8 version of ``fp32_model`` (``onnx.ModelProto``) calibrated on ``batches``.

    ``keep_float``: names of nodes left in float (default: the structure path's nodes of
    :data:`INT8_OP_TYPES`). ``calibration_cache``: a JSON file of activation ranges (read when
    present, written otherwise) so several variants of one graph share one calibration (the
    precision study). Returns ``(ModelProto, record)`` with ``record`` = ``{"method",
    "kept_float"}`` for the metadata.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    fp32_model = inline_identity_initializers(fp32_model)
    initializers = {t.name for t in fp32_model.graph.initializer}
    inputs = {i.name for i in fp32_model.graph.input if i.name not in initializers}
    if keep_float is None:
        quantisable = {n.name for n in fp32_model.graph.node if n.op_type in INT8_OP_TYPES}
        keep_float = [name for name in structure_path_nodes(fp32_model) if name in quantisable]
    kept = list(keep_float)
    with tempfile.TemporaryDirectory(prefix="spot-edge-int8.") as tmp, _quiet_root_logger():
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(fp32_model, str(source))
        quantize_static(str(source), str(target), _BatchReader(batches, inputs), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(INT8_OP_TYPES), per_channel=True, reduce_range=False,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, nodes_to_exclude=kept,
                        calibrate_method=CalibrationMethod.MinMax,
                        calibration_cache_path=str(calibration_cache) if calibration_cache else None,
                        # no CalibMaxIntermediateOutputs: onnxruntime 1.32 drops the collected ranges when
                        # it reaches that count instead of merging them (MinMax keeps only two scalars
                        # per tensor and batch anyway)
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        quantized = onnx.load(str(target))
    return quantized, {"method": CALIBRATION_METHOD, "kept_float": kept}


@contextlib.contextmanager
def _quiet_root_logger():
    """The quantiser reports through the root logger (bias layouts, pre-processing hints): keep
    those lines off the user's terminal while it runs."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def inline_identity_initializers(model):
    """A copy of ``model`` without ``Identity`` nodes that merely rename an initializer (the
    TorchScript exporter emits them for shared constants, e.g. convolution biases): each output
    becomes an initializer of its own, so the quantiser sees every bias as a constant."""
    import onnx

    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name: t for t in model.graph.initializer}
    keep = []
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in inits:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            model.graph.initializer.append(copy)
            inits[copy.name] = copy
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)
    return model


def to_uint8_activations(model):
    """A copy of a symmetric INT8 Q/DQ graph with its activations re-encoded as uint8, zero point
    128 (exact: see the module docstring). Weights (initializers feeding DequantizeLinear
    directly) and INT32 biases keep their encoding."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    rewritten: dict[str, str] = {}  # int8 zero-point initializer -> its uint8 twin

    def uint8_twin(name: str) -> str:
        if name not in rewritten:
            zero = numpy_helper.to_array(inits[name])
            twin = numpy_helper.from_array(np.full(zero.shape, 128, np.uint8), f"{name}__uint8")
            graph.initializer.append(twin)
            rewritten[name] = twin.name
        return rewritten[name]

    def is_int8_zero(name: str) -> bool:
        t = inits.get(name)
        return t is not None and t.data_type == onnx.TensorProto.INT8 and not numpy_helper.to_array(t).any()

    quantized_activations = set()
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and len(node.input) > 2 and is_int8_zero(node.input[2]):
            node.input[2] = uint8_twin(node.input[2])
            quantized_activations.add(node.output[0])
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in quantized_activations:
            if len(node.input) < 3 or not is_int8_zero(node.input[2]):
                raise ValueError(f"DequantizeLinear {node.name} reads a quantised activation without the "
                                 f"matching INT8 zero point; the graph is not a symmetric spot-edge INT8 graph")
            node.input[2] = uint8_twin(node.input[2])
    consumers_ok = all(n.op_type == "DequantizeLinear" for n in graph.node
                       for i in n.input if i in quantized_activations)
    outputs = {o.name for o in graph.output}
    if not consumers_ok or quantized_activations & outputs:
        raise ValueError("a quantised activation feeds something other than DequantizeLinear; the re-encoding "
                         "to uint8 would change the graph's meaning")
    used = {i for n in graph.node for i in n.input}
    unused = [t for t in graph.initializer if t.name in rewritten and t.name not in used]
    for t in unused:
        graph.initializer.remove(t)
    return model
