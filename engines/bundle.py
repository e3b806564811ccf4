"""An export bundle: every artefact of the pipeline in one folder, with a verified manifest.

``spot-edge export`` (:func:`spot_edge.engines.bundle_export.export_bundle`) writes::

    DIR/
      bundle.json                 the manifest, written atomically last
      pose.onnx                   the OpenPose graph (dynamic batch, height, width)
      spot.visible.onnx           SPOT, visible stem
      spot.infrared.onnx          SPOT, infrared stem
      engines/                    with --engines (TensorRT present): one engine per graph + sidecars
        pose.engine(.json), spot.visible.engine(.json), spot.infrared.engine(.json)

The manifest (``format`` :data:`BUNDLE_FORMAT`) records the spot-edge version, every file with its
size and SHA-256, and what a user of the bundle must know: SPOT's configuration, fingerprint,
preprocessing, normalisation, precision (and int8 calibration); the pose network's
configuration, weights fingerprint, stride, input spec and precision; the engines' target,
TensorRT version and GPU. Names inside it are resolved inside the folder
(:func:`spot_edge.paths.path_inside`: absolute names, ``..`` and links leading out are refused).

:func:`load_bundle` refuses a folder without a valid manifest (an export that did not finish has
none), verifies every file's size and SHA-256 (the message names the changed file) and checks
that the graphs' and engines' own metadata agree with the manifest, before anything runs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from spot_edge.engines.metadata import ArtifactError
from spot_edge.modality import MODALITIES

__all__ = ["BUNDLE_FORMAT", "MANIFEST_NAME", "POSE_GRAPH_NAME", "ENGINE_DIR", "BundleError", "Bundle",
           "is_bundle", "read_manifest", "load_bundle", "spot_graph_name"]

BUNDLE_FORMAT = "spot-edge-bundle/1"
MANIFEST_NAME = "bundle.json"
POSE_GRAPH_NAME = "pose.onnx"
ENGINE_DIR = "engines"
_AGAIN = "export the bundle again with spot-edge export"


class BundleError(ArtifactError):
    """A folder is not a usable spot-edge bundle (one line: what is wrong and what to do)."""


def spot_graph_name(modality: str) -> str:
    """``spot.<modality>.onnx``: SPOT's graph of one modality inside a bundle."""
    return f"spot.{modality}.onnx"


def is_bundle(path) -> bool:
    """True for a :class:`Bundle` or a folder holding a manifest, and for a folder that holds a
    bundle's pose graph without one (an unfinished export: :func:`load_bundle` refuses it)."""
    if isinstance(path, Bundle):
        return True
    if not isinstance(path, (str, os.PathLike)):
        return False
    folder = Path(path)
    return folder.is_dir() and ((folder / MANIFEST_NAME).exists() or (folder / POSE_GRAPH_NAME).exists())


