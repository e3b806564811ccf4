"""Export a SPOT network to ONNX: one graph per modality, in fp32, fp16 or int8, TensorRT-parsable.

Graph interface (the same for every spot-edge graph and engine, whatever the precision):

- input ``images``   ``(B, 3, H, W)`` float32, already normalised by ``PreprocessSpec.normalize``
  (normalisation happens *outside* the graph; see :mod:`spot_edge.engines.metadata`);
- input ``heatmaps`` ``(B, 56, Hs, Ws)`` float32 OpenPose maps at ``preprocessing.heatmap_size``;
- output ``embedding`` ``(B, D)`` float32, L2-normalised.

Precision is a property of the graph (:mod:`spot_edge.engines.precision`): ``fp16`` graphs hold
float16 weights and compute with FP32 islands (:mod:`spot_edge.engines.fp16`), ``int8`` graphs are
Q/DQ graphs calibrated on data (:mod:`spot_edge.engines.int8`); ONNX Runtime runs all three here,
TensorRT 10.3 to 11 builds them unchanged as strongly typed networks.

The batch dimension is dynamic (``dynamic_batch=True``); H, W, Hs, Ws are fixed by the config.
The two modalities differ in their stem (conv1..layer2), so each gets its own graph.
The TorchScript exporter (``dynamo=False``) is used: it needs no ``onnxscript`` and yields plain
opset-17 operators that the TensorRT 10.3 parser imports (:func:`spot_edge.engines.trt_ops.check_trt_operators`).
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from torch import Tensor, nn

from spot_edge.engines.metadata import (EMBEDDING_OUTPUT, HEATMAP_INPUT, IMAGE_INPUT, PRECISIONS, ArtifactInfo,
                                        check_precision)
from spot_edge.engines.trt_ops import check_trt_operators
from spot_edge.errors import InputError
from spot_edge.modality import MODALITIES, check_modality

__all__ = ["DEFAULT_OPSET", "SUPPORTED_OPSETS", "SpotEmbeddingGraph", "example_inputs", "plugin_operators",
           "export_onnx", "export_both", "onnx_path_for", "check_onnx"]

DEFAULT_OPSET = 17
#: TensorRT 10.3's parser accepts opsets 9..20; LayerNormalization needs 17.
SUPPORTED_OPSETS = range(17, 21)


class SpotEmbeddingGraph(nn.Module):
    """``SPOT`` with the modality fixed: ``(images, heatmaps) -> embedding``, the exported function."""

    def __init__(self, model: nn.Module, modality: str) -> None:
        super().__init__()
        self.model = model
        self.modality = check_modality(modality)

    def forward(self, images: Tensor, heatmaps: Tensor) -> Tensor:
        return self.model(images, heatmaps, self.modality)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode, restoring each one's own flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def example_inputs(config, batch: int = 2, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Random ``(images (B, 3, H, W), heatmaps (B, K_S, Hs, Ws))`` at the config's export sizes."""
    gen = torch.Generator().manual_seed(seed)
    h, w = config.preprocessing.size
    hs, ws = config.preprocessing.heatmap_size
    images = torch.randn(batch, 3, h, w, generator=gen)
    heatmaps = torch.rand(batch, config.num_pose_maps, hs, ws, generator=gen)
    return images, heatmaps


def plugin_operators() -> frozenset[str]:
    """``"domain::op_type"`` of the kernels' TensorRT plugin nodes (allowed in plugin exports)."""
    from spot_edge.kernels import onnx_plugins

    return frozenset(f"{onnx_plugins.ONNX_DOMAIN}::{op}" for op in onnx_plugins.PLUGIN_OP_TYPES)


