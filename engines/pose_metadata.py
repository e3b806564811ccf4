"""What travels with an exported pose graph (and the engines built from it): :class:`PoseGraphInfo`.

The pose graph (:func:`spot_edge.engines.pose_onnx_export.export_pose_onnx`) is the OpenPose COCO body
network: input ``image`` ``(batch, 3, height, width)`` float32, output ``pose_maps``
``(batch, 56, height/8, width/8)`` float32. Its ``metadata_props`` (written and read by
:mod:`spot_edge.engines.graph_props`, like SPOT's) record:

- ``spot_edge.format`` (``spot-edge-pose-onnx/1``), ``spot_edge.version``;
- ``spot_edge.pose.config``: network name, number of stages, ReLU on the final heatmaps;
- ``spot_edge.pose.weights_fingerprint``: :func:`~spot_edge.pose.weights.pose_weights_fingerprint`
  of the weights (``"random"`` for a graph exported without weights);
- ``spot_edge.pose.input``: layout, dtype, BGR order, normalisation (``outside``: BGR / 256 - 0.5
  done by the caller; ``inside``: raw BGR 0..255), pad value 128, size multiple (the stride);
- ``spot_edge.pose.output``: 56 channels (18 keypoint maps, 38 PAF channels), stride 8, clamped
  or raw;
- ``spot_edge.precision`` (``fp32`` / ``fp16``: checked against the graph's content at load, as
  SPOT's) and ``spot_edge.opset``.

Pose engines carry the same facts in their JSON sidecar (``EngineMetadata`` with ``kind`` pose),
with (batch, height, width) profiles, the TensorRT version and the GPU, verified at load.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from spot_edge import __version__
from spot_edge.engines.graph_props import FORMAT_KEY, PREFIX, read_metadata_props
from spot_edge.engines.metadata import ArtifactError
from spot_edge.pose.network import PAD_VALUE, STRIDE
from spot_edge.pose.skeleton import NUM_KEYPOINTS, NUM_MAPS

__all__ = ["POSE_INPUT", "POSE_OUTPUT", "POSE_ONNX_FORMAT", "POSE_PRECISIONS", "RANDOM_WEIGHTS", "PoseGraphError",
           "PoseGraphInfo", "read_pose_onnx_info", "is_pose_graph"]

POSE_INPUT = "image"
POSE_OUTPUT = "pose_maps"
POSE_ONNX_FORMAT = "spot-edge-pose-onnx/1"
#: precisions of pose graphs (the int8 quantiser path is SPOT's: see engines/README.md)
POSE_PRECISIONS = ("fp32", "fp16")
RANDOM_WEIGHTS = "random"  # fingerprint of a graph exported without loaded weights


class PoseGraphError(ArtifactError):
    """An ONNX file or engine is not a spot-edge pose graph, or not the one expected."""


@dataclass(frozen=True)
class PoseGraphInfo:
    """The spot-edge facts of an exported pose graph."""

    config_name: str
    num_stages: int
    relu_on_final_heatmaps: bool
    weights_fingerprint: str
    normalization: str = "outside"  # "outside": input is BGR / 256 - 0.5; "inside": raw BGR 0..255
    clamped: bool = False
    precision: str = "fp32"
    opset: int = 17
    stride: int = STRIDE
    pad_value: int = PAD_VALUE
    channel_order: str = "BGR"
    num_maps: int = NUM_MAPS
    version: str = __version__

    kind = "pose"

    def input_spec(self) -> dict[str, Any]:
        return {"name": POSE_INPUT, "layout": "NCHW", "dtype": "float32", "channel_order": self.channel_order,
                "normalization": self.normalization, "scale": 1 / 256, "offset": -0.5,
                "pad_value": self.pad_value, "multiple_of": self.stride}

    def output_spec(self) -> dict[str, Any]:
        return {"name": POSE_OUTPUT, "layout": "NCHW", "dtype": "float32", "channels": self.num_maps,
                "keypoint_maps": NUM_KEYPOINTS, "paf_channels": self.num_maps - NUM_KEYPOINTS,
                "stride": self.stride, "clamped": self.clamped}

    def config_dict(self) -> dict[str, Any]:
        return {"name": self.config_name, "num_stages": self.num_stages,
                "relu_on_final_heatmaps": self.relu_on_final_heatmaps}

    # ------------------------------------------------------------ ONNX metadata_props
    def to_props(self) -> dict[str, str]:
        """String key/values for ONNX ``metadata_props``."""
        return {
            FORMAT_KEY: POSE_ONNX_FORMAT,
            PREFIX + "version": self.version,
            PREFIX + "pose.config": json.dumps(self.config_dict()),
            PREFIX + "pose.weights_fingerprint": self.weights_fingerprint,
            PREFIX + "pose.input": json.dumps(self.input_spec()),
            PREFIX + "pose.output": json.dumps(self.output_spec()),
            PREFIX + "precision": self.precision,
            PREFIX + "opset": str(self.opset),
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "model") -> "PoseGraphInfo":
        if props.get(FORMAT_KEY) != POSE_ONNX_FORMAT:
            found = props.get(FORMAT_KEY)
            raise PoseGraphError(f"{source} is not a spot-edge pose graph (format {found!r}, expected "
                                 f"{POSE_ONNX_FORMAT!r}); export it with spot-edge pose export-onnx")
        try:
            config = json.loads(props[PREFIX + "pose.config"])
            inp = json.loads(props[PREFIX + "pose.input"])
            out = json.loads(props[PREFIX + "pose.output"])
            return cls(config_name=str(config["name"]), num_stages=int(config["num_stages"]),
                       relu_on_final_heatmaps=bool(config["relu_on_final_heatmaps"]),
                       weights_fingerprint=props[PREFIX + "pose.weights_fingerprint"],
                       normalization=str(inp["normalization"]), clamped=bool(out["clamped"]),
                       precision=props[PREFIX + "precision"], opset=int(props[PREFIX + "opset"]),
                       stride=int(out["stride"]), pad_value=int(inp["pad_value"]),
                       channel_order=str(inp["channel_order"]), num_maps=int(out["channels"]),
                       version=props.get(PREFIX + "version", "unknown"))
        except (KeyError, TypeError, ValueError) as exc:
            raise PoseGraphError(f"{source}: incomplete or malformed spot-edge pose metadata ({exc!r})") from exc

    # ------------------------------------------------------------ engine sidecars
    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PoseGraphInfo":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields - {"kind"})
        if unknown:
            raise PoseGraphError(f"unknown pose graph fields {unknown}")
        return cls(**{k: v for k, v in data.items() if k in fields})

    # ------------------------------------------------------------ checks
    def check(self, expected_fingerprint: str | None = None, source: str = "pose graph") -> None:
        """Refuse a graph this package cannot feed or read, or one of other weights than expected."""
        problems = []
        if self.stride != STRIDE:
            problems.append(f"stride {self.stride} (expected {STRIDE})")
        if self.num_maps != NUM_MAPS:
            problems.append(f"{self.num_maps} output maps (expected {NUM_MAPS})")
        if self.channel_order != "BGR":
            problems.append(f"channel order {self.channel_order} (expected BGR)")
        if self.normalization not in ("outside", "inside"):
            problems.append(f"normalization {self.normalization!r}")
        if self.pad_value != PAD_VALUE:
            problems.append(f"pad value {self.pad_value} (expected {PAD_VALUE})")
        if self.precision not in POSE_PRECISIONS:
            problems.append(f"precision {self.precision!r}")
        if problems:
            raise PoseGraphError(f"{source} has an input/output spec this version cannot use: "
                                 + "; ".join(problems))
        if expected_fingerprint is not None and expected_fingerprint != self.weights_fingerprint:
            raise PoseGraphError(
                f"{source} was exported from other weights (fingerprint {self.weights_fingerprint[:12]}, "
                f"expected {expected_fingerprint[:12]}); re-export it from the weights you meant")


def read_pose_onnx_info(path_or_model) -> PoseGraphInfo:
    """:class:`PoseGraphInfo` of an ONNX file (or loaded ``onnx.ModelProto``)."""
    props, source, _ = read_metadata_props(path_or_model, PoseGraphError, "pose graph")
    return PoseGraphInfo.from_props(props, source)


def is_pose_graph(path: str | Path) -> bool:
    """True when ``path`` is an ONNX file recording the pose graph format (False for anything else)."""
    try:
        props, _, _ = read_metadata_props(path, PoseGraphError, "pose graph")
    except (OSError, PoseGraphError):
        return False
    return props.get(FORMAT_KEY) == POSE_ONNX_FORMAT