@dataclass(frozen=True)
class Bundle:
    """A loaded (and, by :func:`load_bundle`, verified) bundle.

    Attributes:
        folder: the bundle folder (absolute).
        manifest: the manifest as read.
        spot_graphs / spot_engines: ``{modality: path}`` (engines: empty without ``--engines``).
        pose_graph / pose_engine: the pose graph, and its engine (None without ``--engines``).
    """

    folder: Path
    manifest: dict = field(repr=False)
    spot_graphs: dict[str, Path]
    pose_graph: Path
    spot_engines: dict[str, Path] = field(default_factory=dict)
    pose_engine: Path | None = None

    def __str__(self) -> str:
        """The folder: what messages about the bundle name."""
        return str(self.folder)

    @property
    def spot(self) -> dict:
        return self.manifest["spot"]

    @property
    def pose(self) -> dict:
        return self.manifest["pose"]

    @property
    def precision(self) -> str:
        """SPOT's graphs' precision."""
        return self.spot["precision"]

    @property
    def pose_fingerprint(self) -> str:
        return self.pose["weights_fingerprint"]

    @property
    def spot_config(self):
        """The :class:`spot_edge.model.SpotConfig` of SPOT's graphs."""
        from spot_edge.model import SpotConfig

        return SpotConfig.from_dict(self.spot["config"])

    def has_engines(self, kind: str) -> bool:
        """Whether the bundle holds TensorRT engines for ``"spot"`` (both modalities) or ``"pose"``."""
        return bool(self.spot_engines) if kind == "spot" else self.pose_engine is not None

    def describe(self) -> dict[str, Any]:
        return {"bundle": str(self.folder), "spot_precision": self.precision, "pose_precision": self.pose["precision"],
                "engines": {"spot": self.has_engines("spot"), "pose": self.has_engines("pose")}}


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of ``folder`` as JSON, its form checked (no file is read or hashed)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BundleError(f"bundle {folder} is not a folder (spot-edge export writes a folder)")
    path = folder / MANIFEST_NAME
    if not path.is_file():
        hint = ""
        if all((folder / spot_graph_name(m)).is_file() for m in MODALITIES):
            hint = f" (for SPOT's graphs alone, give their prefix {folder / 'spot'})"
        raise BundleError(f"{folder} has no {MANIFEST_NAME}: not a spot-edge bundle, or its export did not "
                          f"finish (the manifest is written last); {_AGAIN}{hint}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); {_AGAIN}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise BundleError(f"{path} is not a spot-edge bundle manifest (format {found!r}, expected "
                          f"{BUNDLE_FORMAT!r}); {_AGAIN}")
    for key, kind in (("files", dict), ("spot", dict), ("pose", dict)):
        if not isinstance(manifest.get(key), kind):
            raise BundleError(f"{path}: the manifest's {key!r} must be a JSON object; {_AGAIN}")
    for name, entry in manifest["files"].items():
        if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str)
                and isinstance(entry.get("bytes"), int)):
            raise BundleError(f"{path}: file entry {name!r} needs sha256 and bytes; {_AGAIN}")
    return manifest


def _resolve(folder: Path, manifest: dict, name: Any, what: str) -> Path:
    """``name`` (from the manifest) inside ``folder``, listed among its files."""
    from spot_edge.errors import InputError
    from spot_edge.paths import path_inside

    try:
        path = path_inside(folder, name, f"bundle {what}")
    except InputError as exc:
        raise BundleError(str(exc)) from None
    if name not in manifest["files"]:
        raise BundleError(f"bundle {folder}: its {what} {name} is not among the manifest's files (no fingerprint "
                          f"to check it against); {_AGAIN}")
    return path


def _verify_files(folder: Path, manifest: dict) -> None:
    """Every listed file exists inside the folder with its recorded size and SHA-256."""
    from spot_edge.hashing import sha256_file

    for name, entry in manifest["files"].items():
        path = _resolve(folder, manifest, name, "file")
        if not path.is_file():
            raise BundleError(f"bundle {folder}: {name} is missing; {_AGAIN}")
        if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
            raise BundleError(f"bundle {folder}: {name} was changed after export (its SHA-256 differs from the "
                              f"manifest's); {_AGAIN}")


def _check_spot(folder: Path, spot: Mapping[str, Any], graphs: dict[str, Path], engines: dict[str, Path]) -> None:
    """SPOT's graphs and engines record what the manifest says (modality, model, precision, preprocessing)."""
    from spot_edge.engines.metadata import EngineMetadata, read_onnx_info
    from spot_edge.preprocessing import PreprocessSpec

    spec = PreprocessSpec.from_dict(dict(spot["preprocessing"]))
    for modality, path in graphs.items():
        info = read_onnx_info(path)
        found = {"modality": info.modality, "config fingerprint": info.config_fingerprint,
                 "precision": info.precision}
        wanted = {"modality": modality, "config fingerprint": spot["config_fingerprint"],
                  "precision": spot["precision"]}
        _same(folder, path.name, found, wanted)
        spec.check_matches(info.preprocessing, f"bundle {folder}: {path.name}")
    for modality, path in engines.items():
        meta = EngineMetadata.load(path)
        _same(folder, path.name, {"kind": meta.kind, "modality": meta.modality,
                                  "config fingerprint": meta.artifact.config_fingerprint,
                                  "precision": meta.precision},
              {"kind": "spot", "modality": modality, "config fingerprint": spot["config_fingerprint"],
               "precision": spot["precision"]})


