"""What travels with an exported artifact: ONNX ``metadata_props`` and the engine JSON sidecar.

A deployed model breaks silently when it meets inputs prepared differently from training, or
when an engine meets a GPU or TensorRT version it was not built for. Every artifact spot-edge
writes therefore records:

- ``spot_edge.version``, ``spot_edge.config`` (the full :class:`SpotConfig` JSON) and
  ``spot_edge.config_fingerprint`` (its short hash);
- ``spot_edge.modality``: the graph holds one modality's stem (``visible`` or ``infrared``);
- ``spot_edge.preprocessing``: the :class:`PreprocessSpec` (size, mean/std, channel order,
  heatmap stride);
- ``spot_edge.inputs`` / ``spot_edge.outputs``: names, dtypes and shapes (``-1`` = batch);
- ``spot_edge.plugins``: TensorRT plugin node types in the graph (``[]`` for the default export);
- ``spot_edge.precision``: ``fp32``, ``fp16`` (FP16 weights and compute, FP32 islands, float32
  inputs/outputs) or ``int8`` (Q/DQ graph), and ``spot_edge.calibration``: for INT8, where the
  activation ranges came from (kind, path, modality, image count, SHA-256 of the image list,
  method). Both are checked at load against what the graph holds
  (:func:`spot_edge.engines.precision.check_graph_precision`);
- ``spot_edge.normalization``: ``"outside"``. The graphs take *float32 images already normalised*
  by ``PreprocessSpec.normalize`` (mean/std, RGB order), not uint8 pixels. Reason: the pipeline
  resizes and normalises crops in one pass on the host (OpenCV) or GPU anyway, the embedder
  interface is float in every backend, and a uint8 input would put a Cast + Sub + Div in the
  FP16 engine that adds nothing but another place for the constants to drift.

Engines carry the same keys plus precision, optimisation profiles, TensorRT version, GPU name
and compute capability and plugin versions, in a JSON sidecar ``<engine>.json``
(:class:`EngineMetadata`), verified at load (:meth:`EngineMetadata.verify`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from spot_edge import __version__
from spot_edge.engines.graph_props import PREFIX, read_metadata_props
from spot_edge.errors import SpotEdgeError
from spot_edge.modality import check_modality
from spot_edge.preprocessing import PreprocessSpec

#: precisions of exported graphs and engines (what the graph computes; see engines/precision.py)
PRECISIONS = ("fp32", "fp16", "int8")
IMAGE_INPUT = "images"
HEATMAP_INPUT = "heatmaps"
EMBEDDING_OUTPUT = "embedding"
NORMALIZATION = "outside"
ONNX_FORMAT = "spot-edge-onnx/1"
ENGINE_FORMAT = "spot-edge-engine/1"


class ArtifactError(SpotEdgeError, ValueError):
    """A file is not a spot-edge artifact, or its metadata is missing or inconsistent."""


class EngineMismatchError(ArtifactError):
    """An engine was built for another GPU, TensorRT version, modality or model."""


def check_precision(precision: object, what: str = "precision") -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else :class:`ArtifactError`."""
    if precision not in PRECISIONS:
        raise ArtifactError(f"{what} must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision  # type: ignore[return-value]


@dataclass(frozen=True)
class ArtifactInfo:
    """The spot-edge facts of one exported graph (one modality)."""

    modality: str
    config_json: str
    config_fingerprint: str
    preprocessing: PreprocessSpec
    embedding_dim: int
    num_pose_maps: int = 56
    version: str = __version__
    normalization: str = NORMALIZATION
    opset: int | None = None
    plugins: tuple[str, ...] = ()
    precision: str = "fp32"
    calibration_json: str = ""

    kind = "spot"

    def __post_init__(self) -> None:
        check_precision(self.precision, "spot_edge.precision")
        if self.precision == "int8" and not self.calibration_json:
            raise ArtifactError("an int8 graph must record its calibration source (spot_edge.calibration)")
        if self.precision != "int8" and self.calibration_json:
            raise ArtifactError(f"a {self.precision} graph carries calibration metadata; only int8 graphs do")

    # ------------------------------------------------------------ derived
    @property
    def calibration(self) -> dict[str, Any] | None:
        """Where an INT8 graph's activation ranges came from (None for fp32 / fp16)."""
        return json.loads(self.calibration_json) if self.calibration_json else None

    @property
    def config(self):
        """The :class:`spot_edge.model.SpotConfig` the graph was exported from."""
        from spot_edge.model import SpotConfig

        return SpotConfig.from_dict(json.loads(self.config_json))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(3, H, W)`` of one image."""
        return (3, *self.preprocessing.size)

    @property
    def heatmap_shape(self) -> tuple[int, int, int]:
        """``(K_S, Hs, Ws)`` of one sample's pose maps."""
        return (self.num_pose_maps, *self.preprocessing.heatmap_size)

    def io_spec(self) -> dict[str, Any]:
        """Graph inputs and outputs. Configurations without structure (the baseline, Table I #1)
        have no ``heatmaps`` input; backends then ignore the heatmaps they are given."""
        inputs = [{"name": IMAGE_INPUT, "dtype": "float32", "shape": [-1, *self.image_shape],
                   "normalization": self.normalization}]
        if self.config.needs_pose_maps:
            inputs.append({"name": HEATMAP_INPUT, "dtype": "float32", "shape": [-1, *self.heatmap_shape]})
        return {
            "inputs": inputs,
            "outputs": [{"name": EMBEDDING_OUTPUT, "dtype": "float32", "shape": [-1, self.embedding_dim],
                         "l2_normalized": True}],
        }

    # ------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config, modality: str, opset: int | None = None, plugins: tuple[str, ...] = (),
                    precision: str = "fp32", calibration: Mapping[str, Any] | None = None) -> "ArtifactInfo":
        check_modality(modality)
        return cls(modality=modality, config_json=config.to_json(), config_fingerprint=config.fingerprint(),
                   preprocessing=config.preprocessing, embedding_dim=config.embedding_dim,
                   num_pose_maps=config.num_pose_maps, opset=opset, plugins=tuple(plugins), precision=precision,
                   calibration_json=json.dumps(dict(calibration), sort_keys=True) if calibration else "")

    # ------------------------------------------------------------ (de)serialisation
    def to_props(self) -> dict[str, str]:
        """String key/values for ONNX ``metadata_props`` (keys prefixed ``spot_edge.``)."""
        io = self.io_spec()
        props = {
            "format": ONNX_FORMAT,
            "version": self.version,
            "config": self.config_json,
            "config_fingerprint": self.config_fingerprint,
            "modality": self.modality,
            "preprocessing": json.dumps(self.preprocessing.to_dict(), sort_keys=True),
            "normalization": self.normalization,
            "embedding_dim": str(self.embedding_dim),
            "num_pose_maps": str(self.num_pose_maps),
            "inputs": json.dumps(io["inputs"]),
            "outputs": json.dumps(io["outputs"]),
            "plugins": json.dumps(list(self.plugins)),
            "precision": self.precision,
        }
        if self.opset is not None:
            props["opset"] = str(self.opset)
        if self.calibration_json:
            props["calibration"] = self.calibration_json
        return {PREFIX + k: v for k, v in props.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "model") -> "ArtifactInfo":
        """Inverse of :meth:`to_props`; :class:`ArtifactError` when keys are missing."""
        p = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
        if p.get("format", ONNX_FORMAT) != ONNX_FORMAT:
            raise ArtifactError(f"{source} is a {p['format']} graph, not a SPOT embedding graph "
                                f"({ONNX_FORMAT}); give the SPOT graphs (spot-edge export-onnx)")
        if not p:
            raise ArtifactError(f"{source} carries no spot-edge metadata; export it with "
                                f"`spot-edge export-onnx` (spot_edge.engines.export_onnx)")
        missing = [k for k in ("config", "config_fingerprint", "modality", "preprocessing", "embedding_dim") if k not in p]
        if missing:
            raise ArtifactError(f"{source}: spot-edge metadata lacks {missing}; re-export it with `spot-edge export-onnx`")
        try:
            info = cls(modality=check_modality(p["modality"]), config_json=p["config"],
                       config_fingerprint=p["config_fingerprint"],
                       preprocessing=PreprocessSpec.from_dict(json.loads(p["preprocessing"])),
                       embedding_dim=int(p["embedding_dim"]), num_pose_maps=int(p.get("num_pose_maps", 56)),
                       version=p.get("version", "unknown"), normalization=p.get("normalization", NORMALIZATION),
                       opset=int(p["opset"]) if "opset" in p else None,
                       plugins=tuple(json.loads(p.get("plugins", "[]"))),
                       precision=p.get("precision", "fp32"), calibration_json=p.get("calibration", ""))
            info.calibration  # the record must be JSON
        except ArtifactError as exc:
            raise ArtifactError(f"{source}: {exc}") from exc
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{source}: unreadable spot-edge metadata: {exc}") from exc
        return info

    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality, "config": json.loads(self.config_json),
                "config_fingerprint": self.config_fingerprint, "preprocessing": self.preprocessing.to_dict(),
                "embedding_dim": self.embedding_dim, "num_pose_maps": self.num_pose_maps,
                "version": self.version, "normalization": self.normalization, "opset": self.opset,
                "plugins": list(self.plugins), "precision": self.precision, "calibration": self.calibration}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ArtifactInfo":
        return cls(modality=check_modality(data["modality"]), config_json=json.dumps(data["config"], sort_keys=True),
                   config_fingerprint=data["config_fingerprint"],
                   preprocessing=PreprocessSpec.from_dict(dict(data["preprocessing"])),
                   embedding_dim=int(data["embedding_dim"]), num_pose_maps=int(data.get("num_pose_maps", 56)),
                   version=data.get("version", "unknown"), normalization=data.get("normalization", NORMALIZATION),
                   opset=data.get("opset"), plugins=tuple(data.get("plugins") or ()),
                   precision=data.get("precision", "fp32"),
                   calibration_json=json.dumps(data["calibration"], sort_keys=True) if data.get("calibration") else "")


