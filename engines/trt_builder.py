"""ONNX -> serialized TensorRT engine (``spot-edge build-engine``), TensorRT 10.3 to 11.

The engine computes what the graph says: fp32, fp16 and int8 (Q/DQ) graphs are built as
**strongly typed** networks (the only mode in TensorRT 11; available from 10.3), so precision is
decided once, at export, where ONNX Runtime checks it here. The flow (version differences in
:mod:`spot_edge.engines.trt_compat`)::

    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser  = trt.OnnxParser(network, logger); parser.parse_from_file(onnx)
    config  = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, bytes)
    config.set_timing_cache(config.create_timing_cache(previous_bytes), ignore_mismatch=False)
    profile = builder.create_optimization_profile(); profile.set_shape(name, min, opt, max)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)      # IHostMemory or None

LEGACY (TensorRT 10 only, clearly marked in ``trt_compat``): ``precision="fp16"`` for an fp32
graph builds a weakly typed network with ``BuilderFlag.FP16``. INT8 comes only from int8 graphs.

TensorRT cannot be installed on the CI machine: the unit tests run this module against a double
of the ``tensorrt`` module that follows the 10.3 and 11.1 binding sources (``tests/trt_double.py``).
The engine's :class:`~spot_edge.engines.metadata.EngineMetadata` is written beside it as
``<engine>.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from spot_edge.atomic import atomic_write_bytes
from spot_edge.engines.metadata import (HEATMAP_INPUT, IMAGE_INPUT, PRECISIONS, BatchProfile, EngineMetadata,
                                        GpuInfo, ShapeProfile, read_graph_info)
from spot_edge.engines.trt_compat import (TensorRTUnavailableError, create_network, import_tensorrt,
                                          legacy_fp16_flag)
from spot_edge.engines.trt_plugins import load_plugin_libraries
from spot_edge.errors import InputError, SpotEdgeError
from spot_edge.hashing import sha256_file

__all__ = ["PROFILE_DIR", "DEFAULT_POSE_PROFILES", "EngineBuildError", "TargetProfile", "BuildOptions",
           "available_targets", "load_target", "build_engine", "engine_path_for", "engine_precision", "current_gpu"]

PROFILE_DIR = Path(__file__).with_name("profiles")
#: pose engines without a target: frames up to 368 x 656 (the pipeline's 368-pixel network height,
#: 1:1 to 16:9), down to 128 x 128 (small thermal cameras are not upscaled), one or two at a time
DEFAULT_POSE_PROFILES = (ShapeProfile((1, 128, 128), (1, 368, 656), (2, 368, 656)),)


class EngineBuildError(SpotEdgeError, RuntimeError):
    """TensorRT could not parse the ONNX graph or build the engine."""


def current_gpu(device: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device ``device`` (via torch)."""
    from spot_edge.device import cuda_available

    if not cuda_available():
        raise TensorRTUnavailableError("no CUDA GPU visible to PyTorch; TensorRT engines need one")
    import torch

    major, minor = torch.cuda.get_device_capability(device)
    return GpuInfo(torch.cuda.get_device_name(device), (int(major), int(minor)))


# ----------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class TargetProfile:
    """Build defaults for one deployment target (``engines/profiles/<name>.yaml``)."""

    name: str
    description: str
    profiles: tuple[BatchProfile, ...]
    workspace_mib: int
    builder_optimization_level: int = 3
    expected_compute_capability: tuple[int, int] | None = None
    pose_profiles: tuple[ShapeProfile, ...] = DEFAULT_POSE_PROFILES
    pose_workspace_mib: int | None = None


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
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a build target is a YAML mapping")
    if "precision" in data:
        raise InputError(f"{path}: precision is not a target setting any more; it comes from the ONNX graph "
                         f"(spot-edge export-onnx --precision fp16|int8): remove the key")
    try:
        profiles = tuple(BatchProfile(int(p["min"]), int(p["opt"]), int(p["max"])) for p in data["profiles"])
        cc = data.get("compute_capability")
        target = TargetProfile(name=str(data.get("name", path.stem)), description=str(data.get("description", "")),
                               profiles=profiles, workspace_mib=int(data["workspace_mib"]),
                               builder_optimization_level=int(data.get("builder_optimization_level", 3)),
                               expected_compute_capability=tuple(int(x) for x in str(cc).split(".")) if cc else None)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: invalid build target ({exc}); it needs profiles: [{{min, opt, max}}] and "
                         f"workspace_mib") from None
    if "pose" in data:
        target = _with_pose_section(target, data["pose"], path)
    return target