def export_onnx(model: nn.Module, path: str | Path, modality: str, *, opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = True, precision: str = "fp32", calibration: Iterable | None = None,
                plugins: bool = False, check: bool = True, trace_batch: int = 2) -> Path:
    """Export ``model`` (a :class:`spot_edge.model.SPOT`) for one modality to ``path``.

    Args:
        model: the network; its train/eval state is restored afterwards.
        path: output ``.onnx`` file (written atomically; parent folders are created).
        modality: ``"visible"`` or ``"infrared"``: which stem the graph holds.
        opset: ONNX opset, 17..20 (TensorRT 10.3 parses up to 20; LayerNormalization needs 17).
        dynamic_batch: batch dimension symbolic (``"batch"``); else fixed to ``trace_batch``.
        precision: ``"fp32"``, ``"fp16"`` (float16 weights and compute, FP32 islands, float32
            inputs/output) or ``"int8"`` (Q/DQ: per-channel symmetric INT8 weights, symmetric INT8
            activations calibrated on ``calibration``).
        calibration: int8 only: an iterable of ``(images (B, 3, H, W) float32, heatmaps
            (B, 56, Hs, Ws) float32)`` numpy batches of this modality, e.g.
            :func:`spot_edge.calibration_data.calibration_set`; its ``description`` (when present)
            is recorded in the metadata, else its size and a SHA-256 of its bytes.
        plugins: write the fused kernels as TensorRT plugin nodes (``spot_edge`` domain, through
            ``spot_edge.kernels.onnx_plugins.export_onnx_with_plugins``); such a graph needs the
            plugin library in TensorRT and does not run in ONNX Runtime (not with int8, which
            calibrates in ONNX Runtime).
        check: run the ONNX checker with full shape inference, the precision check and the
            TensorRT operator check.
        trace_batch: batch size of the example inputs used for tracing.

    Returns:
        ``path``. The file carries :class:`ArtifactInfo` in its ``metadata_props``.
    """
    from spot_edge.model import SPOT

    check_modality(modality)
    if not isinstance(model, SPOT):
        raise TypeError(f"export_onnx expects a spot_edge.model.SPOT, got {type(model).__name__}")
    if opset not in SUPPORTED_OPSETS:
        raise InputError(f"opset {opset} is outside {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1} "
                         f"(TensorRT 10.3 parses opsets up to 20; LayerNormalization needs 17)")
    if trace_batch < 1:
        raise InputError(f"trace_batch must be >= 1, got {trace_batch}")
    try:
        check_precision(precision)
    except ValueError:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}") from None
    if precision == "int8" and calibration is None:
        raise InputError("an int8 export needs calibration data: calibration=[(images, heatmaps), ...] "
                         "(e.g. spot_edge.calibration_data.calibration_set)")
    if precision != "int8" and calibration is not None:
        raise InputError(f"calibration data is for int8 exports only (precision={precision!r})")
    if precision == "int8" and plugins:
        raise InputError("int8 graphs are calibrated in ONNX Runtime, which cannot run TensorRT plugin nodes; "
                         "export int8 without plugins (or fp16/fp32 with plugins)")
    path = Path(path)
    config = model.config

    graph = _trace(model, modality, config, opset, dynamic_batch, plugins, trace_batch)
    calibration_record = None
    if precision == "fp16":
        from spot_edge.engines.fp16 import convert_to_fp16
        from spot_edge.engines.structure_path import structure_path_nodes

        plugin_nodes = [n.name for n in graph.graph.node if n.domain not in ("", "ai.onnx")]
        graph = convert_to_fp16(graph, keep_fp32_nodes=structure_path_nodes(graph) + plugin_nodes)
    elif precision == "int8":
        graph, calibration_record = _quantize(graph, calibration, config)
    info = ArtifactInfo.from_config(config, modality, opset=opset,
                                    plugins=tuple(sorted(plugin_operators())) if plugins else (),
                                    precision=precision, calibration=calibration_record)
    graph.doc_string = _doc_string(config, modality, precision, plugins)
    _write_with_metadata(graph, path, info)
    if check:
        check_onnx(path, allowed_plugins=plugin_operators() if plugins else frozenset())
    return path


def _trace(model, modality: str, config, opset: int, dynamic_batch: bool, plugins: bool, trace_batch: int):
    """The fp32 ``onnx.ModelProto`` of ``model`` for ``modality``."""
    import onnx

    images, heatmaps = example_inputs(config, trace_batch)
    wrapper = SpotEmbeddingGraph(model, modality)
    dynamic_axes = ({IMAGE_INPUT: {0: "batch"}, HEATMAP_INPUT: {0: "batch"}, EMBEDDING_OUTPUT: {0: "batch"}}
                    if dynamic_batch else None)
    kwargs: dict[str, Any] = dict(opset_version=opset, input_names=[IMAGE_INPUT, HEATMAP_INPUT],
                                  output_names=[EMBEDDING_OUTPUT], dynamic_axes=dynamic_axes, do_constant_folding=True)
    with tempfile.TemporaryDirectory(prefix="spot-edge-export.") as tmp, _eval_mode(wrapper), torch.no_grad(), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarning on static shapes, legacy-exporter deprecation
        raw = Path(tmp) / "graph.onnx"
        if plugins:
            from spot_edge.kernels.onnx_plugins import export_onnx_with_plugins

            export_onnx_with_plugins(wrapper, (images, heatmaps), str(raw), **kwargs)
        else:
            torch.onnx.export(wrapper, (images, heatmaps), str(raw), dynamo=False, **kwargs)
        graph = onnx.load(str(raw))
    _fix_output_shape(graph, config.embedding_dim, None if dynamic_batch else trace_batch)
    return graph