def read_onnx_info(path_or_model) -> ArtifactInfo:
    """The :class:`ArtifactInfo` of an ONNX file (or loaded ``onnx.ModelProto``)."""
    props, source, _ = read_metadata_props(path_or_model, ArtifactError, "ONNX model")
    return ArtifactInfo.from_props(props, source)


def read_graph_info(path_or_model):
    """The facts of any spot-edge graph: :class:`ArtifactInfo` of a SPOT graph, or
    :class:`~spot_edge.engines.pose_metadata.PoseGraphInfo` of a pose graph (told apart by their
    recorded format)."""
    props, source, _ = read_metadata_props(path_or_model, ArtifactError, "ONNX model")
    from spot_edge.engines.pose_metadata import POSE_ONNX_FORMAT, PoseGraphInfo

    if props.get(PREFIX + "format") == POSE_ONNX_FORMAT:
        return PoseGraphInfo.from_props(props, source)
    return ArtifactInfo.from_props(props, source)


# ---------------------------------------------------------------------------------- engines
@dataclass(frozen=True)
class BatchProfile:
    """One TensorRT optimisation profile over the batch dimension: ``min <= opt <= max``."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not 1 <= self.min <= self.opt <= self.max:
            raise ValueError(f"a batch profile needs 1 <= min <= opt <= max, got min={self.min}, "
                             f"opt={self.opt}, max={self.max}")

    def to_list(self) -> list[int]:
        return [self.min, self.opt, self.max]

    @property
    def batch(self) -> "BatchProfile":
        return self


@dataclass(frozen=True)
class ShapeProfile:
    """One TensorRT optimisation profile over ``(batch, height, width)`` of an image input (the pose
    network: dynamic frame sizes); each dimension ``1 <= min <= opt <= max``."""

    min: tuple[int, int, int]
    opt: tuple[int, int, int]
    max: tuple[int, int, int]

    def __post_init__(self) -> None:
        shapes = [tuple(int(v) for v in s) for s in (self.min, self.opt, self.max)]
        if any(len(s) != 3 for s in shapes):
            raise ValueError(f"a shape profile holds (batch, height, width) triples, got {shapes}")
        for i, dim in enumerate(("batch", "height", "width")):
            lo, mid, hi = (s[i] for s in shapes)
            if not 1 <= lo <= mid <= hi:
                raise ValueError(f"a shape profile needs 1 <= min <= opt <= max for its {dim}, got "
                                 f"{lo}, {mid}, {hi}")
        for name, shape in zip(("min", "opt", "max"), shapes):
            object.__setattr__(self, name, shape)

    def to_list(self) -> list[list[int]]:
        return [list(self.min), list(self.opt), list(self.max)]

    @property
    def batch(self) -> BatchProfile:
        return BatchProfile(self.min[0], self.opt[0], self.max[0])

    def holds(self, height: int, width: int) -> bool:
        """True when frames of ``height`` x ``width`` fit this profile."""
        return self.min[1] <= height <= self.max[1] and self.min[2] <= width <= self.max[2]

    def describe(self) -> str:
        return (f"batch {self.min[0]}..{self.max[0]}, height {self.min[1]}..{self.max[1]}, "
                f"width {self.min[2]}..{self.max[2]}")


@dataclass(frozen=True)
class GpuInfo:
    """The GPU an engine is built for / runs on."""

    name: str
    compute_capability: tuple[int, int]

    @property
    def sm(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"


@dataclass(frozen=True)
class EngineMetadata:
    """The JSON sidecar of a serialized TensorRT engine (``<engine>.json``).

    ``artifact`` is the graph's facts: :class:`ArtifactInfo` for a SPOT engine (batch profiles,
    :class:`BatchProfile`), :class:`~spot_edge.engines.pose_metadata.PoseGraphInfo` for a pose
    engine (``(batch, height, width)`` profiles, :class:`ShapeProfile`); ``kind`` tells them apart."""

    artifact: Any
    precision: str
    profiles: tuple[Any, ...]
    tensorrt_version: str
    gpu: GpuInfo
    plugins: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    workspace_mib: int | None = None
    onnx_sha256: str | None = None
    built_by: str = __version__

    def __post_init__(self) -> None:
        check_precision(self.precision, "engine precision")

    @property
    def kind(self) -> str:
        """``"spot"`` or ``"pose"``."""
        return self.artifact.kind

    @property
    def modality(self) -> str | None:
        """The modality of a SPOT engine (None for a pose engine)."""
        return getattr(self.artifact, "modality", None)

    @property
    def max_batch(self) -> int:
        return max(p.batch.max for p in self.profiles)

    @property
    def min_batch(self) -> int:
        return min(p.batch.min for p in self.profiles)

    def to_dict(self) -> dict[str, Any]:
        return {"format": ENGINE_FORMAT, "spot_edge_version": self.built_by, "artifact": self.artifact.to_dict(),
                "precision": self.precision, "profiles": [p.to_list() for p in self.profiles],
                "tensorrt_version": self.tensorrt_version,
                "gpu": {"name": self.gpu.name, "compute_capability": list(self.gpu.compute_capability)},
                "plugins": dict(self.plugins), "target": self.target, "workspace_mib": self.workspace_mib,
                "onnx_sha256": self.onnx_sha256}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "engine metadata") -> "EngineMetadata":
        if data.get("format") != ENGINE_FORMAT:
            raise ArtifactError(f"{source} is not spot-edge engine metadata (format {data.get('format')!r}, "
                                f"expected {ENGINE_FORMAT!r})")
        try:
            if data["artifact"].get("kind") == "pose":
                from spot_edge.engines.pose_metadata import PoseGraphInfo

                artifact, profile = PoseGraphInfo.from_dict(data["artifact"]), ShapeProfile
            else:
                artifact, profile = ArtifactInfo.from_dict(data["artifact"]), BatchProfile
            return cls(artifact=artifact, precision=data["precision"],
                       profiles=tuple(profile(*p) for p in data["profiles"]),
                       tensorrt_version=str(data["tensorrt_version"]),
                       gpu=GpuInfo(data["gpu"]["name"], tuple(int(x) for x in data["gpu"]["compute_capability"])),
                       plugins=dict(data.get("plugins") or {}), target=data.get("target"),
                       workspace_mib=data.get("workspace_mib"), onnx_sha256=data.get("onnx_sha256"),
                       built_by=data.get("spot_edge_version", "unknown"))
        except ArtifactError as exc:
            raise ArtifactError(f"{source}: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"{source}: incomplete engine metadata ({exc!r}); rebuild the engine "
                                f"with `spot-edge build-engine`") from exc

    # ------------------------------------------------------------ sidecar files
    @staticmethod
    def sidecar_path(engine_path: str | Path) -> Path:
        engine_path = Path(engine_path)
        return engine_path.with_name(engine_path.name + ".json")

    def save(self, engine_path: str | Path) -> Path:
        from spot_edge.atomic import atomic_write_text

        return atomic_write_text(self.sidecar_path(engine_path), json.dumps(self.to_dict(), indent=2, sort_keys=True))

    @classmethod
    def load(cls, engine_path: str | Path) -> "EngineMetadata":
        path = cls.sidecar_path(engine_path)
        if not path.is_file():
            raise ArtifactError(f"engine metadata {path} not found beside {engine_path}; spot-edge engines are "
                                f"written with a JSON sidecar by `spot-edge build-engine` -- rebuild the engine")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{path} is not valid JSON ({exc}); rebuild the engine") from exc
        return cls.from_dict(data, str(path))

    # ------------------------------------------------------------ verification
    def verify(self, tensorrt_version: str, gpu: GpuInfo, modality: str | None = None,
               plugins: Mapping[str, str] | None = None, engine_path: str | Path | None = None) -> None:
        """Raise :class:`EngineMismatchError` when the engine cannot run here.

        TensorRT engines are specific to the exact TensorRT version and to the GPU's compute
        capability (and tuned for the GPU model); the message says what to rebuild and how.
        """
        where = f"engine {engine_path}" if engine_path else "engine"
        graph = "pose.onnx" if self.kind == "pose" else f"{self.modality}.onnx"
        rebuild = (f"rebuild it on this machine: spot-edge build-engine <{graph}>"
                   + (f" --target {self.target}" if self.target else ""))
        problems = []
        if modality is not None and self.kind == "pose":
            raise EngineMismatchError(f"{where} is a pose engine (OpenPose maps), not a SPOT engine for "
                                      f"{modality!r} images")
        if modality is not None and modality != self.modality:
            raise EngineMismatchError(f"{where} embeds {self.modality!r} images, but {modality!r} was requested; "
                                      f"build an engine from the {modality} ONNX graph "
                                      f"(spot-edge build-engine <{modality}.onnx>)")
        if tensorrt_version != self.tensorrt_version:
            problems.append(f"it was built with TensorRT {self.tensorrt_version}, this machine has TensorRT "
                            f"{tensorrt_version} (engines only load on the exact TensorRT version that built them)")
        if tuple(gpu.compute_capability) != tuple(self.gpu.compute_capability):
            problems.append(f"it was built for {self.gpu.name} (compute capability {self.gpu.sm}), this GPU is "
                            f"{gpu.name} (compute capability {gpu.sm})")
        for name, version in (self.plugins or {}).items():
            have = (plugins or {}).get(name)
            if have is None:
                problems.append(f"it needs the plugin library {name} (version {version}); pass it with --plugin")
            elif have != version:
                problems.append(f"it was built with plugin {name} {version}, loaded is {have}")
        if problems:
            raise EngineMismatchError(f"{where} cannot run here: " + "; ".join(problems) + f". To fix: {rebuild}")
        if gpu.name != self.gpu.name:
            import warnings

            warnings.warn(f"{where} was tuned on {self.gpu.name}, running on {gpu.name} (same compute capability "
                          f"{gpu.sm}); it works, but rebuild for best speed", RuntimeWarning, stacklevel=2)


def replace(obj, **changes):
    """``dataclasses.replace`` re-exported for metadata objects."""
    return dataclasses.replace(obj, **changes)
