"""Find the per-modality artifacts a source names: a file, a directory or a ``<prefix>``.

Naming convention (what ``spot-edge export-onnx`` / ``build-engine`` write):
``<prefix>.visible.onnx``, ``<prefix>.infrared.onnx``, ``<prefix>.<modality>.engine`` (+ ``.json``).
A directory is searched for such files; a single file holds the one modality its metadata names.
A bundle folder (``spot-edge export``: a ``bundle.json`` manifest) is its own kind, ``"bundle"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
CHECKPOINT_SUFFIXES = (".safetensors",)


def classify(source) -> str:
    """``"checkpoint"``, ``"onnx"``, ``"engine"``, ``"bundle"`` (a folder written by ``spot-edge export``,
    or a loaded :class:`~spot_edge.engines.bundle.Bundle`) or ``"model"`` (an in-memory SPOT)."""
    from spot_edge.engines.bundle import is_bundle

    if is_bundle(source):
        return "bundle"
    if isinstance(source, Mapping):
        kinds = {classify(v) for v in source.values()}
        if len(kinds) != 1:
            raise ValueError(f"a modality->file mapping must hold one kind of file, got {sorted(kinds)}")
        return kinds.pop()
    if not isinstance(source, (str, Path)):
        return "model"
    path = Path(source)
    if path.suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    if path.suffix in ONNX_SUFFIXES:
        return "onnx"
    if path.suffix in ENGINE_SUFFIXES:
        return "engine"
    candidates = _candidates(path, ONNX_SUFFIXES + ENGINE_SUFFIXES + CHECKPOINT_SUFFIXES)
    kinds = {classify(c) for c in candidates}
    if not kinds:
        raise FileNotFoundError(f"{source}: no checkpoint (.safetensors), ONNX model (.onnx) or TensorRT engine "
                                f"(.engine/.plan) found there (expected e.g. {path}.visible.onnx)")
    for kind in ("engine", "onnx", "checkpoint"):  # the most deployable one wins
        if kind in kinds:
            return kind
    raise AssertionError(kinds)


def _candidates(path: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and p.suffix in suffixes)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir()
                  if p.is_file() and p.suffix in suffixes and p.name.startswith(path.name + "."))


def find_per_modality(source, suffixes: tuple[str, ...], modality_of: Callable[[Path], str],
                      what: str) -> dict[str, Path]:
    """``{modality: path}`` for a file, a directory, a prefix or an explicit mapping."""
    if isinstance(source, Mapping):
        out = {}
        for modality, p in source.items():
            p = Path(p)
            if not p.is_file():
                raise FileNotFoundError(f"{what} for {modality} not found: {p}")
            found = modality_of(p)
            if found != modality:
                raise ValueError(f"{p} holds the {found} graph, but was given for {modality}")
            out[modality] = p
        return out
    path = Path(source)
    if path.is_file():
        return {modality_of(path): path}
    files = _candidates(path, suffixes)
    if not files:
        raise FileNotFoundError(f"no {what} found at {source} (a file, a directory, or a prefix P with "
                                f"P.visible{suffixes[0]} / P.infrared{suffixes[0]})")
    out: dict[str, Path] = {}
    for p in files:
        modality = modality_of(p)
        if modality in out:
            raise ValueError(f"two {what}s for {modality} at {source}: {out[modality].name} and {p.name}; "
                             f"name the one to use")
        out[modality] = p
    return out
