"""``export_bundle``: SPOT's two graphs, the pose graph, engines where TensorRT is present, a manifest.

One call (``spot-edge export``) for every artefact the pipeline runs (layout and manifest:
:mod:`spot_edge.engines.bundle`):

1. every option is checked before anything is written (precision, calibration, pose weights,
   TensorRT and a GPU when engines are asked for);
2. an existing bundle, or what an export that did not finish left (a bundle's files without a
   manifest), is replaced only with ``force=True``: the manifest goes first, so a folder caught
   half-way never passes for a bundle; a folder holding anything else is never touched;
3. the pose graph (:func:`~spot_edge.engines.pose_onnx_export.export_pose_onnx`: fp32 / fp16,
   dynamic batch, height and width) first, so that a folder left by an interrupted export is
   recognised as an unfinished bundle (and refused) rather than read as a folder of SPOT graphs;
   then SPOT's graphs (:func:`~spot_edge.engines.onnx_export.export_both`: fp32 / fp16 / int8 with
   calibration); each written atomically and checked;
4. with ``engines=True``: one TensorRT engine per graph with the target's profiles (SPOT: batch;
   pose: batch, height, width) and their metadata sidecars;
5. the manifest, every file's size and SHA-256 in it, written atomically, last.

Pose precision: ``fp32`` or ``fp16`` (default: ``fp32`` in an fp32 bundle, ``fp16`` otherwise).
There is no int8 pose graph: the engines' quantiser path calibrates on SPOT's inputs (person
crops with their pose maps), not on the full frames the pose network reads, and its INT8
keypoint accuracy cannot be measured without the real weights (none exist on the machines that
built this); an int8 bundle keeps the pose network in fp16.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from spot_edge import __version__
from spot_edge.atomic import atomic_write_json
from spot_edge.engines.bundle import (BUNDLE_FORMAT, ENGINE_DIR, MANIFEST_NAME, POSE_GRAPH_NAME, Bundle, BundleError,
                                      load_bundle, read_manifest, spot_graph_name)
from spot_edge.engines.metadata import PRECISIONS
from spot_edge.errors import InputError
from spot_edge.hashing import sha256_file
from spot_edge.modality import MODALITIES

__all__ = ["export_bundle", "default_pose_precision", "check_out_folder", "check_tensorrt_for_engines"]

#: the pose graph is traced at this size (its height and width stay dynamic)
TRACE_HW = (64, 64)


def default_pose_precision(precision: str) -> str:
    """The pose graph's precision in a bundle of SPOT ``precision``: fp32 stays fp32, else fp16."""
    return "fp32" if precision == "fp32" else "fp16"


