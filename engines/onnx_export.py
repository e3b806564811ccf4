"""Export a SPOT network to ONNX: one graph per modality, TensorRT-parsable operators only.

Graph interface (the same for every spot-edge graph and engine):

- input ``images``   ``(B, 3, H, W)`` float32, already normalised by ``PreprocessSpec.normalize``
  (normalisation happens *outside* the graph; see :mod:`spot_edge.engines.metadata`);
- input ``heatmaps`` ``(B, 56, Hs, Ws)`` float32 OpenPose maps at ``preprocessing.heatmap_size``;
- output ``embedding`` ``(B, D)`` float32, L2-normalised.

The batch dimension is dynamic (``dynamic_batch=True``); H, W, Hs, Ws are fixed by the config.
The two modalities differ in their stem (conv1..layer2), so each gets its own graph.
The TorchScript exporter (``dynamo=False``) is used: it needs no ``onnxscript`` and yields plain
opset-17 operators that the TensorRT 10.3 parser imports (:func:`check_trt_operators`).
"""

from __future__ import annotations

import collections
import contextlib
import os
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor, nn

from spot_edge.engines.metadata import (EMBEDDING_OUTPUT, HEATMAP_INPUT, IMAGE_INPUT, ArtifactInfo,
                                        check_modality)

DEFAULT_OPSET = 17
#: TensorRT 10.3's parser accepts opsets 9..20; LayerNormalization needs 17.
SUPPORTED_OPSETS = range(17, 21)
TRT_OPS_FILE = Path(__file__).with_name("trt_supported_ops.txt")


class UnsupportedOperatorError(ValueError):
    """An exported graph holds operators the TensorRT 10.3 ONNX parser cannot import."""


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


def _plugin_exporter():
    """The kernels area's ``export_onnx_with_plugins`` (a drop-in for ``torch.onnx.export`` that
    writes the fused ops as TensorRT plugin nodes), or None when this installation lacks it."""
    try:
        from spot_edge.kernels import onnx_plugins
    except ImportError:
        return None
    fn = getattr(onnx_plugins, "export_onnx_with_plugins", None)
    return fn if callable(fn) else None


def plugin_operators() -> frozenset[str]:
    """``"domain::op_type"`` of the kernels' TensorRT plugin nodes (allowed in plugin exports)."""
    try:
        from spot_edge.kernels import onnx_plugins
    except ImportError:
        return frozenset()
    return frozenset(f"{onnx_plugins.ONNX_DOMAIN}::{op}" for op in onnx_plugins.PLUGIN_OP_TYPES)