def _check_pose(folder: Path, pose: Mapping[str, Any], graph: Path, engine: Path | None) -> None:
    from spot_edge.engines.metadata import EngineMetadata
    from spot_edge.engines.pose_metadata import read_pose_onnx_info

    wanted = {"weights fingerprint": pose["weights_fingerprint"], "precision": pose["precision"],
              "stride": pose["stride"], "configuration": dict(pose["config"])}
    info = read_pose_onnx_info(graph)
    info.check(source=f"bundle {folder}: {graph.name}")
    _same(folder, graph.name, {"weights fingerprint": info.weights_fingerprint, "precision": info.precision,
                               "stride": info.stride, "configuration": info.config_dict()}, wanted)
    if engine is not None:
        meta = EngineMetadata.load(engine)
        if meta.kind != "pose":
            raise BundleError(f"bundle {folder}: {engine.name} is not a pose engine; {_AGAIN}")
        _same(folder, engine.name, {"weights fingerprint": meta.artifact.weights_fingerprint,
                                    "precision": meta.precision, "stride": meta.artifact.stride,
                                    "configuration": meta.artifact.config_dict()}, wanted)


def _same(folder: Path, name: str, found: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    differ = [f"{k} {found[k]!r} (manifest: {wanted[k]!r})" for k in wanted if found[k] != wanted[k]]
    if differ:
        raise BundleError(f"bundle {folder}: {name} records " + ", ".join(differ) + f"; {_AGAIN}")


def load_bundle(folder: str | os.PathLike, verify: bool = True) -> Bundle:
    """The bundle in ``folder`` (a path already resolved from the user's input).

    ``verify`` (default): every file's size and SHA-256, and the graphs' and engines' metadata
    against the manifest. :class:`BundleError` (one line) for a missing or invalid manifest, a
    missing, changed or escaping file, or metadata that disagrees with the manifest."""
    folder = Path(os.path.abspath(folder))
    manifest = read_manifest(folder)
    spot, pose = manifest["spot"], manifest["pose"]
    try:
        graph_names, engine_names = dict(spot["graphs"]), dict(spot.get("engines") or {})
        missing = [m for m in MODALITIES if m not in graph_names]
        if missing or set(graph_names) - set(MODALITIES) or set(engine_names) - set(graph_names):
            raise BundleError(f"bundle {folder}: the manifest must name SPOT's graphs for {', '.join(MODALITIES)} "
                              f"(found {sorted(graph_names)}); {_AGAIN}")
        for key in ("precision", "config_fingerprint", "preprocessing", "config"):
            spot[key]  # noqa: B018 - presence
        for key in ("precision", "weights_fingerprint", "stride", "config", "graph"):
            pose[key]  # noqa: B018
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, BundleError):
            raise
        problem = f"missing {exc}" if isinstance(exc, KeyError) else f"SPOT's graphs and engines: {exc}"
        raise BundleError(f"bundle {folder}: malformed manifest ({problem}); {_AGAIN}") from None
    graphs = {m: _resolve(folder, manifest, n, "graph") for m, n in graph_names.items()}
    engines = {m: _resolve(folder, manifest, n, "engine") for m, n in engine_names.items()}
    pose_graph = _resolve(folder, manifest, pose["graph"], "pose graph")
    pose_engine = _resolve(folder, manifest, pose["engine"], "pose engine") if pose.get("engine") else None
    if verify:
        _verify_files(folder, manifest)
        try:
            _check_spot(folder, spot, graphs, engines)
            _check_pose(folder, pose, pose_graph, pose_engine)
        except (KeyError, TypeError, ValueError) as exc:
            from spot_edge.preprocessing import PreprocessMismatchError

            if isinstance(exc, (ArtifactError, PreprocessMismatchError)):  # their own one-line messages
                raise
            raise BundleError(f"bundle {folder}: malformed manifest (its spot or pose section: {exc!r}); "
                              f"{_AGAIN}") from None
    return Bundle(folder=folder, manifest=manifest, spot_graphs=graphs, pose_graph=pose_graph,
                  spot_engines=engines, pose_engine=pose_engine)