def export_bundle(model, pose_weights: str | os.PathLike, out: str | os.PathLike, *, precision: str = "fp32",
                  pose_precision: str | None = None, calibration: Mapping[str, Iterable] | None = None,
                  pose_config="openpose_coco", engines: bool = False, build_options=None, gpu=None,
                  force: bool = False, sources: Mapping[str, str] | None = None,
                  log: Callable[[str], None] | None = None) -> Bundle:
    """Write the bundle of ``model`` (a :class:`spot_edge.model.SPOT`) and ``pose_weights`` to ``out``.

    Args:
        model: SPOT (e.g. :func:`spot_edge.model.load_checkpoint`).
        pose_weights: OpenPose COCO body weights (``.pth`` / ``.caffemodel`` / ``.safetensors``).
        out: the bundle folder (absolute, or relative to the working directory).
        precision: SPOT's graphs: ``fp32``, ``fp16`` or ``int8`` (needs ``calibration``).
        pose_precision: ``fp32`` / ``fp16`` (None: :func:`default_pose_precision`).
        calibration: int8: ``{modality: batches}`` (e.g. :func:`spot_edge.calibration_data.calibration_set`).
        pose_config: pose network configuration (``openpose_coco``, ``openpose_coco_lite``, a
            :class:`~spot_edge.pose.network.PoseNetConfig`).
        engines: also build TensorRT engines (TensorRT and a CUDA GPU needed).
        build_options: :class:`~spot_edge.engines.trt_builder.BuildOptions` (e.g. ``from_target``).
        gpu: the GPU to record (default: the current CUDA device; tests pass one).
        force: replace an existing bundle in ``out``.
        sources: free-form provenance recorded in the manifest (e.g. the checkpoint's file name).
        log: progress callback.

    Returns:
        The written :class:`~spot_edge.engines.bundle.Bundle`.
    """
    from spot_edge.engines.pose_metadata import POSE_PRECISIONS

    say = log or (lambda message: None)
    out = Path(os.path.abspath(out))
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    pose_precision = pose_precision or default_pose_precision(precision)
    if pose_precision not in POSE_PRECISIONS:
        raise InputError(f"the pose graph's precision must be one of {', '.join(POSE_PRECISIONS)}, got "
                         f"{pose_precision!r} (there is no int8 pose graph: see spot_edge.engines.bundle_export)")
    if precision == "int8" and set(calibration or {}) != set(MODALITIES):
        raise InputError("an int8 bundle needs calibration data for both modalities (spot-edge export "
                         "--calibration DATA)")
    if precision != "int8" and calibration:
        raise InputError(f"calibration data is for int8 bundles only (precision {precision})")
    if build_options is not None and build_options.precision is not None:
        raise InputError("a bundle's engines compute what its graphs say: leave the build precision unset and "
                         "choose the precision of the export")
    check_out_folder(out, force)
    if engines:
        gpu = check_tensorrt_for_engines(gpu)
    body = _pose_network(pose_weights, pose_config)
    _prepare_folder(out, force)

    say(f"exporting the {pose_precision} pose graph")
    from spot_edge.engines.pose_onnx_export import export_pose_onnx

    pose_graph = export_pose_onnx(body, out / POSE_GRAPH_NAME, sample_hw=TRACE_HW, precision=pose_precision)
    written: list[Path] = [pose_graph]
    say(f"exporting SPOT's {precision} graphs")
    from spot_edge.engines.onnx_export import export_both

    graphs = export_both(model, out / "spot", precision=precision, calibration=dict(calibration or {}) or None)
    written += graphs.values()
    built: dict[str, Path] = {}
    build_meta = None
    if engines:
        built, build_meta = _build_engines(out, {**graphs, "pose": pose_graph}, build_options, gpu, say)
        written += [p for path in built.values() for p in (path, path.with_name(path.name + ".json"))]

    manifest = _manifest(out, model, body, graphs, pose_graph, built, build_meta, precision, pose_precision,
                         written, sources)
    say("writing the manifest")
    atomic_write_json(out / MANIFEST_NAME, manifest)
    return load_bundle(out, verify=False)


def check_tensorrt_for_engines(gpu=None):
    """TensorRT importable and a GPU to build for (``gpu``, else the current CUDA device), or one
    clear error before anything is written."""
    from spot_edge.engines.trt_builder import current_gpu
    from spot_edge.engines.trt_compat import TensorRTUnavailableError, import_tensorrt

    try:
        import_tensorrt()
        return gpu or current_gpu()
    except TensorRTUnavailableError as exc:
        raise TensorRTUnavailableError(f"engines were asked for (--engines), but {exc} Export without "
                                       f"--engines here, then build the engines on the target") from None


def _pose_network(weights, config):
    from spot_edge.pose.network import OpenPoseBody
    from spot_edge.pose.weights import load_pose_weights

    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"pose weights not found: {weights} (spot-edge pose fetch-weights downloads them)")
    body = OpenPoseBody(config).eval()
    load_pose_weights(body, weights)
    return body


def _layout_names() -> set[str]:
    """The names a bundle's files and folders take at its top level."""
    return {MANIFEST_NAME, POSE_GRAPH_NAME, ENGINE_DIR, *(spot_graph_name(m) for m in MODALITIES)}


def _leftover(entry: Path) -> bool:
    """A bundle file, or the temporary file of an atomic write into the bundle that was cut short."""
    return entry.name in _layout_names() or (entry.name.startswith(".") and ".tmp" in entry.name)


def _valid_manifest(out: Path) -> bool:
    try:
        read_manifest(out)
    except BundleError:
        return False
    return True


