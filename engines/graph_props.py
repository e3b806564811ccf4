"""The one writer and reader of the spot-edge facts in an ONNX graph's ``metadata_props``.

Every graph spot-edge writes (SPOT's per-modality graphs, :mod:`spot_edge.engines.onnx_export`;
the pose graph, :mod:`spot_edge.engines.pose_onnx_export`) carries its facts as string key/values
prefixed ``spot_edge.`` in ``metadata_props``. :func:`set_metadata_props` replaces those keys in
a loaded ``onnx.ModelProto`` (other keys are kept) and stamps the producer; :func:`read_metadata_props`
loads a file (or takes a loaded model) and returns the key/values with the source named for
messages. What the keys mean is each graph's own dataclass: ``ArtifactInfo``
(:mod:`spot_edge.engines.metadata`) and ``PoseGraphInfo`` (:mod:`spot_edge.engines.pose_metadata`),
both with ``to_props`` / ``from_props``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from spot_edge import __version__

__all__ = ["PREFIX", "FORMAT_KEY", "set_metadata_props", "read_metadata_props", "save_with_metadata"]

PREFIX = "spot_edge."
FORMAT_KEY = PREFIX + "format"


def set_metadata_props(model, props: Mapping[str, str], version: str = __version__) -> None:
    """Replace ``props`` (full keys, ``spot_edge.``-prefixed) in ``model.metadata_props``, keeping
    every other key, and record spot-edge as the producer."""
    keep = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in props.items():
        model.metadata_props.add(key=key, value=str(value))
    model.producer_name = "spot-edge"
    model.producer_version = version


def save_with_metadata(model, path: str | Path, props: Mapping[str, str], version: str = __version__) -> Path:
    """:func:`set_metadata_props`, then write ``model`` to ``path`` atomically."""
    import onnx

    from spot_edge.atomic import atomic_path

    set_metadata_props(model, props, version)
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return path


def read_metadata_props(path_or_model, error: type[Exception], what: str = "ONNX model"
                        ) -> tuple[dict[str, str], str, object]:
    """``(props, source, model)`` of an ONNX file or a loaded ``onnx.ModelProto``.

    A missing file is a :class:`FileNotFoundError` naming ``what``; a file ONNX cannot read is an
    ``error`` (one line). External data is not loaded: the facts live in the graph proto."""
    import onnx

    if not isinstance(path_or_model, (str, Path)):
        model = path_or_model
        return {p.key: p.value for p in model.metadata_props}, what, model
    path = Path(path_or_model)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise error(f"{path} is not a readable ONNX model: {first}") from exc
    return {p.key: p.value for p in model.metadata_props}, str(path), model
