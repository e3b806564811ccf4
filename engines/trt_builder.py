"""ONNX -> serialized TensorRT engine (``spot-edge build-engine``), TensorRT 10 Python API.

Follows the documented TensorRT 10 builder flow::

    builder = trt.Builder(logger)
    network = builder.create_network(0)                 # explicit batch is the only mode in TRT 10
    parser  = trt.OnnxParser(network, logger); parser.parse_from_file(onnx)
    config  = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, bytes)
    config.set_flag(trt.BuilderFlag.FP16)                # [+ INT8 with an IInt8EntropyCalibrator2]
    config.set_timing_cache(config.create_timing_cache(previous_bytes), ignore_mismatch=False)
    profile = builder.create_optimization_profile(); profile.set_shape(name, min, opt, max)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)

TensorRT cannot be installed on the CI machine: the unit tests run this module against a small
double of the ``tensorrt`` module (``tests/trt_double.py``); real-TensorRT tests skip without it.
The engine's :class:`~spot_edge.engines.metadata.EngineMetadata` is written beside it as
``<engine>.json``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from spot_edge.engines.metadata import (HEATMAP_INPUT, IMAGE_INPUT, ArtifactInfo, BatchProfile, EngineMetadata,
                                        GpuInfo, read_onnx_info)

PROFILE_DIR = Path(__file__).with_name("profiles")
PRECISIONS = ("fp32", "fp16", "int8")


class TensorRTUnavailableError(RuntimeError):
    """TensorRT (or a CUDA GPU) is not available here."""


class EngineBuildError(RuntimeError):
    """TensorRT could not parse the ONNX graph or build the engine."""


def import_tensorrt():
    """The ``tensorrt`` module, or :class:`TensorRTUnavailableError` saying how to get it."""
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        raise TensorRTUnavailableError(
            "TensorRT is not installed: on a Jetson it comes with JetPack 6 (python3-libnvinfer); on x86 "
            "`pip install tensorrt>=10.3 cuda-python` (pip install 'spot-edge[tensorrt]'). "
            "ONNX Runtime (the default backend) needs neither.") from exc
    return tensorrt


def current_gpu(device: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device ``device`` (via torch)."""
    import torch

    if not torch.cuda.is_available():
        raise TensorRTUnavailableError("no CUDA GPU visible to PyTorch; TensorRT engines need one")
    major, minor = torch.cuda.get_device_capability(device)
    return GpuInfo(torch.cuda.get_device_name(device), (int(major), int(minor)))


# ----------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class TargetProfile:
    """Build defaults for one deployment target (``engines/profiles/<name>.yaml``)."""

    name: str
    description: str
    precision: str
    profiles: tuple[BatchProfile, ...]
    workspace_mib: int
    builder_optimization_level: int = 3
    expected_compute_capability: tuple[int, int] | None = None


def available_targets() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def load_target(name_or_path: str | Path) -> TargetProfile:
    """A target profile by name (``orin-nano``, ``agx-orin``, ``datacenter``) or YAML path."""
    import yaml

    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"unknown build target {name_or_path!r}; known: {', '.join(available_targets())} "
                                f"(or a path to a YAML file like engines/profiles/datacenter.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    try:
        profiles = tuple(BatchProfile(int(p["min"]), int(p["opt"]), int(p["max"])) for p in data["profiles"])
        precision = str(data.get("precision", "fp16"))
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        cc = data.get("compute_capability")
        return TargetProfile(name=str(data.get("name", path.stem)), description=str(data.get("description", "")),
                             precision=precision, profiles=profiles, workspace_mib=int(data["workspace_mib"]),
                             builder_optimization_level=int(data.get("builder_optimization_level", 3)),
                             expected_compute_capability=tuple(int(x) for x in str(cc).split(".")) if cc else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid build target ({exc}); it needs profiles: [{{min, opt, max}}], "
                         f"workspace_mib, precision") from exc