def _with_pose_section(target: TargetProfile, pose: Any, path: Path) -> TargetProfile:
    """The target's ``pose:`` section: ``profiles: [{min: [B, H, W], opt: [...], max: [...]}]`` (H, W
    multiples of the pose network's stride) and an optional ``workspace_mib``."""
    import dataclasses

    stride = 8  # the pose network's stride (spot_edge.pose.network.STRIDE; not imported: no torch here)
    try:
        if not isinstance(pose, dict):
            raise TypeError("a mapping")
        profiles = tuple(ShapeProfile(tuple(p["min"]), tuple(p["opt"]), tuple(p["max"])) for p in pose["profiles"])
        workspace = int(pose["workspace_mib"]) if "workspace_mib" in pose else None
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: invalid pose section ({exc}); it needs profiles: [{{min: [batch, height, "
                         f"width], opt: [...], max: [...]}}] and optionally workspace_mib") from None
    for p in profiles:
        if any(v % stride for shape in (p.min, p.opt, p.max) for v in shape[1:]):
            raise InputError(f"{path}: pose profile heights and widths must be multiples of {stride} (the network "
                             f"pads frames to them), got {p.to_list()}")
    if not profiles:
        raise InputError(f"{path}: the pose section needs at least one profile")
    return dataclasses.replace(target, pose_profiles=profiles, pose_workspace_mib=workspace)


# ----------------------------------------------------------------------------- options
@dataclass
class BuildOptions:
    """What ``build_engine`` builds.

    Attributes:
        precision: None (default): the graph's precision, built strongly typed. ``"fp16"`` for an
            fp32 graph is the LEGACY builder-flag path (TensorRT 10 only); any other difference
            from the graph is refused.
        profiles: optimisation profiles over the batch dimension (one engine can hold several).
        workspace_mib: builder workspace limit.
        timing_cache: file to read (when present) and update; speeds up rebuilds.
        plugin_libraries: shared libraries with TensorRT plugins (loaded once per process).
        plugin_versions: ``{library name: version}`` recorded in the metadata (overrides).
        builder_optimization_level: 0..5 (TensorRT default 3).
        target: name of the target profile the options came from (recorded in the metadata).
        pose_profiles: for a pose graph: profiles over (batch, height, width) of its ``image`` input.
        pose_workspace_mib: builder workspace for a pose graph (None: ``workspace_mib``).
    """

    precision: str | None = None
    profiles: tuple[BatchProfile, ...] = (BatchProfile(1, 8, 32),)
    workspace_mib: int = 2048
    timing_cache: Path | None = None
    plugin_libraries: tuple[Path, ...] = ()
    plugin_versions: dict[str, str] = field(default_factory=dict)
    builder_optimization_level: int = 3
    target: str | None = None
    pose_profiles: tuple[ShapeProfile, ...] = DEFAULT_POSE_PROFILES
    pose_workspace_mib: int | None = None

    def __post_init__(self) -> None:
        if self.precision is not None and self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not self.profiles or not self.pose_profiles:
            raise InputError("at least one optimisation profile is needed")
        self.profiles = tuple(p if isinstance(p, BatchProfile) else BatchProfile(*p) for p in self.profiles)
        self.pose_profiles = tuple(p if isinstance(p, ShapeProfile) else ShapeProfile(*p) for p in self.pose_profiles)
        for workspace in (self.workspace_mib, self.pose_workspace_mib):
            if workspace is not None and workspace < 16:
                raise InputError(f"workspace_mib={workspace} is too small (TensorRT suggests at least 16 MiB)")
        if not 0 <= self.builder_optimization_level <= 5:
            raise InputError("builder_optimization_level must be 0..5")

    @classmethod
    def from_target(cls, target: str | Path, **overrides: Any) -> "BuildOptions":
        t = load_target(target)
        values: dict[str, Any] = dict(profiles=t.profiles, workspace_mib=t.workspace_mib,
                                      builder_optimization_level=t.builder_optimization_level, target=t.name,
                                      pose_profiles=t.pose_profiles, pose_workspace_mib=t.pose_workspace_mib)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def engine_precision(graph_precision: str, requested: str | None) -> tuple[str, bool]:
    """``(engine precision, legacy)``: the graph's precision, or the LEGACY fp16 builder flag for an
    fp32 graph; anything else is refused with the command that gives the wanted graph."""
    if requested is None or requested == graph_precision:
        return graph_precision, False
    if graph_precision == "fp32" and requested == "fp16":
        return "fp16", True
    raise InputError(f"the graph is {graph_precision}; an {requested} engine needs an {requested} graph: "
                     f"spot-edge export-onnx --precision {requested}"
                     + (" --calibration DATA" if requested == "int8" else "") + " (TensorRT builds what the "
                     "graph says)")


# ----------------------------------------------------------------------------- build
def build_engine(onnx_path: str | Path, engine_path: str | Path, options: BuildOptions | None = None,
                 gpu: GpuInfo | None = None, log: Callable[[str], None] | None = None) -> EngineMetadata:
    """Build a serialized engine from a spot-edge ONNX graph; write it and its metadata sidecar.

    Args:
        onnx_path: graph written by :func:`spot_edge.engines.export_onnx` (carries metadata).
        engine_path: output ``.engine`` file; ``<engine>.json`` gets the metadata.
        options: :class:`BuildOptions` (default: the graph's precision, profile 1/8/32, 2 GiB).
        gpu: the GPU to record (default: the current CUDA device).
        log: progress callback.

    Returns:
        The :class:`EngineMetadata` written beside the engine.
    """
    import onnx

    from spot_edge.engines.precision import check_graph_precision

    trt = import_tensorrt()
    options = options or BuildOptions()
    log = log or (lambda message: None)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    info = read_graph_info(onnx_path)  # a SPOT graph (ArtifactInfo) or the pose graph (PoseGraphInfo)
    check_graph_precision(onnx.load(str(onnx_path), load_external_data=False), info, str(onnx_path))
    precision, legacy = engine_precision(info.precision, options.precision)
    pose = info.kind == "pose"
    profiles = options.pose_profiles if pose else options.profiles
    workspace_mib = (options.pose_workspace_mib or options.workspace_mib) if pose else options.workspace_mib
    gpu = gpu or current_gpu()
    if getattr(info, "plugins", ()) and not options.plugin_libraries:
        raise EngineBuildError(f"{onnx_path} holds TensorRT plugin nodes ({', '.join(info.plugins)}): pass the plugin "
                               f"library with --plugin (libspot_edge_trt_plugins.so, see spot_edge/kernels), or "
                               f"export without --plugins")
    logger = trt.Logger(trt.Logger.WARNING)
    plugins = load_plugin_libraries(trt, logger, options.plugin_libraries)
    plugins.update(options.plugin_versions)

    builder = trt.Builder(logger)
    network = create_network(trt, builder, strongly_typed=not legacy)
    parser = trt.OnnxParser(network, logger)
    log(f"parsing {onnx_path}")
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        raise EngineBuildError(f"TensorRT {trt.__version__} could not parse {onnx_path}: " + "; ".join(errors)
                               + " (check the graph with spot_edge.engines.check_trt_operators)")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mib) << 20)
    config.builder_optimization_level = options.builder_optimization_level
    if legacy:
        log("LEGACY: fp32 graph built with BuilderFlag.FP16 (TensorRT 10 only); prefer an fp16 graph")
        legacy_fp16_flag(trt, config)
    timing_cache = None
    if options.timing_cache is not None:
        previous = Path(options.timing_cache).read_bytes() if Path(options.timing_cache).is_file() else b""
        timing_cache = config.create_timing_cache(previous)
        config.set_timing_cache(timing_cache, ignore_mismatch=False)
    if pose:
        _add_pose_profiles(builder, config, profiles)
    else:
        _add_profiles(builder, network, config, info, profiles)

    shown = "; ".join(p.describe() if pose else "/".join(map(str, p.to_list())) for p in profiles)
    log(f"building a strongly typed {precision} {'pose ' if pose else ''}engine for {gpu.name} (profiles "
        f"{shown}); this takes minutes"
        if not legacy else f"building a legacy fp16 engine for {gpu.name}; this takes minutes")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path} "
                               f"(see the TensorRT log above; a larger --workspace-mib may help)")
    atomic_write_bytes(engine_path, bytes(memoryview(plan)))
    if timing_cache is not None:
        atomic_write_bytes(Path(options.timing_cache), bytes(memoryview(config.get_timing_cache().serialize())))

    metadata = EngineMetadata(artifact=info, precision=precision, profiles=tuple(profiles),
                              tensorrt_version=str(trt.__version__), gpu=gpu, plugins=plugins,
                              target=options.target, workspace_mib=workspace_mib,
                              onnx_sha256=sha256_file(onnx_path))
    metadata.save(engine_path)
    log(f"wrote {engine_path} and {EngineMetadata.sidecar_path(engine_path).name}")
    return metadata