def export_onnx(model: nn.Module, path: str | Path, modality: str, opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = True, plugins: bool = False, check: bool = True,
                trace_batch: int = 2) -> Path:
    """Export ``model`` (a :class:`spot_edge.model.SPOT`) for one modality to ``path``.

    Args:
        model: the network; its train/eval state is restored afterwards.
        path: output ``.onnx`` file (written atomically; parent folders are created).
        modality: ``"visible"`` or ``"infrared"``: which stem the graph holds.
        opset: ONNX opset, 17..20 (TensorRT 10.3 parses up to 20; LayerNormalization needs 17).
        dynamic_batch: batch dimension symbolic (``"batch"``); else fixed to ``trace_batch``.
        plugins: write the fused kernels as TensorRT plugin nodes (``spot_edge`` domain, through
            ``spot_edge.kernels.onnx_plugins.export_onnx_with_plugins``); such a graph needs the
            plugin library in TensorRT and does not run in ONNX Runtime. The default exports plain
            ONNX operators that every runtime runs.
        check: run the ONNX checker with full shape inference and the TensorRT operator check.
        trace_batch: batch size of the example inputs used for tracing.

    Returns:
        ``path``. The file carries :class:`ArtifactInfo` in its ``metadata_props``.
    """
    import onnx

    from spot_edge.model import SPOT

    check_modality(modality)
    if not isinstance(model, SPOT):
        raise TypeError(f"export_onnx expects a spot_edge.model.SPOT, got {type(model).__name__}")
    if opset not in SUPPORTED_OPSETS:
        raise ValueError(f"opset {opset} is outside {SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1} "
                         f"(TensorRT 10.3 parses opsets up to 20; LayerNormalization needs 17)")
    if trace_batch < 1:
        raise ValueError(f"trace_batch must be >= 1, got {trace_batch}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = model.config
    info = ArtifactInfo.from_config(config, modality, opset=opset,
                                    plugins=tuple(sorted(plugin_operators())) if plugins else ())

    exporter = torch.onnx.export
    if plugins:
        exporter = _plugin_exporter()
        if exporter is None:
            raise NotImplementedError("export with TensorRT plugins needs spot_edge.kernels.onnx_plugins."
                                      "export_onnx_with_plugins, which this installation does not provide; export "
                                      "without --plugins (plain ONNX operators, parsed natively by TensorRT)")

    images, heatmaps = example_inputs(config, trace_batch)
    wrapper = SpotEmbeddingGraph(model, modality)
    dynamic_axes = ({IMAGE_INPUT: {0: "batch"}, HEATMAP_INPUT: {0: "batch"}, EMBEDDING_OUTPUT: {0: "batch"}}
                    if dynamic_batch else None)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp, _eval_mode(wrapper), torch.no_grad(), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarning on static shapes, legacy-exporter deprecation
        raw = Path(tmp) / "graph.onnx"
        kwargs = dict(opset_version=opset, input_names=[IMAGE_INPUT, HEATMAP_INPUT], output_names=[EMBEDDING_OUTPUT],
                      dynamic_axes=dynamic_axes, do_constant_folding=True)
        if plugins:
            exporter(wrapper, (images, heatmaps), str(raw), **kwargs)
        else:
            exporter(wrapper, (images, heatmaps), str(raw), dynamo=False, **kwargs)
        graph = onnx.load(str(raw))
    _fix_output_shape(graph, config.embedding_dim, None if dynamic_batch else trace_batch)
    graph.doc_string = (f"SPOT visible-infrared ReID embedding ({modality} stem). Inputs: images (B,3,"
                        f"{config.preprocessing.height},{config.preprocessing.width}) float32 normalised outside "
                        f"the graph; heatmaps (B,{config.num_pose_maps},{'x'.join(map(str, config.preprocessing.heatmap_size))}). "
                        f"Output: embedding (B,{config.embedding_dim}) L2-normalised."
                        + (" Fused ops are TensorRT plugin nodes (spot_edge domain): load "
                           "libspot_edge_trt_plugins.so before parsing; ONNX Runtime cannot run this graph."
                           if plugins else ""))
    _write_with_metadata(graph, path, info)
    if check:
        check_onnx(path, allowed_plugins=plugin_operators() if plugins else frozenset())
    return path


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
    import onnx

    props = info.to_props()
    keep = [p for p in graph.metadata_props if p.key not in props]
    del graph.metadata_props[:]
    graph.metadata_props.extend(keep)
    for key, value in props.items():
        graph.metadata_props.add(key=key, value=value)
    graph.producer_name = "spot-edge"
    graph.producer_version = info.version
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(graph, str(tmp))
    os.replace(tmp, path)


def check_onnx(path: str | Path, trt_operators: bool = True, allowed_plugins: frozenset[str] = frozenset()) -> None:
    """ONNX checker with strict shape inference, spot-edge metadata and (optionally) TensorRT operators
    (``allowed_plugins``: ``"domain::op"`` plugin nodes accepted besides the parser's own list)."""
    import onnx

    path = Path(path)
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    from spot_edge.engines.metadata import read_onnx_info

    read_onnx_info(model)
    if trt_operators:
        check_trt_operators(model, allowed_plugins)


# ------------------------------------------------------------------------ TensorRT operator list
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


def export_both(model: nn.Module, prefix: str | Path, **kwargs) -> dict[str, Path]:
    """Export both modalities to ``<prefix>.visible.onnx`` and ``<prefix>.infrared.onnx``."""
    from spot_edge.engines.metadata import MODALITIES

    return {m: export_onnx(model, onnx_path_for(prefix, m), m, **kwargs) for m in MODALITIES}


def onnx_path_for(prefix: str | Path, modality: str) -> Path:
    """The naming convention of spot-edge graphs: ``<prefix>.<modality>.onnx``."""
    prefix = Path(prefix)
    name = prefix.name[:-5] if prefix.name.endswith(".onnx") else prefix.name
    return prefix.with_name(f"{name}.{check_modality(modality)}.onnx")
