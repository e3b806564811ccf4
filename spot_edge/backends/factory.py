"""``create_embedder``: pick a backend by name or the best available one for a source."""

from __future__ import annotations

from pathlib import Path

from spot_edge.backends.artifacts import classify
from spot_edge.backends.base import BackendUnavailableError, Embedder
from spot_edge.errors import InputError
from spot_edge.modality import MODALITIES

#: backend names create_embedder accepts ("auto" = the best one for the source, see resolve_backend)
EMBEDDER_BACKENDS = ("auto", "pytorch", "onnxruntime", "tensorrt")
#: which backends can run which kind of source
RUNS = {"model": ("pytorch",), "checkpoint": ("pytorch", "onnxruntime"), "onnx": ("onnxruntime",),
        "engine": ("tensorrt",), "bundle": ("onnxruntime", "tensorrt")}


def available_backends() -> dict[str, bool]:
    """Which backends' packages import here (a GPU may still be needed to run them)."""
    import importlib.util

    return {"pytorch": importlib.util.find_spec("torch") is not None,
            "onnxruntime": importlib.util.find_spec("onnxruntime") is not None,
            "tensorrt": importlib.util.find_spec("tensorrt") is not None}


def bundle_auto_backend(source, kind: str) -> str:
    """The ``"auto"`` backend of a bundle (``source``: its folder or a loaded ``Bundle``) for its
    ``kind`` of network (``"spot"`` or ``"pose"``): TensorRT where the bundle holds engines and
    TensorRT is installed here, else ONNX Runtime on its graphs. Reads the manifest only."""
    from spot_edge.engines.bundle import Bundle, read_manifest

    manifest = source.manifest if isinstance(source, Bundle) else read_manifest(source)
    section = manifest.get(kind) or {}
    has_engines = bool(section.get("engines")) if kind == "spot" else bool(section.get("engine"))
    return "tensorrt" if has_engines and available_backends()["tensorrt"] else "onnxruntime"


def resolve_backend(source, backend: str = "auto") -> str:
    """The backend that runs ``source``: ``backend`` itself when it can, the ``"auto"`` choice
    (engines -> TensorRT; ONNX -> ONNX Runtime; a checkpoint or model -> PyTorch; a bundle ->
    its engines on TensorRT where TensorRT is installed, else its graphs on ONNX Runtime) otherwise.
    This is the one auto rule: :func:`create_embedder` and ``spot-edge doctor`` both use it."""
    if backend not in EMBEDDER_BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(EMBEDDER_BACKENDS)}")
    kind = classify(source)
    if backend == "auto":
        return bundle_auto_backend(source, "spot") if kind == "bundle" else RUNS[kind][0]
    if backend not in RUNS[kind]:
        if kind == "bundle":
            raise InputError(f"a bundle ({source}) runs on onnxruntime or tensorrt, not {backend}; for PyTorch "
                             f"give the checkpoint it was exported from")
        raise InputError(f"the {backend} backend cannot run a {kind} ({source}); it runs "
                         f"{[k for k, v in RUNS.items() if backend in v]}. "
                         "Export ONNX with `spot-edge export-onnx`, build engines with `spot-edge build-engine`.")
    return backend


def create_embedder(source, backend: str = "auto", device: str = "auto", **options) -> Embedder:
    """An :class:`Embedder` for ``source``.

    Args:
        source: a ``SPOT`` model, a spot-edge checkpoint (``.safetensors``), an ONNX model or a
            directory/prefix holding one ONNX per modality (``<prefix>.<modality>.onnx``), TensorRT
            engine(s) the same way, a ``{modality: path}`` mapping, or a bundle (a folder written
            by ``spot-edge export``, verified on load, or a loaded ``Bundle``).
        backend: ``"pytorch"``, ``"onnxruntime"``, ``"tensorrt"`` or ``"auto"``: the best one that
            runs this source here: engines -> TensorRT; ONNX -> ONNX Runtime (TensorRT / CUDA
            execution providers when present, else CPU); a checkpoint or model -> PyTorch.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (``"tensorrt"`` for ONNX Runtime's
            TensorRT provider).
        **options: passed to the backend (``fp16``, ``cuda_graphs``, ``threads``, ``max_batch``,
            ``providers``, ``plugin_libraries``, ``export_dir``...).

    A checkpoint with ``backend="onnxruntime"`` is exported to ONNX first (into ``export_dir``,
    default a ``<checkpoint>.onnx/`` folder beside it, reused when up to date).
    """
    kind = classify(source)
    backend = resolve_backend(source, backend)
    if kind == "bundle":
        return _bundle_embedder(source, backend, device, options)
    if backend == "pytorch":
        from spot_edge.backends.torch_backend import TorchEmbedder

        return TorchEmbedder(source, device=device, **options)
    if backend == "onnxruntime":
        from spot_edge.backends.onnxruntime_backend import OnnxRuntimeEmbedder

        if kind == "checkpoint":
            source = _export_checkpoint(Path(source), options.pop("export_dir", None))
        return OnnxRuntimeEmbedder(source, device=device, **options)
    from spot_edge.backends.tensorrt_backend import TensorRTEmbedder

    return TensorRTEmbedder(source, device=device, **options)


def _bundle_embedder(source, backend: str, device: str, options: dict) -> Embedder:
    """SPOT of a bundle (verified on load): its graphs on ONNX Runtime, or its engines on TensorRT."""
    from spot_edge.engines.bundle import Bundle, load_bundle

    bundle = source if isinstance(source, Bundle) else load_bundle(source)
    if backend == "tensorrt":
        if not bundle.has_engines("spot"):
            raise BackendUnavailableError(f"bundle {bundle.folder} holds no TensorRT engines; run it with "
                                          f"backend onnxruntime, or export it with --engines on the target")
        from spot_edge.backends.tensorrt_backend import TensorRTEmbedder

        return TensorRTEmbedder(bundle.spot_engines, device=device, **options)
    from spot_edge.backends.onnxruntime_backend import OnnxRuntimeEmbedder

    return OnnxRuntimeEmbedder(bundle.spot_graphs, device=device, **options)


def _export_checkpoint(checkpoint: Path, export_dir) -> dict[str, Path]:
    """Export both modalities of a checkpoint (once; reused while newer than the checkpoint)."""
    from spot_edge.engines.onnx_export import export_onnx, onnx_path_for
    from spot_edge.model import load_checkpoint

    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    folder = Path(export_dir) if export_dir else checkpoint.with_name(checkpoint.name + ".onnx")
    prefix = folder / checkpoint.stem
    paths = {m: onnx_path_for(prefix, m) for m in MODALITIES}
    stale = [m for m, p in paths.items() if not p.is_file() or p.stat().st_mtime < checkpoint.stat().st_mtime]
    if stale:
        model = load_checkpoint(checkpoint)
        for m in stale:
            export_onnx(model, paths[m], m)
    return paths


__all__ = ["create_embedder", "resolve_backend", "bundle_auto_backend", "available_backends", "EMBEDDER_BACKENDS",
           "BackendUnavailableError"]