def _add_profiles(builder, network, config, info, profiles) -> None:
    image_shape, heatmap_shape = info.image_shape, info.heatmap_shape
    inputs = {network.get_input(i).name for i in range(network.num_inputs)}
    for p in profiles:
        profile = builder.create_optimization_profile()
        profile.set_shape(IMAGE_INPUT, (p.min, *image_shape), (p.opt, *image_shape), (p.max, *image_shape))
        if HEATMAP_INPUT in inputs:
            profile.set_shape(HEATMAP_INPUT, (p.min, *heatmap_shape), (p.opt, *heatmap_shape), (p.max, *heatmap_shape))
        if config.add_optimization_profile(profile) < 0:
            raise EngineBuildError(f"TensorRT refused the optimisation profile {p.to_list()}")


def _add_pose_profiles(builder, config, profiles) -> None:
    """Profiles over (batch, height, width) of the pose graph's ``image`` input ``(B, 3, H, W)``."""
    from spot_edge.engines.pose_metadata import POSE_INPUT

    for p in profiles:
        profile = builder.create_optimization_profile()
        (b0, h0, w0), (b1, h1, w1), (b2, h2, w2) = p.min, p.opt, p.max
        profile.set_shape(POSE_INPUT, (b0, 3, h0, w0), (b1, 3, h1, w1), (b2, 3, h2, w2))
        if config.add_optimization_profile(profile) < 0:
            raise EngineBuildError(f"TensorRT refused the pose optimisation profile {p.describe()}")


def engine_path_for(onnx_path: str | Path, precision: str = "fp16") -> Path:
    """Default engine name: ``model.visible.onnx`` -> ``model.visible.fp16.engine``."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}.{precision}.engine")