def check_out_folder(out: str | os.PathLike, force: bool) -> str:
    """What ``out`` holds, refused unless an export may write there (nothing is changed):
    ``"new"`` (missing or empty), ``"bundle"`` (a bundle; needs ``force``) or ``"unfinished"``
    (a bundle's files without a manifest, from an export that did not finish; needs ``force``).
    :class:`~spot_edge.errors.InputError` (one line) for a file, a folder holding anything else,
    or a bundle without ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"the bundle folder {out} is a file")
    if not out.exists() or not any(out.iterdir()):
        return "new"
    if _valid_manifest(out):
        if not force:
            raise InputError(f"{out} already holds a bundle; pass --force to replace it")
        return "bundle"
    if not all(_leftover(entry) for entry in out.iterdir()):
        raise InputError(f"{out} is not empty and holds no spot-edge bundle; give a new or empty folder")
    if not force:
        raise InputError(f"{out} holds what an unfinished export left (a bundle's files without its manifest); "
                         f"pass --force to replace it")
    return "unfinished"


def _prepare_folder(out: Path, force: bool) -> None:
    """An empty folder, or the old bundle's files removed (manifest first) when ``force``."""
    state = check_out_folder(out, force)
    if state == "new":
        out.mkdir(parents=True, exist_ok=True)
        return
    old = read_manifest(out)["files"] if state == "bundle" else {}
    if (out / MANIFEST_NAME).is_file():
        (out / MANIFEST_NAME).unlink()  # from here on the folder is not a bundle until the new manifest lands
    for name in old:
        path = out / name
        if path.resolve().is_relative_to(out.resolve()) and path.is_file() and not path.is_symlink():
            path.unlink()
    _remove_leftovers(out)
    engines = out / ENGINE_DIR
    if engines.is_dir() and not engines.is_symlink():
        _remove_leftovers(engines)
        if not any(engines.iterdir()):
            engines.rmdir()


def _remove_leftovers(folder: Path) -> None:
    """The bundle files (graphs, engines and their sidecars) and cut-short temporary files in ``folder``."""
    engine_names = {f"{Path(n).stem}.engine{sidecar}" for n in _layout_names() for sidecar in ("", ".json")}
    for entry in folder.iterdir():
        if (entry.is_file() or entry.is_symlink()) and (_leftover(entry) or entry.name in engine_names):
            entry.unlink()


def _build_engines(out: Path, graphs: dict[str, Path], options, gpu, say):
    from spot_edge.engines.trt_builder import BuildOptions, build_engine

    options = options or BuildOptions()
    built, meta = {}, None
    for key, graph in graphs.items():
        engine = out / ENGINE_DIR / f"{graph.stem}.engine"  # its precision is the graph's (in the manifest)
        say(f"building the {key} engine (minutes)")
        meta = build_engine(graph, engine, options, gpu=gpu, log=say)
        built[key] = engine
    return built, meta


def _manifest(out: Path, model, body, graphs, pose_graph, built, build_meta, precision, pose_precision,
              written, sources) -> dict[str, Any]:
    from spot_edge.engines.metadata import read_onnx_info
    from spot_edge.engines.pose_metadata import read_pose_onnx_info

    info = read_onnx_info(graphs[MODALITIES[0]])
    pose_info = read_pose_onnx_info(pose_graph)
    config = model.config
    rel = lambda p: p.relative_to(out).as_posix()  # noqa: E731
    files = {rel(p): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in written}
    tensorrt = None
    if build_meta is not None:
        tensorrt = {"target": build_meta.target, "tensorrt_version": build_meta.tensorrt_version,
                    "gpu": {"name": build_meta.gpu.name, "compute_capability": list(build_meta.gpu.compute_capability)}}
    return {
        "format": BUNDLE_FORMAT,
        "spot_edge_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": files,
        "spot": {"graphs": {m: rel(p) for m, p in graphs.items()},
                 "engines": {m: rel(built[m]) for m in MODALITIES if m in built},
                 "precision": precision, "config": config.to_dict(), "config_fingerprint": config.fingerprint(),
                 "preprocessing": config.preprocessing.to_dict(), "normalization": info.normalization,
                 "embedding_dim": config.embedding_dim, "num_pose_maps": config.num_pose_maps,
                 "calibration": {m: read_onnx_info(p).calibration for m, p in graphs.items()}
                 if precision == "int8" else None},
        "pose": {"graph": rel(pose_graph), "engine": rel(built["pose"]) if "pose" in built else None,
                 "precision": pose_precision, "config": pose_info.config_dict(), "stride": pose_info.stride,
                 "weights_fingerprint": pose_info.weights_fingerprint, "input": pose_info.input_spec(),
                 "output": pose_info.output_spec(), "weights_file": Path(str(body.weights_source)).name},
        "tensorrt": tensorrt,
        "sources": dict(sources or {}),
    }

