"""``create_pose_estimator``: a pose estimator for a source, by backend name or ``"auto"``."""

from __future__ import annotations

from pathlib import Path

from spot_edge.backends.pose_estimators.base import PoseEstimator
from spot_edge.pose.network import OpenPoseBody, PoseNetConfig, get_pose_config

POSE_BACKENDS = ("auto", "pytorch", "onnxruntime", "tensorrt")
WEIGHT_SUFFIXES = (".pth", ".pt", ".caffemodel", ".safetensors")
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
#: which backends run which kind of source; the first is the ``"auto"`` choice (a bundle's: its
#: engine on TensorRT where both exist here, see ``spot_edge.backends.factory.bundle_auto_backend``)
RUNS = {"model": ("pytorch",), "weights": ("pytorch", "onnxruntime"), "onnx": ("onnxruntime",),
        "engine": ("tensorrt",), "bundle": ("onnxruntime", "tensorrt")}


def classify_pose_source(source) -> str:
    """``"model"`` (an :class:`OpenPoseBody`), ``"weights"``, ``"onnx"``, ``"engine"`` or ``"bundle"``
    (a folder written by ``spot-edge export``, or a loaded ``Bundle``)."""
    from spot_edge.engines.bundle import is_bundle

    if isinstance(source, OpenPoseBody):
        return "model"
    if is_bundle(source):
        return "bundle"
    if not isinstance(source, (str, Path)):
        raise TypeError(f"a pose source is an OpenPoseBody or a file path (weights, pose graph, engine, "
                        f"bundle folder), got {type(source).__name__}")
    suffix = Path(source).suffix.lower()
    for kind, suffixes in (("weights", WEIGHT_SUFFIXES), ("onnx", ONNX_SUFFIXES), ("engine", ENGINE_SUFFIXES)):
        if suffix in suffixes:
            return kind
    raise ValueError(f"cannot tell what {source} is from its suffix; pose sources are weights "
                     f"({', '.join(WEIGHT_SUFFIXES)}), an ONNX graph (.onnx), a TensorRT engine "
                     f"({', '.join(ENGINE_SUFFIXES)}) or a bundle folder (spot-edge export)")


def resolve_pose_backend(source, backend: str = "auto") -> str:
    """The backend that runs ``source``: ``backend`` itself when it can, else the ``"auto"`` choice
    (engine -> TensorRT, ONNX -> ONNX Runtime, weights or a model -> PyTorch), the Embedder's rule."""
    if backend not in POSE_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(POSE_BACKENDS)}")
    kind = classify_pose_source(source)
    if backend == "auto":
        if kind == "bundle":
            from spot_edge.backends.factory import bundle_auto_backend

            return bundle_auto_backend(source, "pose")
        return RUNS[kind][0]
    if backend not in RUNS[kind]:
        if kind == "bundle":
            raise ValueError(f"a bundle's pose network ({source}) runs on onnxruntime or tensorrt, not {backend}; "
                             f"for PyTorch give the OpenPose weights (--pose-weights)")
        raise ValueError(f"the {backend} backend cannot run pose {kind} ({source}); it runs "
                         f"{[k for k, v in RUNS.items() if backend in v]}")
    return backend


def create_pose_estimator(source, backend: str = "auto", device: str = "auto",
                          config: str | PoseNetConfig = "openpose_coco", **options) -> PoseEstimator:
    """A :class:`PoseEstimator` for ``source``.

    Args:
        source: an :class:`OpenPoseBody`, a weights file (``body_pose_model.pth``,
            ``pose_iter_440000.caffemodel``, ``.safetensors``), an exported pose graph (``.onnx``),
            a TensorRT engine, or a bundle (``spot-edge export``; verified on load, its weights
            fingerprint checked against the graph or engine it runs).
        backend: ``"pytorch"``, ``"onnxruntime"``, ``"tensorrt"`` or ``"auto"`` (see
            :func:`resolve_pose_backend`: the Embedder's rule).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        config: network configuration for a weights file (``openpose_coco``,
            ``openpose_coco_lite``: the first 3 stages of the same weights).
        **options: passed to the backend (``fp16``, ``clamp``, ``threads``, ``max_batch``,
            ``providers``, ``expected_fingerprint``, ``export_dir``...).

    Weights with ``backend="onnxruntime"`` are exported to ONNX first (into ``export_dir``,
    default a ``<weights>.onnx/`` folder beside them, reused while newer than the weights).
    """
    kind = classify_pose_source(source)
    backend = resolve_pose_backend(source, backend)
    if kind == "bundle":
        return _bundle_estimator(source, backend, device, options)
    if backend == "pytorch":
        from spot_edge.backends.pose_estimators.torch_estimator import TorchPoseEstimator

        if kind == "model":
            return TorchPoseEstimator(source, device=device, **options)
        return TorchPoseEstimator.from_weights(_existing(source), config=config, device=device, **options)
    if backend == "onnxruntime":
        from spot_edge.backends.pose_estimators.onnxruntime_estimator import OnnxRuntimePoseEstimator

        if kind == "weights":
            source = export_weights_once(_existing(source), config, options.pop("export_dir", None))
        return OnnxRuntimePoseEstimator(_existing(source), device=device, **options)
    from spot_edge.backends.pose_estimators.tensorrt_estimator import TensorRTPoseEstimator

    return TensorRTPoseEstimator(_existing(source), device=device, **options)


def _bundle_estimator(source, backend: str, device: str, options: dict) -> PoseEstimator:
    """The pose network of a bundle (verified on load): its graph on ONNX Runtime or its engine on
    TensorRT, refused when built from other weights than the manifest records."""
    from spot_edge.backends.base import BackendUnavailableError
    from spot_edge.engines.bundle import Bundle, load_bundle

    bundle = source if isinstance(source, Bundle) else load_bundle(source)
    options = {**options, "expected_fingerprint": bundle.pose_fingerprint}
    if backend == "tensorrt":
        if bundle.pose_engine is None:
            raise BackendUnavailableError(f"bundle {bundle.folder} holds no pose engine; run its pose graph with "
                                          f"backend onnxruntime, or export it with --engines on the target")
        from spot_edge.backends.pose_estimators.tensorrt_estimator import TensorRTPoseEstimator

        return TensorRTPoseEstimator(bundle.pose_engine, device=device, **options)
    from spot_edge.backends.pose_estimators.onnxruntime_estimator import OnnxRuntimePoseEstimator

    return OnnxRuntimePoseEstimator(bundle.pose_graph, device=device, **options)


def _existing(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pose source not found: {path}")
    return path


def export_weights_once(weights: Path, config: str | PoseNetConfig = "openpose_coco", export_dir=None) -> Path:
    """The ONNX graph of ``weights`` (exported on first use, reused while newer than them)."""
    from spot_edge.engines.pose_onnx_export import export_pose_onnx
    from spot_edge.pose.weights import load_pose_weights

    cfg = get_pose_config(config)
    folder = Path(export_dir) if export_dir else weights.with_name(weights.name + ".onnx")
    path = folder / f"{weights.stem}.{cfg.name}.onnx"
    if not path.is_file() or path.stat().st_mtime < weights.stat().st_mtime:
        model = OpenPoseBody(cfg)
        load_pose_weights(model, weights)
        export_pose_onnx(model, path)
    return path


__all__ = ["POSE_BACKENDS", "classify_pose_source", "resolve_pose_backend", "create_pose_estimator",
           "export_weights_once"]