def _quantize(graph, calibration: Iterable, config):
    """The Q/DQ INT8 graph and the calibration record (source + method) for the metadata."""
    from spot_edge.engines.int8 import check_calibration_batches, describe_batches, quantize_int8

    spec = config.preprocessing
    batches = check_calibration_batches(calibration, (3, *spec.size), (config.num_pose_maps, *spec.heatmap_size))
    description = getattr(calibration, "description", None) or describe_batches(batches)
    quantized, record = quantize_int8(graph, batches)
    return quantized, {**dict(description), **record}


def _doc_string(config, modality: str, precision: str, plugins: bool) -> str:
    spec = config.preprocessing
    text = (f"SPOT visible-infrared ReID embedding ({modality} stem, {precision}). Inputs: images (B,3,"
            f"{spec.height},{spec.width}) float32 normalised outside the graph; heatmaps (B,{config.num_pose_maps},"
            f"{'x'.join(map(str, spec.heatmap_size))}) float32. Output: embedding (B,{config.embedding_dim}) float32, "
            f"L2-normalised.")
    if plugins:
        text += (" Fused ops are TensorRT plugin nodes (spot_edge domain): load libspot_edge_trt_plugins.so "
                 "before parsing; ONNX Runtime cannot run this graph.")
    return text


def _fix_output_shape(model_proto, embedding_dim: int, batch: int | None) -> None:
    """Declare the output as ``(batch, D)``: the exporter leaves D symbolic, and TensorRT / Triton
    and the engine runtime size their output buffers from the declared shape."""
    (output,) = [o for o in model_proto.graph.output if o.name == EMBEDDING_OUTPUT]
    dims = output.type.tensor_type.shape.dim
    while len(dims) < 2:
        dims.add()
    del dims[2:]
    if batch is None:
        dims[0].dim_param = "batch"
    else:
        dims[0].dim_value = batch
    dims[1].dim_value = int(embedding_dim)


def _write_with_metadata(graph, path: Path, info: ArtifactInfo) -> None:
    from spot_edge.engines.graph_props import save_with_metadata

    save_with_metadata(graph, path, info.to_props(), info.version)


def check_onnx(path: str | Path, trt_operators: bool = True, allowed_plugins: frozenset[str] = frozenset()) -> None:
    """ONNX checker with strict shape inference, spot-edge metadata (a SPOT graph or the pose
    graph), the precision check and (optionally) TensorRT operators (``allowed_plugins``:
    ``"domain::op"`` plugin nodes accepted besides the parser's own list)."""
    import onnx

    from spot_edge.engines.metadata import read_graph_info
    from spot_edge.engines.precision import check_graph_precision

    path = Path(path)
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    check_graph_precision(model, read_graph_info(model), str(path))
    if trt_operators:
        check_trt_operators(model, allowed_plugins)


def export_both(model: nn.Module, prefix: str | Path, calibration: dict[str, Iterable] | None = None,
                **kwargs) -> dict[str, Path]:
    """Export both modalities to ``<prefix>.visible.onnx`` and ``<prefix>.infrared.onnx``
    (``calibration``: ``{modality: batches}`` for int8: each graph calibrates on its modality)."""
    if kwargs.get("precision") == "int8" and set(calibration or {}) != set(MODALITIES):
        raise InputError("an int8 export of both modalities needs calibration={'visible': ..., 'infrared': ...}")
    return {m: export_onnx(model, onnx_path_for(prefix, m), m, calibration=(calibration or {}).get(m), **kwargs)
            for m in MODALITIES}


def onnx_path_for(prefix: str | Path, modality: str) -> Path:
    """The naming convention of spot-edge graphs: ``<prefix>.<modality>.onnx``."""
    prefix = Path(prefix)
    name = prefix.name[:-5] if prefix.name.endswith(".onnx") else prefix.name
    return prefix.with_name(f"{name}.{check_modality(modality)}.onnx")