# ----------------------------------------------------------------------------- options
@dataclass
class BuildOptions:
    """What ``build_engine`` builds.

    Attributes:
        precision: ``"fp16"`` (default), ``"fp32"`` or ``"int8"`` (INT8 with FP16 fallback).
        profiles: optimisation profiles over the batch dimension (one engine can hold several).
        workspace_mib: builder workspace limit.
        timing_cache: file to read (when present) and update; speeds up rebuilds.
        calibration_images: folder of crops (+ ``.npy`` pose files) for INT8 calibration.
        calibration_cache: INT8 calibration cache file (read when present, written after).
        calibration_batch: batch size of calibration batches.
        calibration_limit: at most this many calibration images.
        calibration_device: torch device of the calibration buffers (TensorRT reads device memory).
        plugin_libraries: shared libraries with TensorRT plugins (loaded with ctypes first).
        plugin_versions: ``{library name: version}`` recorded in the metadata.
        builder_optimization_level: 0..5 (TensorRT default 3).
        target: name of the target profile the options came from (recorded in the metadata).
    """

    precision: str = "fp16"
    profiles: tuple[BatchProfile, ...] = (BatchProfile(1, 8, 32),)
    workspace_mib: int = 2048
    timing_cache: Path | None = None
    calibration_images: Path | None = None
    calibration_cache: Path | None = None
    calibration_batch: int = 8
    calibration_limit: int = 512
    plugin_libraries: tuple[Path, ...] = ()
    plugin_versions: dict[str, str] = field(default_factory=dict)
    builder_optimization_level: int = 3
    target: str | None = None
    calibration_device: str = "cuda"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not self.profiles:
            raise ValueError("at least one optimisation profile is needed")
        self.profiles = tuple(p if isinstance(p, BatchProfile) else BatchProfile(*p) for p in self.profiles)
        if self.workspace_mib < 16:
            raise ValueError(f"workspace_mib={self.workspace_mib} is too small (TensorRT suggests at least 16 MiB)")
        if self.precision == "int8" and self.calibration_images is None and not (
                self.calibration_cache and Path(self.calibration_cache).is_file()):
            raise ValueError("INT8 needs calibration data: --calibration-images FOLDER (crops with .npy pose files) "
                             "or an existing --calibration-cache file")
        if not 0 <= self.builder_optimization_level <= 5:
            raise ValueError("builder_optimization_level must be 0..5")

    @classmethod
    def from_target(cls, target: str | Path, **overrides: Any) -> "BuildOptions":
        t = load_target(target)
        values: dict[str, Any] = dict(precision=t.precision, profiles=t.profiles, workspace_mib=t.workspace_mib,
                                      builder_optimization_level=t.builder_optimization_level, target=t.name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


# ----------------------------------------------------------------------------- calibration
def calibration_batches(folder: Path, info: ArtifactInfo, batch: int, limit: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Full batches of ``(images, heatmaps)`` from a folder (see :mod:`spot_edge.backends.image_folder`)."""
    from spot_edge.backends.image_folder import load_image_folder

    data = load_image_folder(folder, info.preprocessing, info.num_pose_maps, limit=limit)
    n = (len(data.files) // batch) * batch
    if n == 0:
        raise ValueError(f"INT8 calibration needs at least one full batch of {batch} images in {folder}, "
                         f"found {len(data.files)}")
    return [(data.images[i:i + batch], data.heatmaps[i:i + batch]) for i in range(0, n, batch)]


def make_calibrator(trt, batches: Sequence[tuple[np.ndarray, np.ndarray]], cache_file: Path | None,
                    device: str = "cuda"):
    """An ``IInt8EntropyCalibrator2`` feeding ``batches`` (device buffers via torch CUDA tensors)."""

    def to_device(array: np.ndarray):
        import torch

        return torch.from_numpy(np.ascontiguousarray(array)).to(device)

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = list(batches)
            self._index = 0
            self._alive: list = []  # device buffers of the current batch

        def get_batch_size(self) -> int:
            return int(self._batches[0][0].shape[0]) if self._batches else 1

        def get_batch(self, names):
            if self._index >= len(self._batches):
                return None
            images, heatmaps = self._batches[self._index]
            self._index += 1
            by_name = {IMAGE_INPUT: to_device(images), HEATMAP_INPUT: to_device(heatmaps)}
            self._alive = [by_name[n] for n in names]
            return [int(t.data_ptr()) for t in self._alive]

        def read_calibration_cache(self):
            if cache_file is not None and Path(cache_file).is_file():
                return Path(cache_file).read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            if cache_file is not None:
                Path(cache_file).write_bytes(bytes(cache))

    return _Calibrator()


# ----------------------------------------------------------------------------- build
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_plugins(trt, logger, libraries: Sequence[Path], default_version: str = "unknown") -> dict[str, str]:
    """Load plugin libraries and register TensorRT's own plugins; ``{library name: version}``.

    Uses ``trt.get_plugin_registry().load_library(path)`` (TensorRT 10: finds the library's
    ``getCreators`` / ``getPluginCreators`` entry points, as ``trtexec --dynamicPlugins`` does);
    a library may report its version through an ``extern "C" const char* spot_edge_plugin_version()``.
    """
    loaded: dict[str, str] = {}
    registry = trt.get_plugin_registry() if hasattr(trt, "get_plugin_registry") else None
    for lib in libraries:
        lib = Path(lib)
        if not lib.is_file():
            raise FileNotFoundError(f"plugin library not found: {lib}")
        try:
            if registry is not None and hasattr(registry, "load_library"):
                handle = registry.load_library(str(lib))
                if handle is None:
                    raise OSError("the plugin registry refused it")
            else:
                ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
        except OSError as exc:
            raise EngineBuildError(f"cannot load plugin library {lib}: {exc}") from exc
        version = default_version
        try:
            getter = getattr(ctypes.CDLL(str(lib)), "spot_edge_plugin_version", None)
        except OSError:
            getter = None
        if getter is not None:
            getter.restype = ctypes.c_char_p
            version = getter().decode()
        loaded[lib.name] = version
    trt.init_libnvinfer_plugins(logger, "")
    return loaded


def _kernels_plugin_version() -> str:
    try:
        from spot_edge.kernels.onnx_plugins import PLUGIN_VERSION
    except ImportError:
        return "unknown"
    return str(PLUGIN_VERSION)


def build_engine(onnx_path: str | Path, engine_path: str | Path, options: BuildOptions | None = None,
                 gpu: GpuInfo | None = None, log: Callable[[str], None] | None = None) -> EngineMetadata:
    """Build a serialized engine from a spot-edge ONNX graph; write it and its metadata sidecar.

    Args:
        onnx_path: graph written by :func:`spot_edge.engines.export_onnx` (carries metadata).
        engine_path: output ``.engine`` file; ``<engine>.json`` gets the metadata.
        options: :class:`BuildOptions` (default FP16, profile 1/8/32, 2 GiB workspace).
        gpu: the GPU to record (default: the current CUDA device).
        log: progress callback.

    Returns:
        The :class:`EngineMetadata` written beside the engine.
    """
    trt = import_tensorrt()
    options = options or BuildOptions()
    log = log or (lambda message: None)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    info = read_onnx_info(onnx_path)
    gpu = gpu or current_gpu()

    if info.plugins and not options.plugin_libraries:
        raise EngineBuildError(f"{onnx_path} holds TensorRT plugin nodes ({', '.join(info.plugins)}): pass the plugin "
                               f"library with --plugin (libspot_edge_trt_plugins.so, see spot_edge/kernels), or "
                               f"export without --plugins")
    logger = trt.Logger(trt.Logger.WARNING)
    plugins = load_plugins(trt, logger, options.plugin_libraries, _kernels_plugin_version())
    plugins.update(options.plugin_versions)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    log(f"parsing {onnx_path}")
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT {trt.__version__} could not parse {onnx_path}: " + "; ".join(errors)
                               + " (check the graph with spot_edge.engines.check_trt_operators)")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_mib) << 20)
    config.builder_optimization_level = options.builder_optimization_level
    if options.precision in ("fp16", "int8"):
        if not getattr(builder, "platform_has_fast_fp16", True):
            log(f"warning: {gpu.name} has no fast FP16; the engine will still be built")
        config.set_flag(trt.BuilderFlag.FP16)

    timing_cache = None
    if options.timing_cache is not None:
        previous = Path(options.timing_cache).read_bytes() if Path(options.timing_cache).is_file() else b""
        timing_cache = config.create_timing_cache(previous)
        config.set_timing_cache(timing_cache, ignore_mismatch=False)

    image_shape, heatmap_shape = info.image_shape, info.heatmap_shape
    inputs = {network.get_input(i).name for i in range(network.num_inputs)}
    for p in options.profiles:
        profile = builder.create_optimization_profile()
        profile.set_shape(IMAGE_INPUT, (p.min, *image_shape), (p.opt, *image_shape), (p.max, *image_shape))
        if HEATMAP_INPUT in inputs:
            profile.set_shape(HEATMAP_INPUT, (p.min, *heatmap_shape), (p.opt, *heatmap_shape), (p.max, *heatmap_shape))
        config.add_optimization_profile(profile)

    if options.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        batches = []
        if options.calibration_images is not None:
            batches = calibration_batches(Path(options.calibration_images), info, options.calibration_batch,
                                          options.calibration_limit)
        calib_profile = builder.create_optimization_profile()
        b = options.calibration_batch
        calib_profile.set_shape(IMAGE_INPUT, (b, *image_shape), (b, *image_shape), (b, *image_shape))
        if HEATMAP_INPUT in inputs:
            calib_profile.set_shape(HEATMAP_INPUT, (b, *heatmap_shape), (b, *heatmap_shape), (b, *heatmap_shape))
        config.set_calibration_profile(calib_profile)
        config.int8_calibrator = make_calibrator(trt, batches, options.calibration_cache,
                                                 options.calibration_device)

    log(f"building {options.precision} engine for {gpu.name} (profiles "
        f"{', '.join('/'.join(map(str, p.to_list())) for p in options.profiles)}); this takes minutes")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path} "
                               f"(see the TensorRT log above; a larger --workspace-mib may help)")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    tmp.write_bytes(bytes(plan))
    os.replace(tmp, engine_path)
    if timing_cache is not None:
        Path(options.timing_cache).write_bytes(bytes(config.get_timing_cache().serialize()))

    metadata = EngineMetadata(artifact=info, precision=options.precision, profiles=tuple(options.profiles),
                              tensorrt_version=str(trt.__version__), gpu=gpu, plugins=plugins,
                              target=options.target, workspace_mib=options.workspace_mib,
                              onnx_sha256=_sha256(onnx_path))
    metadata.save(engine_path)
    log(f"wrote {engine_path} and {EngineMetadata.sidecar_path(engine_path).name}")
    return metadata


def engine_path_for(onnx_path: str | Path, precision: str = "fp16") -> Path:
    """Default engine name: ``model.visible.onnx`` -> ``model.visible.fp16.engine``."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}.{precision}.engine")
