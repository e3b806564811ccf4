"""Opt-in ONNX export of the two ops as TensorRT plugin nodes.

By default ``torch.onnx.export`` sees the reference ops (MatMul / Softmax / MatMul and the
ReduceMax / Equal / Mul / MatMul / ReduceMean / Div chain), which every runtime runs. Inside
:func:`plugin_export` (or through :func:`export_onnx_with_plugins`) the two ops are exported
instead as single custom nodes that the TensorRT ONNX parser maps onto the IPluginV3 plugins
of ``kernels/tensorrt/`` (``libspot_edge_trt_plugins.so``, which must be loaded before
parsing, e.g. ``trtexec --dynamicPlugins=...`` or ``IPluginRegistry.load_library``):

====================  ========================  =========================================
node op_type          inputs -> output          attributes
====================  ========================  =========================================
SpotStructureAttention q, k, v -> out            scale (float), plugin_version "1",
                                                 plugin_namespace "spot_edge"
SpotPartPool           part_maps, features       eps (float), plugin_version "1",
                       -> out                    plugin_namespace "spot_edge"
====================  ========================  =========================================

The TensorRT parser finds a plugin by op_type = creator name, ``plugin_version`` and
``plugin_namespace``; the remaining attributes become the creator's PluginFields (``scale`` /
``eps``, float32). The node domain is ``spot_edge`` (opset 1); onnxruntime cannot run these
nodes, so keep the default export for onnxruntime.

This path uses the TorchScript exporter (``dynamo=False``): the custom nodes come from the
``symbolic`` of a :class:`torch.autograd.Function` whose forward is the reference.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from spot_edge.kernels.reference import fused_structure_attention_reference, part_pool_reference

PLUGIN_NAMESPACE = "spot_edge"
PLUGIN_VERSION = "1"
ONNX_DOMAIN = "spot_edge"
ONNX_DOMAIN_VERSION = 1
STRUCTURE_ATTENTION_PLUGIN = "SpotStructureAttention"
PART_POOL_PLUGIN = "SpotPartPool"
PLUGIN_OP_TYPES = (STRUCTURE_ATTENTION_PLUGIN, PART_POOL_PLUGIN)
DEFAULT_OPSET = 17

_PLUGIN_EXPORT = contextvars.ContextVar("spot_edge_plugin_export", default=False)


def plugin_export_active() -> bool:
    """True inside :func:`plugin_export` (the dispatchers then emit plugin nodes)."""
    return _PLUGIN_EXPORT.get()


@contextlib.contextmanager
def plugin_export(enabled: bool = True) -> Iterator[None]:
    """Within this context, ``fused_structure_attention`` / ``part_pool`` export as plugin nodes.

    Outside ``torch.onnx.export`` the ops still compute the reference (the plugin Functions'
    forward), so a model run inside the context gives the same numbers.
    """
    token = _PLUGIN_EXPORT.set(bool(enabled))
    try:
        yield
    finally:
        _PLUGIN_EXPORT.reset(token)


def _typed_like(out, like, sizes_of, other):
    """Give a custom node's output the dtype of ``like`` and the (partly static) shape
    ``sizes_of(other_sizes, like_sizes)``, so ONNX shape inference downstream keeps working."""
    try:
        other_sizes, like_sizes = other.type().varyingSizes(), like.type().varyingSizes()
        if other_sizes is None or like_sizes is None:
            out.setType(like.type())
        else:
            out.setType(like.type().with_sizes(sizes_of(other_sizes, like_sizes)))
    except (AttributeError, RuntimeError):   # type unknown: leave it to the consumer
        pass
    return out


class StructureAttentionPlugin(torch.autograd.Function):
    """Reference forward; exports as one ``spot_edge::SpotStructureAttention`` node."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
        return fused_structure_attention_reference(q, k, v, scale)

    @staticmethod
    def symbolic(g, q, k, v, scale: float):
        out = g.op(f"{ONNX_DOMAIN}::{STRUCTURE_ATTENTION_PLUGIN}", q, k, v, scale_f=float(scale),
                   plugin_version_s=PLUGIN_VERSION, plugin_namespace_s=PLUGIN_NAMESPACE)
        return _typed_like(out, v, lambda qs, vs: [qs[0], qs[1], vs[2]], q)


class PartPoolPlugin(torch.autograd.Function):
    """Reference forward; exports as one ``spot_edge::SpotPartPool`` node."""

    @staticmethod
    def forward(ctx, part_maps: Tensor, features: Tensor, eps: float) -> Tensor:
        return part_pool_reference(part_maps, features, eps)

    @staticmethod
    def symbolic(g, part_maps, features, eps: float):
        out = g.op(f"{ONNX_DOMAIN}::{PART_POOL_PLUGIN}", part_maps, features, eps_f=float(eps),
                   plugin_version_s=PLUGIN_VERSION, plugin_namespace_s=PLUGIN_NAMESPACE)
        return _typed_like(out, features, lambda ms, fs: [ms[0], ms[1], fs[1]], part_maps)


def structure_attention_plugin(q: Tensor, k: Tensor, v: Tensor, scale: float = 1.0) -> Tensor:
    return StructureAttentionPlugin.apply(q, k, v, float(scale))


def part_pool_plugin(part_maps: Tensor, features: Tensor, eps: float = 1e-6) -> Tensor:
    return PartPoolPlugin.apply(part_maps, features, float(eps))


def export_onnx_with_plugins(model: torch.nn.Module, args: tuple[Any, ...], f: str | os.PathLike,
                             *, opset_version: int = DEFAULT_OPSET, **export_kwargs: Any) -> None:
    """``torch.onnx.export`` with the two ops as TensorRT plugin nodes.

    Args:
        model: the module to export (put it in ``eval()`` mode first).
        args: example inputs, as for ``torch.onnx.export``.
        f: output ``.onnx`` path.
        opset_version: default ONNX opset (17).
        **export_kwargs: passed on to ``torch.onnx.export`` (``input_names``, ``output_names``,
            ``dynamic_axes``, ...). ``dynamo`` is forced to ``False`` and ``custom_opsets``
            gets the ``spot_edge`` domain.

    Raises:
        ValueError: when ``dynamo=True`` is requested (the plugin nodes need the TorchScript
            exporter).
    """
    if export_kwargs.pop("dynamo", False):
        raise ValueError("plugin export uses the TorchScript ONNX exporter; drop dynamo=True")
    custom_opsets = dict(export_kwargs.pop("custom_opsets", None) or {})
    custom_opsets.setdefault(ONNX_DOMAIN, ONNX_DOMAIN_VERSION)
    with plugin_export(True):
        torch.onnx.export(model, args, str(f), dynamo=False, opset_version=opset_version,
                          custom_opsets=custom_opsets, **export_kwargs)


def plugin_nodes(onnx_model_or_path: Any) -> list[Any]:
    """The plugin nodes (``onnx.NodeProto``) of an ONNX model or file, in graph order."""
    import onnx

    model = onnx_model_or_path
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    return [node for node in model.graph.node if node.op_type in PLUGIN_OP_TYPES]
