"""The structure path of a SPOT graph: the nodes computed from the pose maps alone.

SPOT's structure branch (relation network N_r, eq. 1; the structure injection; TPI's part maps,
eq. 8, and their partition, eq. 9) reads only the ``heatmaps`` input. TPI then gives every node
to the part whose map is largest there, a hard max: a small rounding error anywhere on this path
can flip assignments and change an embedding a lot (measured: ``benchmarks/bench_precision.py
--study``; figures in ``engines/README.md``). The reduced-precision graphs therefore keep this
path in float32; it is cheap (a few small convolutions and reductions at the feature-map size).
"""

from __future__ import annotations

from spot_edge.engines.metadata import HEATMAP_INPUT

__all__ = ["structure_path_nodes"]


def structure_path_nodes(model, source: str = HEATMAP_INPUT) -> list[str]:
    """Names of the nodes of ``model`` (an ``onnx.ModelProto``) whose inputs come from ``source``
    and from no other graph input (initializers and constants are neutral), in graph order.
    Empty for graphs without a ``heatmaps`` input (configurations without structure)."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = {i.name for i in graph.input if i.name not in initializers}
    if source not in inputs:
        return []
    origin: dict[str, frozenset[str]] = {name: frozenset({name}) for name in inputs}
    path = []
    for node in graph.node:  # exported graphs are topologically sorted (the ONNX checker requires it)
        found: frozenset[str] = frozenset().union(*(origin.get(i, frozenset()) for i in node.input if i))
        for output in node.output:
            origin[output] = found
        if found == {source}:
            path.append(node.name)
    return path
